"""Who changed what, when: the audit trail of bank and key changes.

Every write that changes a bank (settings, entries, imports) or an API key records one event
in the same transaction as the change itself, so the trail and the data never disagree.
The *actor* is whoever the calling code says is acting, set for a block of code with
`acting_as` (the HTTP service names the API key, the CLI the local user):

    with acting_as("key:3 (curator-bot)"):
        store.add_entry("known", "pdq", value)

Details are short JSON (ids, counts, settings): a bulk write records how many entries it
added or removed, never the hash values themselves, since hash lists are confidential.

The trail is append-only and hash-chained: each event's hash commits to its content and to
the event before it (the encoding, and what `verify` can and cannot detect, are in
``lightkeeper.banks._audit_chain``). Appends are serialised on the one-row ``audit_head``
table: `record` locks it (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's single writer
already serialises), reads the last position and hash, inserts, and moves the head, all in the
caller's transaction. So concurrent writers, in any number of processes, build one chain with
no fork; a rolled-back append rolls back its head move too. The lock is held until the
caller's transaction ends: record the event once the transaction's other writes are done.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lightkeeper.banks import _engine
from lightkeeper.banks._audit_chain import (
    GENESIS_HASH,
    PROBLEM_KINDS,
    ChainChecker,
    ChainEvent,
    ChainHead,
    Problem,
    VerifyReport,
    event_hash,
    format_timestamp,
    parse_anchor,
)
from lightkeeper.banks.models import AuditEventRow, AuditHeadRow
from lightkeeper.errors import Conflict

__all__ = [
    "GENESIS_HASH",
    "PROBLEM_KINDS",
    "AuditEvent",
    "ChainHead",
    "Problem",
    "VerifyReport",
    "acting_as",
    "chain_head",
    "current_actor",
    "event_hash",
    "format_timestamp",
    "list_events",
    "record",
    "verify",
]

AUDIT = cast(Table, AuditEventRow.__table__)
HEAD = cast(Table, AuditHeadRow.__table__)
_HEAD_ID = 1
#: Events read per query by `verify` (keyset pages: bounded memory on any trail).
VERIFY_BATCH = 5000


def _local_user() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "local:unknown"


_ACTOR: ContextVar[str | None] = ContextVar("lightkeeper_actor", default=None)


def current_actor() -> str:
    """Who is acting now: set by `acting_as`, else the local operating-system user."""
    return _ACTOR.get() or _local_user()


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Attribute the writes made inside the block to `actor`."""
    token = _ACTOR.set(actor[:200])
    try:
        yield
    finally:
        _ACTOR.reset(token)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    #: Its place in the hash chain (1, 2, 3 …), the hash before it, and its own.
    position: int
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": self.details,
            "position": self.position,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def record(
    conn: Connection,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Append one event inside the caller's transaction, chained to the one before it.

    Holds the chain's head locked until that transaction ends (see the module docstring).
    """
    when = at or datetime.now(UTC)
    # Cut to the columns' lengths here: what is hashed must be exactly what is stored.
    actor, action, subject = current_actor()[:200], action[:64], subject[:200]
    text = json.dumps(dict(details or {}), sort_keys=True, default=str)
    values = {"at": when, "actor": actor, "action": action, "subject": subject, "details": text}
    head = _lock_head(conn)
    position = head.position + 1
    # The id comes from the table's sequence, and the hash covers it: insert, then seal.
    event_id = int(
        conn.execute(
            insert(AUDIT).returning(AUDIT.c.id),
            {**values, "position": position, "prev_hash": head.hash, "hash": ""},
        ).scalar_one()
    )
    digest = event_hash(event_id, position, when, actor, action, subject, text, head.hash)
    conn.execute(update(AUDIT).where(AUDIT.c.id == event_id).values(hash=digest))
    moved = conn.execute(
        update(HEAD)
        .where(HEAD.c.id == _HEAD_ID, HEAD.c.position == head.position)
        .values(event_id=event_id, position=position, hash=digest)
    ).rowcount
    if moved != 1:  # cannot happen under the lock; never let a fork commit if it does
        raise Conflict("the audit trail's head moved during an append; try again")


def _lock_head(conn: Connection) -> ChainHead:
    """The chain's head, locked for this transaction; rebuilt from the last event if gone.

    A missing head row can only be someone's hand in the database; the head kept here is no
    defence against such a hand anyway (only one recorded elsewhere is, see `verify`), so
    writes go on, and `verify` reported it until now.
    """
    query = select(HEAD).where(HEAD.c.id == _HEAD_ID).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        last = conn.execute(
            select(AUDIT.c.id, AUDIT.c.position, AUDIT.c.hash)
            .order_by(AUDIT.c.position.desc())
            .limit(1)
        ).first()
        restored = (
            {"event_id": 0, "position": 0, "hash": GENESIS_HASH}
            if last is None
            else {"event_id": last.id, "position": last.position, "hash": last.hash}
        )
        dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(dialect_insert(HEAD).values(id=_HEAD_ID, **restored).on_conflict_do_nothing())
        row = conn.execute(query).one()
    return ChainHead(int(row.event_id), int(row.position), str(row.hash))


def _read_head(conn: Connection) -> ChainHead | None:
    row = conn.execute(select(HEAD).where(HEAD.c.id == _HEAD_ID)).first()
    return None if row is None else ChainHead(int(row.event_id), int(row.position), str(row.hash))


def chain_head(engine: Engine) -> ChainHead | None:
    """The chain's last event as the head row records it (None if that row is gone).

    Write its `ChainHead.anchor` down somewhere the database's users cannot change, and
    check the trail against it later with ``verify(engine, expect_head=anchor)``.
    """
    return _engine.read(engine, _read_head)


def verify(
    engine: Engine, *, expect_head: str | None = None, max_problems: int = 1000
) -> VerifyReport:
    """Walk the whole trail in id order and report every place it was tampered with.

    Reads one consistent snapshot (``REPEATABLE READ`` on PostgreSQL, a read transaction on
    SQLite), so appends made meanwhile are simply not seen; memory stays bounded whatever the
    trail's length. `expect_head` (``POSITION:HASH`` or ``HASH``, from `ChainHead.anchor`)
    also checks that the trail still reaches that head unchanged: the only defence against
    removing events from the end and moving the head back. At most `max_problems` problems are
    listed; `VerifyReport.problem_count` counts all.
    """
    anchor = None if expect_head is None else parse_anchor(expect_head)
    columns = [
        AUDIT.c.id,
        AUDIT.c.position,
        AUDIT.c.at,
        AUDIT.c.actor,
        AUDIT.c.action,
        AUDIT.c.subject,
        AUDIT.c.details,
        AUDIT.c.prev_hash,
        AUDIT.c.hash,
    ]
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            checker = ChainChecker(_read_head(conn), anchor=anchor, max_problems=max_problems)
            after: int | None = None
            while True:
                query = select(*columns).order_by(AUDIT.c.id).limit(VERIFY_BATCH)
                if after is not None:
                    query = query.where(AUDIT.c.id > after)
                rows = conn.execute(query).all()
                for row in rows:
                    checker.feed(ChainEvent(*row))
                if len(rows) < VERIFY_BATCH:
                    break
                after = rows[-1].id
    return checker.finish()


def list_events(
    engine: Any, *, after_id: int = 0, limit: int = 1000, subject: str | None = None
) -> list[AuditEvent]:
    """Events with an id above `after_id`, oldest first (optionally of one subject)."""
    query = select(AUDIT).where(AUDIT.c.id > after_id)
    if subject is not None:
        query = query.where(AUDIT.c.subject == subject)
    query = query.order_by(AUDIT.c.id).limit(limit)

    def work(conn: Connection) -> list[AuditEvent]:
        return [
            AuditEvent(
                r.id,
                r.at,
                r.actor,
                r.action,
                r.subject,
                json.loads(r.details),
                r.position,
                r.prev_hash,
                r.hash,
            )
            for r in conn.execute(query)
        ]

    return _engine.read(engine, work)
