"""The service's routes, one module per concern: hashing, matching and lookups, banks and
their entries and imports, status (health, index, metrics), and the HMA-compatible routes."""
