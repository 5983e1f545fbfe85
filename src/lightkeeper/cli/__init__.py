"""The ``lightkeeper`` command line: `main` is the entry point (see ``lightkeeper.cli.main``)."""
