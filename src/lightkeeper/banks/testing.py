"""Throwaway bank stores for tests, on SQLite and on a real PostgreSQL server.

Tests that touch the store run against every backend `backends()` names, so that the same
contract holds on the embedded default and on the production database:

    @pytest.fixture(params=backends())
    def store(request):
        with temporary_store(request.param) as store:
            yield store

SQLite stores live in memory. PostgreSQL stores each get a database of their own, dropped
afterwards, on:

- the server ``LIGHTKEEPER_TEST_POSTGRES_URL`` names, with a role allowed to create databases
  (e.g. ``postgresql+psycopg://postgres@/postgres?host=/tmp/pg``), if it is set;
- otherwise a throwaway server this process starts itself (`lightkeeper.banks.pgserver`) the
  first time a PostgreSQL case runs, and stops at exit: one server per test session.

When that server cannot be started (no binaries, say), PostgreSQL cases are skipped with the
reason, unless ``LIGHTKEEPER_REQUIRE_POSTGRES=1`` (``make test`` sets it), where they fail:
CI must never pass by skipping the production database.

Migrating a database costs far more than copying one, so stores are cloned from a template
database migrated once per session (``CREATE DATABASE … TEMPLATE``), each clone with an
instance id of its own; `temporary_database` without ``migrated=True`` gives an empty one,
for tests of the migrations themselves.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import NoReturn

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from lightkeeper.banks.pgserver import PostgresServer
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import StoreUnavailable

TEST_POSTGRES_ENV = "LIGHTKEEPER_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "LIGHTKEEPER_REQUIRE_POSTGRES"


def backends() -> list[str]:
    """The backends to test: always "sqlite", and "postgresql"."""
    return ["sqlite", "postgresql"]


def postgres_url() -> str | None:
    """The PostgreSQL server configured by ``LIGHTKEEPER_TEST_POSTGRES_URL``, if any."""
    return os.environ.get(TEST_POSTGRES_ENV) or None


def postgres_required() -> bool:
    """Whether PostgreSQL cases must fail, not skip, when no server can be had."""
    return os.environ.get(REQUIRE_POSTGRES_ENV, "").strip().lower() in ("1", "true", "yes")


def postgres_admin_url() -> str:
    """A superuser URL of the server PostgreSQL cases use: configured, else started now.

    The session's own server starts on the first call and serves every later one. For tests
    only: when there is no server it skips the calling test, or fails it when PostgreSQL is
    required (see the module docstring).
    """
    return _SESSION.admin_url()


@contextmanager
def temporary_store(backend: str) -> Iterator[BankStore]:
    """A fresh, empty store on `backend` (skipped or failed as `postgres_admin_url` says)."""
    with temporary_database(backend, migrated=True) as url, BankStore.open(url) as store:
        yield store


@contextmanager
def temporary_database(backend: str, *, migrated: bool = False) -> Iterator[str]:
    """The URL of a fresh database on `backend`, dropped afterwards.

    Empty (no schema yet) unless `migrated`, when it holds the current schema already.
    SQLite: in memory (`BankStore.open` migrates it). PostgreSQL: a database of its own on
    the session's server.
    """
    if backend == "sqlite":
        yield "sqlite://"
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    admin_url = _SESSION.admin_url()
    name = _SESSION.take_database(admin_url, migrated=migrated)
    try:
        yield _database_url(admin_url, name)
    finally:
        _SESSION.release_database(admin_url, name)


def _database_url(admin_url: str, name: str) -> str:
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _redraw_instance_id(url: str) -> None:
    """Give a clone an instance id of its own, as migrating it afresh would have.

    The schema's migration draws a random ``store_meta.instance_id`` (it tells one store's
    index snapshots from another's); clones of one template would all share it.
    """
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT to_regclass('store_meta')")).scalar() is not None:
                conn.execute(
                    text("UPDATE store_meta SET value = :value WHERE key = 'instance_id'"),
                    {"value": uuid.uuid4().hex},
                )
    finally:
        engine.dispose()


class _Session:
    """What one test process shares: its server, admin connections and template databases.

    Creating a database takes the server a tenth of a second or so, and the test waits for
    it: so while a test runs, one worker thread already clones the database the next test
    will want, and drops the one the previous test left.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: PostgresServer | None = None
        self._failure: str | None = None
        self._engines: dict[str, Engine] = {}
        self._templates: dict[str, str] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lightkeeper-pg")
        #: The next database of each kind (server URL, template), being made ahead of need.
        self._ahead: dict[tuple[str, str | None], Future[str]] = {}

    def admin_url(self) -> str:
        configured = postgres_url()
        if configured is not None:
            return configured
        with self._lock:
            if self._server is None and self._failure is None:
                try:
                    self._server = PostgresServer.start()
                except StoreUnavailable as exc:
                    self._failure = str(exc)
            if self._server is None:
                _unavailable(self._failure or "unknown reason")
            return self._server.admin_url

    def take_database(self, admin_url: str, *, migrated: bool) -> str:
        """The name of a fresh database, empty or `migrated`; orders the next one like it."""
        template = self._template(admin_url) if migrated else None
        kind = (admin_url, template)
        with self._lock:
            ahead = self._ahead.pop(kind, None)
            with contextlib.suppress(RuntimeError):  # shutting down: no more work ahead
                self._ahead[kind] = self._worker.submit(self._clone, admin_url, template)
        if ahead is not None:
            with contextlib.suppress(Exception):  # one that failed is made again, here
                return ahead.result()
        return self._clone(admin_url, template)

    def release_database(self, admin_url: str, name: str) -> None:
        """Drop a database a test is done with, in the background."""
        try:
            self._worker.submit(self._drop, admin_url, name)
        except RuntimeError:  # shutting down
            self._drop(admin_url, name)

    def _engine(self, admin_url: str) -> Engine:
        with self._lock:
            engine = self._engines.get(admin_url)
            if engine is None:
                engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
                self._engines[admin_url] = engine
            return engine

    def _clone(self, admin_url: str, template: str | None) -> str:
        name = f"lightkeeper_test_{uuid.uuid4().hex[:12]}"
        clause = f' TEMPLATE "{template}"' if template else ""
        with self._engine(admin_url).connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        if template is not None:
            _redraw_instance_id(_database_url(admin_url, name))
        return name

    def _drop(self, admin_url: str, name: str) -> None:
        with self._engine(admin_url).connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def _template(self, admin_url: str) -> str:
        """A database at the current schema to clone, migrated on first use."""
        with self._lock:
            name = self._templates.get(admin_url)
        if name is not None:
            return name
        # Named per process: sessions sharing a configured server may run other code.
        name = f"lightkeeper_template_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with self._engine(admin_url).connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            BankStore.open(_database_url(admin_url, name)).close()
        except BaseException:
            self._drop(admin_url, name)
            raise
        with self._lock:
            self._templates[admin_url] = name
        return name

    def close(self) -> None:
        """Finish the background work; on a configured server drop what is ours; stop ours."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        own = None if self._server is None else self._server.admin_url
        leftovers = [
            (admin_url, future.result())
            for (admin_url, _), future in self._ahead.items()
            if future.done() and not future.cancelled() and future.exception() is None
        ]
        leftovers += list(self._templates.items())
        for admin_url, name in leftovers:
            if admin_url != own:
                with contextlib.suppress(Exception):  # best effort; the server may be gone
                    self._drop(admin_url, name)
        self._ahead.clear()
        self._templates.clear()
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None


def _unavailable(reason: str) -> NoReturn:
    import pytest  # only tests get here

    if postgres_required():
        pytest.fail(
            f"PostgreSQL is required ({REQUIRE_POSTGRES_ENV}=1) but could not be started: {reason}",
            pytrace=False,
        )
    pytest.skip(f"PostgreSQL could not be started: {reason}")


_SESSION = _Session()
atexit.register(_SESSION.close)
