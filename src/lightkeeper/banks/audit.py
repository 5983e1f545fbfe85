"""Who changed what, when: the audit trail of bank and key changes.

Every write that changes a bank (settings, entries, imports) or an API key records one event
in the same transaction as the change itself, so the trail and the data never disagree.
The *actor* is whoever the calling code says is acting, set for a block of code with
`acting_as` (the HTTP service names the API key, the CLI the local user):

    with acting_as("key:3 (curator-bot)"):
        store.add_entry("known", "pdq", value)

Details are short JSON (ids, counts, settings): a bulk write records how many entries it
added or removed, never the hash values themselves, since hash lists are confidential.
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

from sqlalchemy import Connection, Table, insert, select

from lightkeeper.banks import _engine
from lightkeeper.banks.models import AuditEventRow

AUDIT = cast(Table, AuditEventRow.__table__)


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": self.details,
        }


def record(
    conn: Connection,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Append one event inside the caller's transaction."""
    conn.execute(
        insert(AUDIT),
        {
            "at": at or datetime.now(UTC),
            "actor": current_actor(),
            "action": action,
            "subject": subject[:200],
            "details": json.dumps(dict(details or {}), sort_keys=True, default=str),
        },
    )


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
            AuditEvent(r.id, r.at, r.actor, r.action, r.subject, json.loads(r.details))
            for r in conn.execute(query)
        ]

    return _engine.read(engine, work)
