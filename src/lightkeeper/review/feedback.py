"""Negative feedback: list entries a person judged wrong for this platform, suppressed here and
handed back to the list's provider.

A false-positive decision, or an upheld appeal, says that the content of a case is not what
the entries it matched claim. `suppress_in` does four things inside the decision's own
transaction:

1. for every acting (block-bank) entry recorded in the case, over every copy of the content,
   **disables the entry** (``entries.enabled`` false, an ``update`` in the change log and an
   ``entry.disable`` audit event, written by `lightkeeper.banks.store.set_enabled_in` as
   `BankStore.disable_entry` writes them), so that every process's index stops matching it
   within its follow interval, and the matcher, which reads each candidate entry back,
   stops at once;
2. **records the entry's hash as suppressed in its bank** (``entry_suppressions``, by bank
   name). Re-importing a list never re-enables a disabled entry (the store keeps
   ``enabled`` when an entry is re-added), and a list that deletes the entry and adds it
   back later, or a bank rebuilt under the same name, adds it disabled. Only that bank: the
   same hash in another list is that list's claim, and still matches;
3. **adds the content's own SHA-256 to the allow bank** named by
   ``LIGHTKEEPER_FALSE_POSITIVE_BANK`` (made, as an allow bank, on first use, in the same
   transaction: a refused decision makes no bank): this very
   file was judged benign, so no bank's match of it acts again. Never the matched entry's
   hash: for a perceptual match that is the listed picture's hash, and an allow entry there
   would suppress matches of the listed picture itself, in every bank
   (`lightkeeper.matching.matcher`);
4. **records a negative-feedback row** (once per case and entry): bank, entry id, signal
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

from lightkeeper.actions.cases import CASE_MATCHES, CASES
from lightkeeper.banks import _bulk, _engine
from lightkeeper.banks.audit import acting_as, record
from lightkeeper.banks.models import (
    BankRow,
    EntryRow,
    EntrySuppressionRow,
    NegativeFeedbackRow,
)
from lightkeeper.banks.records import NewEntry
from lightkeeper.banks.store import BankStore, create_bank_in, set_enabled_in
from lightkeeper.banks.validation import validate_bank_name
from lightkeeper.errors import InvalidRequest, NotFound

__all__ = [
    "FEEDBACK",
    "NegativeFeedback",
    "check_allow_bank",
    "export_feedback",
    "list_feedback",
    "suppress_in",
]

FEEDBACK = cast(Table, NegativeFeedbackRow.__table__)
ENTRIES = cast(Table, EntryRow.__table__)
BANKS = cast(Table, BankRow.__table__)
SUPPRESSIONS = cast(Table, EntrySuppressionRow.__table__)

#: The signal type of the content's own hash that a false positive allows.
_CONTENT_SIGNAL = "sha256"
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


def check_allow_bank(store: BankStore, name: str) -> None:
    """Refuse, before a decision is taken, an allow-bank setting that `suppress_in` would
    refuse: an invalid name, or a block bank of that name (adding a false positive to a block
    bank would block it). Creates nothing: `suppress_in` makes the bank on first use, inside
    the decision's transaction, so a decision refused for any reason leaves no bank behind."""
    validate_bank_name(name)
    try:
        found = store.get_bank(name)
    except NotFound:
        return
    _require_allow(name, found.kind)


def _require_allow(name: str, kind: str) -> None:
    if kind != "allow":
        raise InvalidRequest(
            f"bank {name!r} (LIGHTKEEPER_FALSE_POSITIVE_BANK) is a {kind} bank, not an "
            "allow bank: false positives cannot be added to it; name another bank or change "
            "its kind"
        )


def _allow_bank_in(conn: Connection, name: str, now: datetime) -> int:
    """The id of the allow bank `name`, made if missing, inside the caller's write
    transaction (writers are serialised, so nobody makes it between the look and the
    insert)."""
    found = conn.execute(select(BANKS.c.id, BANKS.c.kind).where(BANKS.c.name == name)).first()
    if found is None:
        return create_bank_in(conn, name, kind="allow", description=_ALLOW_DESCRIPTION, now=now)
    _require_allow(name, str(found.kind))
    return int(found.id)


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
    content = conn.execute(select(CASES.c.sha256).where(CASES.c.id == case_id)).scalar_one()
    acting = _acting_entries(conn, case_id)
    already = set(
        conn.execute(select(FEEDBACK.c.entry_id).where(FEEDBACK.c.case_id == case_id)).scalars()
    )
    added_feedback: list[int] = []
    with acting_as(actor):
        for entry_id, item in acting.items():
            bank = _disable_in(conn, entry_id, case_id, reason, now) or str(item["bank"])
            value = item.get("value")
            if value:
                key = (bank, str(item["signal_type"]), str(value))
                _suppress_in(conn, key, case_id=case_id, reason=reason, actor=actor, now=now)
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
        allow_id = _allow_bank_in(conn, allow_bank, now)
        _allow_in(conn, allow_id, allow_bank, str(content), case_id, now)
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
    """Disable one entry for good; its bank's name now (None when the entry was removed
    since: nothing left to disable)."""
    try:
        entry = set_enabled_in(
            conn,
            entry_id,
            enabled=False,
            disabled_until=None,
            now=now,
            details={"case_id": case_id, "reason": reason},
        )
    except NotFound:
        return None
    return entry.bank


def _suppress_in(
    conn: Connection,
    key: tuple[str, str, str],
    *,
    case_id: int,
    reason: str,
    actor: str,
    now: datetime,
) -> None:
    """Record (bank name, signal type, value) as suppressed, unless it is already."""
    bank, signal_type, value = key
    held = conn.execute(
        select(SUPPRESSIONS.c.id).where(
            SUPPRESSIONS.c.bank == bank,
            SUPPRESSIONS.c.signal_type == signal_type,
            SUPPRESSIONS.c.value == value,
        )
    ).first()
    if held is None:
        conn.execute(
            insert(SUPPRESSIONS),
            {
                "bank": bank,
                "signal_type": signal_type,
                "value": value,
                "case_id": case_id,
                "reason": reason,
                "at": now,
                "actor": actor[:200],
            },
        )


def _allow_in(
    conn: Connection, bank_id: int, bank: str, sha256: str, case_id: int, now: datetime
) -> None:
    """Put the content's SHA-256 in the allow bank, enabled (an entry that is there but
    disabled is enabled again: a person has just judged the file benign), with its audit
    record; nothing when it is there and enabled."""
    held = conn.execute(
        select(ENTRIES.c.id, ENTRIES.c.enabled, ENTRIES.c.disabled_until).where(
            ENTRIES.c.bank_id == bank_id,
            ENTRIES.c.signal_type == _CONTENT_SIGNAL,
            ENTRIES.c.value == sha256,
        )
    ).first()
    if held is not None:
        if not held.enabled or held.disabled_until is not None:
            details = {"case_id": case_id, "reason": "judged a false positive in review"}
            set_enabled_in(
                conn, int(held.id), enabled=True, disabled_until=None, now=now, details=details
            )
        return
    entry = NewEntry(_CONTENT_SIGNAL, sha256, note="judged a false positive in review")
    report = _bulk.apply(conn, bank_id, _bulk.plans([entry]), now)
    record(
        conn,
        "entries.write",
        f"bank:{bank}",
        {"added": report.added, "updated": 0, "removed": 0, "case_id": case_id},
        at=now,
    )


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
