"""Negative feedback: list entries a person judged wrong for this platform, suppressed here and
handed back to the list's provider.

A false-positive decision, or an upheld appeal, says that the content of a case is not what
the entries it matched claim. For every acting (block-bank) match recorded in the case, over
every copy of the content, `suppress_in` does three things inside the decision's own
transaction:

1. **disables the entry** (``entries.enabled`` false, an ``update`` in the change log and an
   ``entry.disable`` audit event, exactly as `BankStore.disable_entry` writes them), so that
   every process's index stops matching it within its follow interval, and the matcher, which
   reads each candidate entry back, stops at once;
2. **adds the entry's hash to the allow bank** named by ``LIGHTKEEPER_FALSE_POSITIVE_BANK``
   (made, as an allow bank, on first use). Re-importing a list never re-enables a disabled
   entry (the store keeps ``enabled`` when an entry is re-added), but a list that deletes
   the entry and adds it back later, or a bank rebuilt from the list, brings it back as a
   new, enabled entry: the allow entry still suppresses it. An exact hash in the allow bank
   suppresses every match of that very file; a perceptual one suppresses perceptual
   matches of content near it (`lightkeeper.matching.matcher`);
3. **records a negative-feedback row** (once per case and entry): bank, entry id, signal
   type, the list's name, version and external id, the distance, why, when and who.

The writes are made in the caller's transaction rather than through `BankStore` methods so
that a decision and its suppression commit together or not at all (and on PostgreSQL a store
method called inside it would wait forever for the writers' lock that transaction holds).

`export_feedback` hands the rows not yet exported to whoever sends them to the provider, and
marks them exported in the same transaction (an audit event says how many).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Row, Table, insert, select, update

from lightkeeper.actions.cases import CASE_MATCHES
from lightkeeper.banks import _engine
from lightkeeper.banks.audit import acting_as, record
from lightkeeper.banks.models import BankRow, ChangeRow, EntryRow, NegativeFeedbackRow
from lightkeeper.banks.records import Bank
from lightkeeper.banks.store import BankStore
from lightkeeper.banks.validation import validate_bank_name
from lightkeeper.errors import Conflict, InvalidRequest, NotFound

__all__ = [
    "FEEDBACK",
    "NegativeFeedback",
    "ensure_allow_bank",
    "export_feedback",
    "list_feedback",
    "suppress_in",
]

FEEDBACK = cast(Table, NegativeFeedbackRow.__table__)
ENTRIES = cast(Table, EntryRow.__table__)
BANKS = cast(Table, BankRow.__table__)
CHANGES = cast(Table, ChangeRow.__table__)

_ALLOW_DESCRIPTION = "Known false positives, added by review decisions (lightkeeper.review)"


@dataclass(frozen=True, slots=True)
class NegativeFeedback:
    """One list entry judged wrong for this platform, in one case."""

    id: int
    case_id: int
    bank: str
    entry_id: int
    signal_type: str
    external_id: str | None
    list_name: str | None
    list_version: str | None
    distance: int | None
    #: "false_positive" or "appeal_upheld".
    reason: str
    at: datetime
    #: Who decided (``reviewer:<name>``).
    actor: str
    exported_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "bank": self.bank,
            "entry_id": self.entry_id,
            "signal_type": self.signal_type,
            "external_id": self.external_id,
            "list_name": self.list_name,
            "list_version": self.list_version,
            "distance": self.distance,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "exported_at": None if self.exported_at is None else self.exported_at.isoformat(),
        }


def _to_feedback(row: Row[Any]) -> NegativeFeedback:
    return NegativeFeedback(
        id=int(row.id),
        case_id=int(row.case_id),
        bank=row.bank,
        entry_id=int(row.entry_id),
        signal_type=row.signal_type,
        external_id=row.external_id,
        list_name=row.list_name,
        list_version=row.list_version,
        distance=row.distance,
        reason=row.reason,
        at=row.at,
        actor=row.actor,
        exported_at=row.exported_at,
    )


# ---------------------------------------------------------------------- suppression


def ensure_allow_bank(store: BankStore, name: str, *, actor: str) -> Bank:
    """The allow bank `name`, made if missing; `InvalidRequest` if a block bank has the name
    (adding a false positive to a block bank would block it)."""
    validate_bank_name(name)
    try:
        bank = store.get_bank(name)
    except NotFound:
        try:
            with acting_as(actor):
                bank = store.create_bank(name, kind="allow", description=_ALLOW_DESCRIPTION)
        except Conflict:  # made by someone else meanwhile
            bank = store.get_bank(name)
    if bank.kind != "allow":
        raise InvalidRequest(
            f"bank {name!r} (LIGHTKEEPER_FALSE_POSITIVE_BANK) is a {bank.kind} bank, not an "
            "allow bank: false positives cannot be added to it; name another bank or change "
            "its kind"
        )
    return bank


def suppress_in(
    conn: Connection,
    case_id: int,
    *,
    reason: str,
    allow_bank: str,
    actor: str,
    now: datetime,
) -> list[int]:
    """Suppress every block entry the case's recorded matches acted on, and record negative
    feedback, inside the caller's write transaction (see the module docstring). Returns the
    ids of the feedback rows added; the audit events are recorded as `actor`."""
    allow_id = conn.execute(
        select(BANKS.c.id).where(BANKS.c.name == allow_bank, BANKS.c.kind == "allow")
    ).scalar()
    if allow_id is None:
        raise Conflict(f"allow bank {allow_bank!r} was removed meanwhile; try again")
    acting = _acting_entries(conn, case_id)
    already = set(
        conn.execute(select(FEEDBACK.c.entry_id).where(FEEDBACK.c.case_id == case_id)).scalars()
    )
    added_feedback: list[int] = []
    allowed = 0
    with acting_as(actor):
        for entry_id, item in acting.items():
            bank = _disable_in(conn, entry_id, case_id, reason, now) or str(item["bank"])
            value = item.get("value")
            if value and _allow_in(conn, int(allow_id), str(item["signal_type"]), str(value), now):
                allowed += 1
            if entry_id in already:
                continue
            added_feedback.append(
                int(
                    conn.execute(
                        insert(FEEDBACK).returning(FEEDBACK.c.id),
                        {
                            "case_id": case_id,
                            "bank": bank,
                            "entry_id": entry_id,
                            "signal_type": str(item["signal_type"]),
                            "external_id": item.get("external_id"),
                            "list_name": item.get("list_name"),
                            "list_version": item.get("list_version"),
                            "distance": item.get("distance"),
                            "reason": reason,
                            "at": now,
                            "actor": actor[:200],
                            "exported_at": None,
                        },
                    ).scalar_one()
                )
            )
        if allowed:
            record(
                conn,
                "entries.write",
                f"bank:{allow_bank}",
                {"added": allowed, "updated": 0, "removed": 0, "case_id": case_id},
                at=now,
            )
    return added_feedback


def _acting_entries(conn: Connection, case_id: int) -> dict[int, dict[str, Any]]:
    """The block entries that acted in the case, by entry id, each with the evidence of its
    closest match over every recorded copy."""
    found: dict[int, dict[str, Any]] = {}
    rows = conn.execute(
        select(CASE_MATCHES.c.evidence)
        .where(CASE_MATCHES.c.case_id == case_id)
        .order_by(CASE_MATCHES.c.id)
    )
    for (evidence,) in rows:
        for item in json.loads(evidence):
            if item.get("bank_kind", "block") != "block":
                continue
            entry_id = int(item["entry_id"])
            held = found.get(entry_id)
            if held is None or int(item.get("distance", 0)) < int(held.get("distance", 0)):
                found[entry_id] = item
    return found


def _disable_in(
    conn: Connection, entry_id: int, case_id: int, reason: str, now: datetime
) -> str | None:
    """Disable one entry for good, as `BankStore.disable_entry` does; its bank's name now
    (None when the entry was removed since: nothing left to disable)."""
    row = conn.execute(
        select(ENTRIES.c.bank_id, ENTRIES.c.enabled, ENTRIES.c.disabled_until, BANKS.c.name)
        .join(BANKS, BANKS.c.id == ENTRIES.c.bank_id)
        .where(ENTRIES.c.id == entry_id)
    ).first()
    if row is None:
        return None
    if row.enabled or row.disabled_until is not None:
        conn.execute(
            update(ENTRIES)
            .where(ENTRIES.c.id == entry_id)
            .values(enabled=False, disabled_until=None, updated_at=now)
        )
        conn.execute(
            insert(CHANGES),
            {
                "bank_id": row.bank_id,
                "entry_id": entry_id,
                "op": "update",
                "signal_type": None,
                "value": None,
                "changed_at": now,
            },
        )
        record(
            conn,
            "entry.disable",
            f"bank:{row.name}",
            {"entry_id": entry_id, "until": None, "case_id": case_id, "reason": reason},
            at=now,
        )
    return str(row.name)


def _allow_in(conn: Connection, bank_id: int, signal_type: str, value: str, now: datetime) -> bool:
    """Add a hash to the allow bank unless it holds it already; whether it was added."""
    held = conn.execute(
        select(ENTRIES.c.id).where(
            ENTRIES.c.bank_id == bank_id,
            ENTRIES.c.signal_type == signal_type,
            ENTRIES.c.value == value,
        )
    ).first()
    if held is not None:
        return False
    entry_id = conn.execute(
        insert(ENTRIES).returning(ENTRIES.c.id),
        {
            "bank_id": bank_id,
            "signal_type": signal_type,
            "value": value,
            "list_name": None,
            "list_version": None,
            "external_id": None,
            "classification": None,
            "note": "judged a false positive in review",
            "added_at": now,
            "updated_at": now,
            "enabled": True,
            "disabled_until": None,
        },
    ).scalar_one()
    conn.execute(
        insert(CHANGES),
        {
            "bank_id": bank_id,
            "entry_id": entry_id,
            "op": "add",
            "signal_type": None,
            "value": None,
            "changed_at": now,
        },
    )
    return True


# ---------------------------------------------------------------------- reading, export


def list_feedback(
    store: BankStore, *, bank: str | None = None, unexported: bool = False
) -> list[NegativeFeedback]:
    """Negative feedback, oldest first: of one bank, and only what was not exported yet."""
    query = select(FEEDBACK).order_by(FEEDBACK.c.id)
    if bank is not None:
        query = query.where(FEEDBACK.c.bank == validate_bank_name(bank))
    if unexported:
        query = query.where(FEEDBACK.c.exported_at.is_(None))
    rows = _engine.read(store.engine, lambda conn: conn.execute(query).all())
    return [_to_feedback(row) for row in rows]


def export_feedback(store: BankStore, *, bank: str | None = None) -> list[dict[str, Any]]:
    """The feedback not exported yet (of one bank), as JSON-ready dicts for the list's
    provider, marked exported in the same transaction: a second export gives only what came
    since. Each dict carries the entry's hash (``value``) while the entry still exists, and
    never the reviewer's name."""
    wanted: list[ColumnElement[bool]] = [FEEDBACK.c.exported_at.is_(None)]
    if bank is not None:
        wanted.append(FEEDBACK.c.bank == validate_bank_name(bank))
    now = datetime.now(UTC)

    def work(conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(
            select(FEEDBACK, ENTRIES.c.value)
            .outerjoin(ENTRIES, ENTRIES.c.id == FEEDBACK.c.entry_id)
            .where(*wanted)
            .order_by(FEEDBACK.c.id)
        ).all()
        if not rows:
            return []
        ids = [int(row.id) for row in rows]
        for start in range(0, len(ids), 1000):
            conn.execute(
                update(FEEDBACK)
                .where(FEEDBACK.c.id.in_(ids[start : start + 1000]))
                .values(exported_at=now)
            )
        record(
            conn,
            "feedback.export",
            "feedback" if bank is None else f"bank:{bank}",
            {"rows": len(ids), "first": ids[0], "last": ids[-1]},
            at=now,
        )
        out = []
        for row in rows:
            item = _to_feedback(row).to_dict()
            del item["actor"]
            item["value"] = row.value
            item["exported_at"] = now.isoformat()
            out.append(item)
        return out

    return _engine.write(store.engine, work)
