"""Throwaway bank stores for tests, on SQLite and, where one is configured, PostgreSQL.

Tests that touch the store run against every backend `backends()` names, so that the same
contract holds on the embedded default and on the production database:

    @pytest.fixture(params=backends())
    def store(request):
        with temporary_store(request.param) as store:
            yield store

SQLite stores live in memory. PostgreSQL runs when ``LIGHTKEEPER_TEST_POSTGRES_URL`` names
a server and a role allowed to create databases (e.g.
``postgresql+psycopg://postgres@/postgres?host=/tmp/pg``): each store gets a database of
its own, dropped afterwards. Without it, PostgreSQL cases are skipped, saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lightkeeper.banks.store import BankStore

TEST_POSTGRES_ENV = "LIGHTKEEPER_TEST_POSTGRES_URL"


def backends() -> list[str]:
    """The backends to test: always "sqlite", and "postgresql"."""
    return ["sqlite", "postgresql"]


def postgres_url() -> str | None:
    """The PostgreSQL server to test against, if one is configured."""
    return os.environ.get(TEST_POSTGRES_ENV) or None


@contextmanager
def temporary_store(backend: str) -> Iterator[BankStore]:
    """A fresh, empty store on `backend`; skips (pytest) when PostgreSQL is not configured."""
    with temporary_database(backend) as url, BankStore.open(url) as store:
        yield store


@contextmanager
def temporary_database(backend: str) -> Iterator[str]:
    """The URL of a fresh, empty database on `backend`, dropped afterwards (no schema yet).

    SQLite: in memory. PostgreSQL: a database of its own on the configured server; the
    test is skipped when there is none.
    """
    if backend == "sqlite":
        yield "sqlite://"
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    admin_url = postgres_url()
    if admin_url is None:
        import pytest  # only tests get here

        pytest.skip(f"PostgreSQL not configured: set {TEST_POSTGRES_ENV}")
    name = f"lightkeeper_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
