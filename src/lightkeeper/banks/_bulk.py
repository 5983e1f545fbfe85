"""Set-based application of one batch of entry adds and removals, inside a write transaction.

This is the path a 13-million-line list takes, so it talks to the database driver directly
(``executemany`` with plain tuples): SQLAlchemy's per-row parameter and type processing cost
several times the database's own work here. Per batch: one ``SELECT … IN`` per 2,000 hashes
to find what the bank already holds, one executemany ``INSERT`` for the new rows, one
executemany ``UPDATE`` for the changed ones and one executemany ``INSERT`` into the change
log. The statements are plain SQL that SQLite and PostgreSQL both run; only the placeholder
and the way ids are reserved differ.

Entry ids are reserved before the insert (SQLite: from ``sqlite_sequence`` under the write
lock; PostgreSQL: from the id sequence), so no ``RETURNING`` round trip is needed to log
them. That, and checking for existing rows first, is safe because writers are serialised:
SQLite has one writer at a time, and on PostgreSQL every write transaction first takes the
same advisory lock (see `_engine`). A duplicate slipping through would hit the unique constraint and
roll the whole batch back, never corrupt the bank.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from lightkeeper.banks._rows import ENTRIES, ENTRY_META
from lightkeeper.banks.records import EntryOp, NewEntry, RemoveValue, WriteReport
from lightkeeper.errors import InvalidRequest

#: Values per ``IN (…)`` list, well under SQLite's and PostgreSQL's bound-parameter limits.
IN_CHUNK = 2000

_LOG_INSERT = (
    "INSERT INTO bank_changes (bank_id, entry_id, op, signal_type, value, changed_at) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
)
_LOG_ADDS = (
    "INSERT INTO bank_changes (bank_id, entry_id, op, changed_at) "
    "SELECT {p}, id, 'add', {p} FROM entries "
    "WHERE id BETWEEN {p} AND {p} AND bank_id = {p} AND added_at = {p} ORDER BY id"
)
_ENTRY_INSERT = (
    "INSERT INTO entries (id, bank_id, signal_type, value, list_name, list_version, "
    "external_id, classification, note, added_at, updated_at, enabled) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
_ENTRY_UPDATE = (
    "UPDATE entries SET list_name = {p}, list_version = {p}, external_id = {p}, "
    "classification = {p}, note = {p}, updated_at = {p} WHERE id = {p}"
)
_EXISTING = (
    "SELECT id, value, list_name, list_version, external_id, classification, note "
    "FROM entries WHERE signal_type = {p} AND bank_id = {p} AND value IN ({values})"
)
_BY_VALUE = (
    "SELECT id, signal_type, value FROM entries "
    "WHERE signal_type = {p} AND bank_id = {p} AND value IN ({values})"
)
_BY_EXTERNAL_ID = (
    "SELECT id, signal_type, value, external_id FROM entries "
    "WHERE bank_id = {p} AND external_id IN ({values})"
)
_DELETE = "DELETE FROM entries WHERE id IN ({values})"
_ANY_SUPPRESSED = (
    "SELECT 1 FROM entry_suppressions WHERE bank = (SELECT name FROM banks WHERE id = {p}) LIMIT 1"
)
_SUPPRESSED = (
    "SELECT value FROM entry_suppressions WHERE signal_type = {p} AND value IN ({values}) "
    "AND bank = (SELECT name FROM banks WHERE id = {p})"
)


@dataclass
class Plan:
    """Part of a batch folded into its net effect, as if its operations ran one by one.

    Removals are applied before adds. So: a removal after an add of the same hash drops the
    add; an add after a removal stays with it (removed, then inserted afresh); a second add
    of a hash updates the first's fields. A removal by external id cannot be folded that way
    (which hashes carry the id depends on the database and on earlier adds), so one that
    comes after adds starts a new plan: see `plans`. Operations absorbed count as
    "unchanged".
    """

    adds: dict[tuple[str, str], NewEntry] = field(default_factory=dict)
    removes: dict[tuple[str, str], None] = field(default_factory=dict)
    remove_ext: dict[tuple[str, str | None], None] = field(default_factory=dict)
    superseded: int = 0

    def add(self, op: NewEntry) -> None:
        key = (op.signal_type, op.value)
        earlier = self.adds.get(key)
        if earlier is not None:  # a second add fills in what the first left out
            self.superseded += 1
            op = _merged(earlier, op)
        self.adds[key] = op  # after a removal of the same hash: removed, then re-added

    def remove(self, op: RemoveValue) -> None:
        key = (op.signal_type, op.value)
        if self.adds.pop(key, None) is not None or key in self.removes:
            self.superseded += 1
        self.removes[key] = None


def plans(ops: Iterable[EntryOp]) -> list[Plan]:
    """`ops` as plans to apply in order (usually one; see `Plan`)."""
    current = Plan()
    result = [current]
    for op in ops:
        if isinstance(op, NewEntry):
            current.add(op)
        elif isinstance(op, RemoveValue):
            current.remove(op)
        else:
            if current.adds:
                current = Plan()
                result.append(current)
            current.remove_ext[(op.external_id, op.list_name)] = None
    return result


def _merged(earlier: NewEntry, later: NewEntry) -> NewEntry:
    """`later`, with the fields it leaves None taken from `earlier` (as two writes would)."""
    return replace(
        later,
        **{name: getattr(earlier, name) for name in ENTRY_META if getattr(later, name) is None},
    )


class _Sql:
    """The statements above, with the placeholder of the connection's driver."""

    def __init__(self, conn: Connection) -> None:
        style = conn.dialect.paramstyle
        if style == "qmark":
            self.p = "?"
        elif style in ("format", "pyformat"):
            self.p = "%s"
        else:
            raise InvalidRequest(f"unsupported database driver (paramstyle {style!r})")
        self.conn = conn
        time_type = ENTRIES.c.added_at.type
        self._time = time_type.dialect_impl(conn.dialect).bind_processor(conn.dialect)

    def time(self, moment: datetime) -> Any:
        """`moment` as the driver stores it (SQLite: text in SQLAlchemy's format)."""
        return moment if self._time is None else self._time(moment)

    def run(self, template: str, params: Any = (), **fields: str) -> Any:
        return self.conn.exec_driver_sql(template.format(p=self.p, **fields), params)

    def many(self, template: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.conn.exec_driver_sql(template.format(p=self.p), rows)

    def values_in(self, count: int) -> str:
        return ", ".join([self.p] * count)

    def reserve_ids(self, count: int) -> list[int]:
        """`count` fresh entry ids, never used before (writers are serialised)."""
        if self.conn.dialect.name == "sqlite":
            top = self.conn.exec_driver_sql(
                "SELECT seq FROM sqlite_sequence WHERE name = 'entries'"
            ).scalar()
            first = int(top or 0) + 1
            return list(range(first, first + count))
        rows = self.conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence('entries', 'id')) "
            f"FROM generate_series(1, {int(count)})"
        )
        return [int(r[0]) for r in rows]


