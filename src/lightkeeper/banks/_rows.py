"""Typed handles on the tables, and conversions between rows and the public records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Select, Table, func, select

from lightkeeper.banks.models import (
    BankRow,
    ChangeRow,
    EntryRegionRow,
    EntryRow,
    ImportRunRow,
    StoreMetaRow,
    ThresholdRow,
)
from lightkeeper.banks.records import (
    Bank,
    BankKind,
    Change,
    ChangeOp,
    Entry,
    ImportRun,
    ImportStatus,
)

BANKS = cast(Table, BankRow.__table__)
THRESHOLDS = cast(Table, ThresholdRow.__table__)
ENTRIES = cast(Table, EntryRow.__table__)
REGIONS = cast(Table, EntryRegionRow.__table__)
CHANGES = cast(Table, ChangeRow.__table__)
RUNS = cast(Table, ImportRunRow.__table__)
META = cast(Table, StoreMetaRow.__table__)

#: Entry fields that come from a list and are replaced when the list is imported again.
ENTRY_META = ("list_name", "list_version", "external_id", "classification", "note")
ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def entry_select() -> Select[Any]:
    """SELECT of whole entries with their bank's name, columns in `Entry`'s field order."""
    return select(
        ENTRIES.c.id,
        ENTRIES.c.bank_id,
        BANKS.c.name,
        *(ENTRIES.c[name] for name in ENTRY_FIELDS[3:]),
    ).join(BANKS, BANKS.c.id == ENTRIES.c.bank_id)


def to_entry(row: Sequence[Any]) -> Entry:
    """An `Entry` from a row of `entry_select` (positional: this runs once per exported row)."""
    return Entry(*row)


def to_bank(row: Row[Any], bank_thresholds: dict[str, int]) -> Bank:
    return Bank(
        id=row.id,
        name=row.name,
        kind=cast(BankKind, row.kind),
        description=row.description,
        enabled=row.enabled,
        match_dihedral=row.match_dihedral,
        pdq_quality_floor=row.pdq_quality_floor,
        regions=row.regions,
        region_threshold=row.region_threshold,
        thresholds=bank_thresholds,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def change_select() -> Select[Any]:
    """SELECT of change-log rows as `Change` wants them.

    Add and update rows take the signal type, value and enabled state from the entry as it
    is now; an entry removed since leaves them None (its removal follows later in the log).
    """
    return (
        select(
            CHANGES.c.seq,
            CHANGES.c.bank_id,
            BANKS.c.name,
            CHANGES.c.entry_id,
            CHANGES.c.op,
            func.coalesce(CHANGES.c.signal_type, ENTRIES.c.signal_type),
            func.coalesce(CHANGES.c.value, ENTRIES.c.value),
            ENTRIES.c.enabled,
            ENTRIES.c.disabled_until,
            CHANGES.c.changed_at,
        )
        .outerjoin(BANKS, BANKS.c.id == CHANGES.c.bank_id)
        .outerjoin(
            ENTRIES, (ENTRIES.c.id == CHANGES.c.entry_id) & CHANGES.c.op.in_(("add", "update"))
        )
    )


def to_change(row: Sequence[Any]) -> Change:
    (seq, bank_id, bank, entry_id, op, signal_type, value, enabled, until, changed_at) = row
    return Change(
        seq=seq,
        bank_id=bank_id,
        bank=bank,
        entry_id=entry_id,
        op=cast(ChangeOp, op),
        signal_type=signal_type,
        value=value,
        enabled=enabled,
        disabled_until=until,
        changed_at=changed_at,
    )


def to_import_run(row: Row[Any]) -> ImportRun:
    return ImportRun(
        id=row.id,
        bank=row.bank_name,
        format=row.format,
        list_name=row.list_name,
        list_version=row.list_version,
        status=cast(ImportStatus, row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        added=row.added,
        updated=row.updated,
        removed=row.removed,
        unchanged=row.unchanged,
        invalid=row.invalid,
        skipped=row.skipped,
        error=row.error,
    )


def change_row(
    bank_id: int,
    entry_id: int | None,
    op: ChangeOp,
    now: datetime,
    removed: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A change-log row; `removed` is the (signal type, value) of a removed entry."""
    return {
        "bank_id": bank_id,
        "entry_id": entry_id,
        "op": op,
        "signal_type": None if removed is None else removed[0],
        "value": None if removed is None else removed[1],
        "changed_at": now,
    }
