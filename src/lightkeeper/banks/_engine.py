"""Database engine set-up and transactions that survive a busy SQLite file.

SQLite allows one writer at a time. Several processes (an importer, a curator, the service)
share one file, so:

- WAL journal: readers never block the writer nor the writer the readers.
- ``BEGIN IMMEDIATE`` for every write transaction: the write lock is taken at the start, so
  two writers queue on the busy handler instead of both reading, then one failing to upgrade
  its lock with an immediate "database is locked" that no timeout can help.
- a busy timeout, and on top of it a few retries of the whole transaction with backoff, for
  the rare lock error that still escapes (WAL checkpoints, a writer holding the lock longer
  than the timeout).
- ``synchronous=NORMAL``: in WAL mode a committed transaction survives a crash of the
  process; only a power cut can lose the last commits, and never corrupts the file.
- foreign keys on (SQLite leaves them off by default).

Python's sqlite3 module (3.11) starts transactions by itself, and not for every statement;
its own transaction control is switched off and SQLAlchemy's ``begin`` event emits ``BEGIN``.

On PostgreSQL, every write transaction first takes one transaction-scoped advisory lock, so
writers run one at a time there too: change-log sequence numbers then become visible in
commit order (a follower reading "everything after seq N" never skips a change committed
late), and the bulk path may check for existing rows before inserting. SQLite gets both for
free from its single writer. Reads are never blocked.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from lightkeeper.errors import StoreBusy

T = TypeVar("T")

#: Seconds a writer waits for SQLite's lock before the driver gives up.
BUSY_TIMEOUT_S = 30.0
#: Whole-transaction attempts when the lock still could not be had.
WRITE_ATTEMPTS = 5
#: Page cache per connection (KiB; SQLite's default is 2 MiB, too small for bulk imports).
CACHE_KIB = 64 * 1024

_WRITE_OPTION = "lightkeeper_write"
#: PostgreSQL advisory lock key serialising the bank store's writers ("LKBANKS" in ASCII).
_PG_WRITE_LOCK = 0x4C4B42414E4B53


def make_engine(url: str) -> Engine:
    """An engine for `url`, set up for concurrent use as described in the module docstring."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode. The mode persists in the file, so it is usually set
    already, and reading it needs no more than other readers do. Switching it needs the
    database to itself, and SQLite answers "database is locked" at once, without waiting on
    the busy timeout, while another process holds a transaction (a second process opening a
    fresh store while the first migrates it): so the switch is retried until that timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()
            if mode is not None and str(mode[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _sqlite_engine(url: str) -> Engine:
    in_memory = ":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite+pysqlite:")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    if in_memory:
        # One shared connection, or every checkout would see its own empty database.
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see module doc
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                _use_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def is_locked(exc: BaseException) -> bool:
    """True for SQLite's "database is locked/busy" (and PostgreSQL's lock timeouts)."""
    message = str(getattr(exc, "orig", exc)).lower()
    return (
        "database is locked" in message
        or "database is busy" in message
        or "database table is locked" in message
        or "lock timeout" in message
        or "deadlock detected" in message
    )


def write(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in one write transaction, retried whole if the database stays locked.

    `work` may run more than once, so it must not consume iterators or keep side effects
    outside the connection.
    """
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with engine.connect() as conn:
                conn.execution_options(**{_WRITE_OPTION: True})
                with conn.begin():
                    if conn.dialect.name == "postgresql":
                        # Wait for the lock as long as SQLite's busy timeout, not forever.
                        conn.exec_driver_sql(
                            f"SET LOCAL lock_timeout = '{int(BUSY_TIMEOUT_S * 1000)}ms'"
                        )
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_WRITE_LOCK})")
                    return work(conn)
        except OperationalError as exc:
            if not is_locked(exc):
                raise
            if attempt == WRITE_ATTEMPTS:
                raise StoreBusy(
                    f"the bank store stayed locked by another writer after {attempt} attempts "
                    f"of {BUSY_TIMEOUT_S:.0f} s each; try again later"
                ) from exc
            time.sleep(random.uniform(0.05, 0.25) * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in one read transaction (a consistent snapshot; never blocks writers)."""
    with engine.connect() as conn, conn.begin():
        return work(conn)