def apply(conn: Connection, bank_id: int, todo: list[Plan], now: datetime) -> WriteReport:
    """Apply the plans to the bank in order, logging every row changed; returns what it did."""
    sql = _Sql(conn)
    stamp = sql.time(now)
    total = WriteReport()
    for plan in todo:
        log: list[tuple[Any, ...]] = []
        removed, missed = _apply_removals(sql, bank_id, plan, stamp, log)
        added, updated, unchanged = _apply_adds(sql, bank_id, plan, stamp, log)
        sql.many(_LOG_INSERT, log)
        total += WriteReport(
            added=added,
            updated=updated,
            removed=removed,
            unchanged=unchanged + missed + plan.superseded,
        )
    return total


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def group_by_type(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for signal_type, value in keys:
        grouped.setdefault(signal_type, []).append(value)
    return grouped


def _apply_removals(
    sql: _Sql, bank_id: int, plan: Plan, stamp: Any, log: list[tuple[Any, ...]]
) -> tuple[int, int]:
    """Delete what the plan removes; returns (rows deleted, removals that found nothing)."""
    doomed: dict[int, tuple[str, str]] = {}
    hits = 0
    by_list: dict[str | None, list[str]] = {}
    for external_id, list_name in plan.remove_ext:
        by_list.setdefault(list_name, []).append(external_id)
    for list_name, external_ids in by_list.items():
        for chunk in chunks(external_ids):
            template = _BY_EXTERNAL_ID
            params: list[Any] = [bank_id, *chunk]
            if list_name is not None:
                template += " AND list_name = {p}"
                params.append(list_name)
            rows = sql.run(template, tuple(params), values=sql.values_in(len(chunk))).all()
            hits += len({row[3] for row in rows})
            doomed.update((row[0], (row[1], row[2])) for row in rows)
    for signal_type, values in group_by_type(plan.removes).items():
        for chunk in chunks(values):
            rows = sql.run(
                _BY_VALUE, (signal_type, bank_id, *chunk), values=sql.values_in(len(chunk))
            ).all()
            hits += len(rows)
            doomed.update((row[0], (row[1], row[2])) for row in rows)
    ids = sorted(doomed)
    for chunk in chunks(ids):
        sql.run(_DELETE, tuple(chunk), values=sql.values_in(len(chunk)))
    log.extend((bank_id, i, "remove", *doomed[i], stamp) for i in ids)
    return len(ids), len(plan.removes) + len(plan.remove_ext) - hits


def _apply_adds(
    sql: _Sql, bank_id: int, plan: Plan, stamp: Any, log: list[tuple[Any, ...]]
) -> tuple[int, int, int]:
    """Insert new hashes, update changed ones; returns (added, updated, unchanged)."""
    if not plan.adds:
        return 0, 0, 0
    existing = _existing(sql, bank_id, plan.adds.keys())
    fresh = [new for key, new in plan.adds.items() if key not in existing]
    held = _suppressed(sql, bank_id, [(new.signal_type, new.value) for new in fresh])
    ids = sql.reserve_ids(len(fresh)) if fresh else []
    sql.many(
        _ENTRY_INSERT,
        [
            (
                entry_id,
                bank_id,
                new.signal_type,
                new.value,
                new.list_name,
                new.list_version,
                new.external_id,
                new.classification,
                new.note,
                stamp,
                stamp,
                (new.signal_type, new.value) not in held,
            )
            for entry_id, new in zip(ids, fresh, strict=True)
        ],
    )
    if ids:
        # Logged in SQL rather than row by row from here: the rows just inserted are exactly
        # those of this bank, in this id range, stamped with this batch's time.
        sql.many(_LOG_INSERT, log)
        log.clear()
        sql.run(_LOG_ADDS, (bank_id, stamp, min(ids), max(ids), bank_id, stamp))

    updates: list[tuple[Any, ...]] = []
    for key, (entry_id, *old) in existing.items():
        new = plan.adds[key]
        merged = [
            was if given is None else given
            for was, given in zip(old, (getattr(new, n) for n in ENTRY_META), strict=True)
        ]
        if merged != old:
            updates.append((*merged, stamp, entry_id))
            log.append((bank_id, entry_id, "update", None, None, stamp))
    sql.many(_ENTRY_UPDATE, updates)
    return len(ids), len(updates), len(existing) - len(updates)


def _suppressed(sql: _Sql, bank_id: int, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those of these (signal type, value) keys that a false positive suppressed in this
    bank (``entry_suppressions``, by bank name): they are added disabled. One cheap query
    when the bank has no suppression, which is the rule."""
    if not keys or sql.run(_ANY_SUPPRESSED, (bank_id,)).first() is None:
        return set()
    found: set[tuple[str, str]] = set()
    for signal_type, values in group_by_type(keys).items():
        for chunk in chunks(values):
            rows = sql.run(
                _SUPPRESSED, (signal_type, *chunk, bank_id), values=sql.values_in(len(chunk))
            )
            found.update((signal_type, value) for (value,) in rows)
    return found


def _existing(
    sql: _Sql, bank_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(id, *ENTRY_META) of the bank's rows for these (signal type, value) keys, by key."""
    found: dict[tuple[str, str], tuple[Any, ...]] = {}
    for signal_type, values in group_by_type(keys).items():
        for chunk in chunks(values):
            rows = sql.run(
                _EXISTING, (signal_type, bank_id, *chunk), values=sql.values_in(len(chunk))
            )
            for entry_id, value, *meta in rows:
                found[(signal_type, value)] = (entry_id, *meta)
    return found
