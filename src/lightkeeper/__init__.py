"""Lightkeeper: find, stop, review and report known abuse imagery, with hashes only."""

__version__ = "0.1.0"
