"""`BankStore`: banks, their entries, the change log and import records, in SQL.

Every method is one short transaction through SQLAlchemy Core; no ORM session lives between
calls, so a store is safe to share between threads and cheap to keep open. Writes go through
`_engine.write` (``BEGIN IMMEDIATE``, retried while another process holds the lock), and each
write to ``entries`` appends to ``bank_changes`` in the same transaction: the log and the
table never disagree.

Re-adding a hash that a bank already holds never duplicates it: fields given anew (list
name, version, external id, classification, note) replace the old ones and the entry counts
as "updated"; fields not given (None) keep their value. Re-adding does not re-enable an
entry that a curator disabled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, delete, func, insert, literal, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from lightkeeper.banks import _bulk, _engine
from lightkeeper.banks._migrate import migrate_to_head
from lightkeeper.banks._rows import (
    BANKS,
    CHANGES,
    ENTRIES,
    META,
    REGIONS,
    RUNS,
    THRESHOLDS,
    change_row,
    change_select,
    entry_select,
    to_bank,
    to_change,
    to_entry,
    to_import_run,
)
from lightkeeper.banks.audit import record
from lightkeeper.banks.records import (
    DEFAULT_REGION_THRESHOLD,
    REGION_NAMES,
    Bank,
    BankKind,
    Change,
    Entry,
    EntryOp,
    EntryRegion,
    ImportRun,
    ImportStatus,
    IndexRow,
    NewEntry,
    Outcome,
    RegionRow,
    RemoveValue,
    WriteReport,
)
from lightkeeper.banks.settings import resolve_database_url, sqlite_path
from lightkeeper.banks.validation import (
    validate_bank_name,
    validate_kind,
    validate_new_entry,
    validate_quality_floor,
    validate_region_threshold,
    validate_regions,
    validate_threshold,
)
from lightkeeper.errors import Conflict, InvalidRequest, NotFound
from lightkeeper.signals import registry

T = TypeVar("T")

DEFAULT_QUALITY_FLOOR = 50
#: Rows per transaction in `add_entries` (and the default for list imports).
DEFAULT_BATCH_SIZE = 50_000


def _now() -> datetime:
    return datetime.now(UTC)


class BankStore:
    """Hash banks in SQLite or PostgreSQL. Open with `BankStore.open(url)`; close when done."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._instance_id: str | None = None
        #: Where the store is, for messages: the URL with any password masked.
        self.url = make_url(url).render_as_string(hide_password=True)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, url: str | None = None) -> BankStore:
        """Open (creating if needed) the store at `url`, upgraded to the current schema.

        `url` defaults to ``LIGHTKEEPER_DATABASE_URL``, then ``./lightkeeper-data/``; a bare
        path means an SQLite file (see `lightkeeper.banks.settings`).
        """
        resolved = resolve_database_url(url)
        path = sqlite_path(resolved)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = _engine.make_engine(resolved)
        try:
            migrate_to_head(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, resolved)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> BankStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def instance_id(self) -> str:
        """A random id fixed when this store was created: tells its files (index snapshots)
        from those of another store."""
        if self._instance_id is None:
            query = select(META.c.value).where(META.c.key == "instance_id")
            self._instance_id = str(self._read(lambda conn: conn.execute(query).scalar_one()))
        return self._instance_id

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations, tests and diagnostics)."""
        return self._engine

    def _write(self, work: Callable[[Connection], T]) -> T:
        return _engine.write(self._engine, work)

    def _read(self, work: Callable[[Connection], T]) -> T:
        return _engine.read(self._engine, work)

    # ------------------------------------------------------------------ banks

    def create_bank(
        self,
        name: str,
        *,
        kind: BankKind = "block",
        description: str = "",
        thresholds: Mapping[str, int] | None = None,
        match_dihedral: bool = False,
        pdq_quality_floor: int = DEFAULT_QUALITY_FLOOR,
        enabled: bool = True,
        regions: bool = False,
        region_threshold: int = DEFAULT_REGION_THRESHOLD,
    ) -> Bank:
        """Create a bank; `Conflict` if the name is taken, `InvalidRequest` for bad settings.

        `regions` turns region matching on (crops, screenshots, overlays; `Bank.regions`), with
        `region_threshold` for pairs in which a region code takes part.
        """
        validate_bank_name(name)
        validate_kind(kind)
        validate_quality_floor(pdq_quality_floor)
        validate_region_threshold(region_threshold)
        overrides = dict(thresholds or {})
        for signal_type, threshold in overrides.items():
            validate_threshold(signal_type, threshold)

        def work(conn: Connection) -> None:
            if _find_bank_id(conn, name) is not None:
                raise Conflict(f"bank {name!r} already exists")
            create_bank_in(
                conn,
                name,
                kind=kind,
                description=description,
                thresholds=overrides,
                match_dihedral=match_dihedral,
                pdq_quality_floor=pdq_quality_floor,
                enabled=enabled,
                regions=regions,
                region_threshold=region_threshold,
                now=_now(),
            )

        try:
            self._write(work)
        except IntegrityError as exc:
            # A concurrent creator that took the name after the check above (PostgreSQL; SQLite
            # lets one writer in at a time) fails the name's unique constraint. Any other
            # constraint (a threshold, the change log, the audit trail) is no such conflict:
            # asking whether the name exists now tells the two apart on every database.
            if self._read(lambda conn: _find_bank_id(conn, name)) is None:
                raise
            raise Conflict(f"bank {name!r} already exists") from exc
        return self.get_bank(name)

    def get_bank(self, name: str) -> Bank:
        """The bank called `name`; `NotFound` if there is none."""
        return self._read(lambda conn: _load_bank(conn, _bank_id(conn, name)))

    def list_banks(self) -> list[Bank]:
        """Every bank, by name."""

        def work(conn: Connection) -> list[Bank]:
            by_bank = _thresholds_by_bank(conn)
            rows = conn.execute(select(BANKS).order_by(BANKS.c.name)).all()
            return [to_bank(row, by_bank.get(row.id, {})) for row in rows]

        return self._read(work)

    def update_bank(
        self,
        name: str,
        *,
        rename: str | None = None,
        kind: BankKind | None = None,
        description: str | None = None,
        thresholds: Mapping[str, int | None] | None = None,
        match_dihedral: bool | None = None,
        pdq_quality_floor: int | None = None,
        enabled: bool | None = None,
        regions: bool | None = None,
        region_threshold: int | None = None,
    ) -> Bank:
        """Change the settings given; None leaves a setting as it is.

        Turning `regions` off keeps the region codes stored with the bank's entries (they no
        longer match); turning it back on matches them again, with no image added anew.

        `thresholds` merges into the bank's own: a signal type mapped to None goes back to
        that signal type's default.
        """
        values: dict[str, Any] = {}
        if rename is not None:
            values["name"] = validate_bank_name(rename)
        if kind is not None:
            values["kind"] = validate_kind(kind)
        if description is not None:
            values["description"] = description
        if match_dihedral is not None:
            values["match_dihedral"] = match_dihedral
        if pdq_quality_floor is not None:
            values["pdq_quality_floor"] = validate_quality_floor(pdq_quality_floor)
        if enabled is not None:
            values["enabled"] = enabled
        if regions is not None:
            values["regions"] = regions
        if region_threshold is not None:
            values["region_threshold"] = validate_region_threshold(region_threshold)
        overrides = dict(thresholds or {})
        for signal_type, threshold in overrides.items():
            if threshold is None:
                registry.get(signal_type)
            else:
                validate_threshold(signal_type, threshold)

        def work(conn: Connection) -> None:
            bank_id = _bank_id(conn, name)
            if rename is not None and rename != name and _find_bank_id(conn, rename) is not None:
                raise Conflict(f"bank {rename!r} already exists")
            now = _now()
            conn.execute(
                update(BANKS).where(BANKS.c.id == bank_id).values(updated_at=now, **values)
            )
            for signal_type, threshold in overrides.items():
                conn.execute(
                    delete(THRESHOLDS).where(
                        THRESHOLDS.c.bank_id == bank_id, THRESHOLDS.c.signal_type == signal_type
                    )
                )
                if threshold is not None:
                    conn.execute(
                        insert(THRESHOLDS).values(
                            bank_id=bank_id, signal_type=signal_type, threshold=threshold
                        )
                    )
            conn.execute(insert(CHANGES), change_row(bank_id, None, "bank", now))
            record(
                conn,
                "bank.update",
                f"bank:{name}",
                {**values, "thresholds": overrides} if overrides else values,
                at=now,
            )

        try:
            self._write(work)
        except IntegrityError as exc:
            # As in `create_bank`: only a rename that lost a race for the name is a conflict.
            if rename is None or self._read(lambda conn: _find_bank_id(conn, rename)) is None:
                raise
            raise Conflict(f"bank {rename!r} already exists") from exc
        return self.get_bank(rename or name)

    def delete_bank(self, name: str) -> int:
        """Delete a bank and its entries, logging a removal for each; returns how many."""

        def work(conn: Connection) -> int:
            bank_id = _bank_id(conn, name)
            now = _now()
            conn.execute(
                insert(CHANGES).from_select(
                    ["bank_id", "entry_id", "op", "signal_type", "value", "changed_at"],
                    select(
                        ENTRIES.c.bank_id,
                        ENTRIES.c.id,
                        literal("remove"),
                        ENTRIES.c.signal_type,
                        ENTRIES.c.value,
                        literal(now, type_=CHANGES.c.changed_at.type),
                    )
                    .where(ENTRIES.c.bank_id == bank_id)
                    .order_by(ENTRIES.c.id),
                )
            )
            deleted = conn.execute(delete(ENTRIES).where(ENTRIES.c.bank_id == bank_id)).rowcount
            conn.execute(delete(BANKS).where(BANKS.c.id == bank_id))  # thresholds, runs cascade
            conn.execute(insert(CHANGES), change_row(bank_id, None, "bank", now))
            record(conn, "bank.delete", f"bank:{name}", {"entries": deleted}, at=now)
            return int(deleted)

        return self._write(work)

    # ------------------------------------------------------------------ entries: writes

    def add_entry(
        self,
        bank: str,
        signal_type: str,
        value: str,
        *,
        list_name: str | None = None,
        list_version: str | None = None,
        external_id: str | None = None,
        classification: str | None = None,
        note: str | None = None,
        regions: Sequence[EntryRegion] | None = None,
    ) -> tuple[Entry, Outcome]:
        """Add one hash (normalised first); returns the entry and "added"/"updated"/"unchanged".

        `regions` are the region codes of the image a PDQ hash was computed from
        (`lightkeeper.matching.region_codes.banked_image`). They are kept only when the bank
        has regions on and the hash is a PDQ one, and then replace whatever the entry held,
        in the same transaction as the entry: a follower that sees the entry's "add" (or the
        "update" logged when only its regions changed) finds them. None leaves an existing
        entry's regions as they are.
        """
        new = validate_new_entry(
            NewEntry(signal_type, value, list_name, list_version, external_id, classification, note)
        )
        if regions is None:
            report = self.write_batch(bank, [new], validated=True)
            regions_changed = False
        else:
            report, regions_changed = self._write_with_regions(bank, new, validate_regions(regions))
        entry = self.find_entry(bank, signal_type, new.value)
        if entry is None:  # removed by another writer in between
            raise NotFound(f"{signal_type} {new.value} was removed from {bank!r} meanwhile")
        outcome: Outcome = (
            "added"
            if report.added
            else "updated"
            if report.updated or regions_changed
            else "unchanged"
        )
        return entry, outcome

    def _write_with_regions(
        self, bank: str, new: NewEntry, regions: list[EntryRegion]
    ) -> tuple[WriteReport, bool]:
        """Write one entry and, when its bank keeps them, its region codes; whether these
        changed. One transaction, so the log never names an entry without its regions."""
        todo = _bulk.plans([new])

        def work(conn: Connection) -> tuple[WriteReport, bool]:
            now = _now()
            bank_id = _bank_id(conn, bank)
            report = _write_ops(conn, bank, bank_id, todo, now, None)
            keeps = conn.execute(select(BANKS.c.regions).where(BANKS.c.id == bank_id)).scalar()
            if not keeps or new.signal_type != "pdq":
                return report, False
            entry_id = conn.execute(
                select(ENTRIES.c.id).where(
                    ENTRIES.c.signal_type == new.signal_type,
                    ENTRIES.c.value == new.value,
                    ENTRIES.c.bank_id == bank_id,
                )
            ).scalar_one()
            if not _replace_regions(conn, entry_id, regions):
                return report, False
            if not report.added:  # a new entry's "add" already tells followers to read them
                conn.execute(insert(CHANGES), change_row(bank_id, entry_id, "update", now))
            record(
                conn,
                "entry.regions",
                f"bank:{bank}",
                {"entry_id": entry_id, "regions": len(regions)},
                at=now,
            )
            return report, True

        return self._write(work)

    def add_entries(
        self, bank: str, new_entries: Iterable[NewEntry], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> WriteReport:
        """Add many hashes, one transaction per `batch_size`; adding twice adds nothing.

        Values are validated a batch at a time before that batch is written: an invalid one
        raises (`InvalidSignal` …) and leaves its batch unwritten; earlier batches stay.
        """
        total = WriteReport()
        batch: list[NewEntry] = []
        for new in new_entries:
            batch.append(new)
            if len(batch) >= batch_size:
                total += self.write_batch(bank, batch)
                batch = []
        if batch:
            total += self.write_batch(bank, batch)
        return total

    def remove_entries(self, bank: str, hashes: Iterable[tuple[str, str]]) -> WriteReport:
        """Remove these (signal type, value) hashes from the bank; absent ones are "unchanged"."""
        return self.write_batch(bank, [RemoveValue(s, v) for s, v in hashes])

    def write_batch(
        self,
        bank: str,
        ops: Sequence[EntryOp],
        *,
        validated: bool = False,
        import_run: int | None = None,
    ) -> WriteReport:
        """Apply adds and removals to one bank in one transaction: the bulk-import primitive.

        `ops` take effect as if applied one by one, in order (see `_bulk.Plan`). With
        `validated=True` the caller vouches that every value is canonical (it ran
        `validate_new_entry`), which saves normalising twice on bulk imports. With
        `import_run`, the counts are added to that import's record in the same transaction,
        so the record always matches what was committed, even after a crash.
        """
        if not validated:
            ops = [_validated(op) for op in ops]
        todo = _bulk.plans(ops)

        def work(conn: Connection) -> WriteReport:
            return _write_ops(conn, bank, _bank_id(conn, bank), todo, _now(), import_run)

        return self._write(work)

    def remove_entry(self, entry_id: int) -> Entry:
        """Remove one entry by id; returns it as it was. `NotFound` if there is no such entry."""

        def work(conn: Connection) -> Entry:
            entry = _load_entry(conn, entry_id)
            now = _now()
            conn.execute(delete(ENTRIES).where(ENTRIES.c.id == entry_id))
            conn.execute(
                insert(CHANGES),
                change_row(
                    entry.bank_id, entry.id, "remove", now, (entry.signal_type, entry.value)
                ),
            )
            record(conn, "entry.remove", f"bank:{entry.bank}", {"entry_id": entry_id}, at=now)
            return entry

        return self._write(work)

    def disable_entry(self, entry_id: int, *, until: datetime | None = None) -> Entry:
        """Stop an entry matching: until `until` (timezone-aware), or without it for good."""
        if until is None:
            return self._set_enabled(entry_id, enabled=False, disabled_until=None)
        if until.tzinfo is None:
            raise InvalidRequest("'until' must be a timezone-aware datetime")
        return self._set_enabled(entry_id, enabled=True, disabled_until=until)

    def enable_entry(self, entry_id: int) -> Entry:
        """Let an entry match again, ending any disable period."""
        return self._set_enabled(entry_id, enabled=True, disabled_until=None)

    def _set_enabled(
        self, entry_id: int, *, enabled: bool, disabled_until: datetime | None
    ) -> Entry:
        return self._write(
            lambda conn: set_enabled_in(
                conn, entry_id, enabled=enabled, disabled_until=disabled_until, now=_now()
            )
        )

    # ------------------------------------------------------------------ entries: reads

    def get_entry(self, entry_id: int) -> Entry:
        """The entry with this id; `NotFound` if there is none."""
        return self._read(lambda conn: _load_entry(conn, entry_id))

    def get_entries(self, entry_ids: Iterable[int]) -> dict[int, Entry]:
        """The entries with these ids, by id; ids with no entry are left out. One query per
        thousand ids (a batch's matches are read back together, not one query each)."""
        wanted = sorted(set(entry_ids))

        def work(conn: Connection) -> dict[int, Entry]:
            found: dict[int, Entry] = {}
            for start in range(0, len(wanted), 1000):
                chunk = wanted[start : start + 1000]
                rows = conn.execute(entry_select().where(ENTRIES.c.id.in_(chunk))).all()
                found.update((row[0], to_entry(row)) for row in rows)
            return found

        return self._read(work) if wanted else {}

    def find_entry(self, bank: str, signal_type: str, value: str) -> Entry | None:
        """The bank's entry for this hash (normalised first), or None."""
        canonical = registry.get(signal_type).normalize(value)

        def work(conn: Connection) -> Entry | None:
            row = conn.execute(
                entry_select().where(
                    ENTRIES.c.signal_type == signal_type,
                    ENTRIES.c.value == canonical,
                    ENTRIES.c.bank_id == _bank_id(conn, bank),
                )
            ).first()
            return None if row is None else to_entry(row)

        return self._read(work)

    def lookup(self, signal_type: str, value: str) -> list[Entry]:
        """Every entry, in any bank, holding exactly this hash (normalised first)."""
        canonical = registry.get(signal_type).normalize(value)
        query = (
            entry_select()
            .where(ENTRIES.c.signal_type == signal_type, ENTRIES.c.value == canonical)
            .order_by(ENTRIES.c.id)
        )
        return [to_entry(row) for row in self._read(lambda conn: conn.execute(query).all())]

    def count_entries(self, bank: str | None = None, *, signal_type: str | None = None) -> int:
        """How many entries a bank (or every bank) holds, optionally of one signal type."""

        def work(conn: Connection) -> int:
            query = select(func.count()).select_from(ENTRIES)
            if bank is not None:
                query = query.where(ENTRIES.c.bank_id == _bank_id(conn, bank))
            if signal_type is not None:
                query = query.where(ENTRIES.c.signal_type == signal_type)
            return int(conn.execute(query).scalar_one())

        return self._read(work)

    def iter_entries(
        self,
        bank: str | None = None,
        *,
        signal_type: str | None = None,
        page_size: int = 10_000,
        after_id: int = 0,
    ) -> Iterator[Entry]:
        """Every entry of a bank (or of all banks) by id, streamed a page at a time.

        Each page is its own short read, so a slow consumer holds no transaction open (a
        long read would keep SQLite from checkpointing its WAL). `after_id` resumes after
        that id (paging). The pages are therefore not
        one snapshot: to build an index, note `last_seq()` first, load this, then replay
        `changes_since` that seq; replaying a change already seen is harmless.
        """
        bank_id = None if bank is None else self._read(lambda conn: _bank_id(conn, bank))
        after = after_id
        while True:
            query = entry_select().where(ENTRIES.c.id > after)
            if bank_id is not None:
                query = query.where(ENTRIES.c.bank_id == bank_id)
            if signal_type is not None:
                query = query.where(ENTRIES.c.signal_type == signal_type)
            page = query.order_by(ENTRIES.c.id).limit(page_size)
            rows = self._read(lambda conn: conn.execute(page).all())  # noqa: B023 (runs now)
            if not rows:
                return
            for row in rows:
                yield to_entry(row)
            after = rows[-1].id

    def iter_index_rows(
        self, *, signal_type: str | None = None, page_size: int = 50_000
    ) -> Iterator[IndexRow]:
        """Every entry of every bank as a lean `IndexRow`, by id, a page at a time.

        For loading an index: about five times faster than `iter_entries`, which builds a
        full `Entry` per row. The same snapshot caveat applies (see `iter_entries`).
        """
        after = 0
        while True:
            query = select(
                ENTRIES.c.id,
                ENTRIES.c.bank_id,
                ENTRIES.c.signal_type,
                ENTRIES.c.value,
                ENTRIES.c.enabled,
                ENTRIES.c.disabled_until,
            ).where(ENTRIES.c.id > after)
            if signal_type is not None:
                query = query.where(ENTRIES.c.signal_type == signal_type)
            page = query.order_by(ENTRIES.c.id).limit(page_size)
            rows = self._read(lambda conn: conn.execute(page).all())  # noqa: B023 (runs now)
            if not rows:
                return
            yield from (IndexRow(*row) for row in rows)
            after = rows[-1][0]

    def get_regions(self, entry_ids: Iterable[int]) -> dict[int, list[EntryRegion]]:
        """The region codes of these entries, by entry id (in `REGION_NAMES` order); entries
        without any are left out. For the operator and the index: these are bank contents,
        never shown to a matching client."""
        wanted = sorted(set(entry_ids))
        order = {name: i for i, name in enumerate(REGION_NAMES)}

        def work(conn: Connection) -> dict[int, list[EntryRegion]]:
            found: dict[int, list[EntryRegion]] = {}
            for start in range(0, len(wanted), 1000):
                rows = conn.execute(
                    select(REGIONS).where(REGIONS.c.entry_id.in_(wanted[start : start + 1000]))
                )
                for row in rows:
                    found.setdefault(row.entry_id, []).append(
                        EntryRegion(row.region, row.value, row.quality)
                    )
            for regions in found.values():
                regions.sort(key=lambda r: order.get(r.region, len(order)))
            return found

        return self._read(work) if wanted else {}

    def count_regions(self, entry_ids: Iterable[int]) -> dict[int, int]:
        """How many region codes each of these entries holds (0 for none): what a curator
        may see of them."""
        wanted = sorted(set(entry_ids))

        def work(conn: Connection) -> dict[int, int]:
            counts = dict.fromkeys(wanted, 0)
            for start in range(0, len(wanted), 1000):
                query = (
                    select(REGIONS.c.entry_id, func.count())
                    .where(REGIONS.c.entry_id.in_(wanted[start : start + 1000]))
                    .group_by(REGIONS.c.entry_id)
                )
                counts.update((int(entry_id), int(n)) for entry_id, n in conn.execute(query))
            return counts

        return self._read(work) if wanted else {}

    def iter_region_rows(
        self, bank: str | None = None, *, page_size: int = 50_000
    ) -> Iterator[RegionRow]:
        """Every region code of a bank (or of all banks), with its entry's bank and enabled
        flag, by (entry id, region), a page at a time: for loading an index (the snapshot
        caveat of `iter_entries` applies)."""
        bank_id = None if bank is None else self._read(lambda conn: _bank_id(conn, bank))
        after: tuple[int, str] = (0, "")
        while True:
            query = (
                select(
                    REGIONS.c.entry_id,
                    ENTRIES.c.bank_id,
                    REGIONS.c.region,
                    REGIONS.c.value,
                    ENTRIES.c.enabled,
                )
                .join(ENTRIES, ENTRIES.c.id == REGIONS.c.entry_id)
                .where(
                    (REGIONS.c.entry_id > after[0])
                    | ((REGIONS.c.entry_id == after[0]) & (REGIONS.c.region > after[1]))
                )
            )
            if bank_id is not None:
                query = query.where(ENTRIES.c.bank_id == bank_id)
            page = query.order_by(REGIONS.c.entry_id, REGIONS.c.region).limit(page_size)
            rows = self._read(lambda conn: conn.execute(page).all())  # noqa: B023 (runs now)
            if not rows:
                return
            yield from (RegionRow(*row) for row in rows)
            after = (rows[-1][0], rows[-1][2])

    # ------------------------------------------------------------------ change log

    def changes_since(self, seq: int, limit: int = 10_000) -> list[Change]:
        """Up to `limit` changes with a sequence number above `seq`, oldest first."""
        query = change_select().where(CHANGES.c.seq > seq).order_by(CHANGES.c.seq).limit(limit)
        return [to_change(row) for row in self._read(lambda conn: conn.execute(query).all())]

    def last_seq(self) -> int:
        """The newest change's sequence number; 0 before the first change."""
        query = select(func.coalesce(func.max(CHANGES.c.seq), 0))
        return self._read(lambda conn: int(conn.execute(query).scalar_one()))

    # ------------------------------------------------------------------ import runs

    def start_import(
        self, bank: str, fmt: str, *, list_name: str | None, list_version: str | None
    ) -> int:
        """Record that an import into `bank` begins; returns its id for `write_batch`."""

        def work(conn: Connection) -> int:
            run_id = int(
                conn.execute(
                    insert(RUNS).returning(RUNS.c.id),
                    {
                        "bank_id": _bank_id(conn, bank),
                        "format": fmt,
                        "list_name": list_name,
                        "list_version": list_version,
                        "status": "running",
                        "started_at": _now(),
                        **dict.fromkeys(
                            ("added", "updated", "removed", "unchanged", "invalid", "skipped"), 0
                        ),
                    },
                ).scalar_one()
            )
            record(
                conn,
                "import.start",
                f"bank:{bank}",
                {
                    "import_run": run_id,
                    "format": fmt,
                    "list_name": list_name,
                    "list_version": list_version,
                },
            )
            return run_id

        return self._write(work)

    def finish_import(
        self,
        run_id: int,
        status: ImportStatus,
        *,
        invalid: int = 0,
        skipped: int = 0,
        error: str | None = None,
    ) -> None:
        """Record how an import ended, with the counts only the reader knows."""
        statement = (
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                status=status, finished_at=_now(), invalid=invalid, skipped=skipped, error=error
            )
        )

        def work(conn: Connection) -> None:
            conn.execute(statement)
            record(
                conn,
                "import.finish",
                f"import:{run_id}",
                {"status": status, "invalid": invalid, "skipped": skipped, "error": error},
            )

        self._write(work)

    def list_imports(self, bank: str | None = None) -> list[ImportRun]:
        """Recorded imports, newest first; one cut short stays "running" (or "failed")."""

        def work(conn: Connection) -> list[ImportRun]:
            query = _runs_select()
            if bank is not None:
                query = query.where(RUNS.c.bank_id == _bank_id(conn, bank))
            return [to_import_run(r) for r in conn.execute(query.order_by(RUNS.c.id.desc()))]

        return self._read(work)

    def get_import(self, run_id: int) -> ImportRun:
        """One recorded import; `NotFound` if there is none."""
        query = _runs_select().where(RUNS.c.id == run_id)
        row = self._read(lambda conn: conn.execute(query).first())
        if row is None:
            raise NotFound(f"no import with id {run_id}")
        return to_import_run(row)


def create_bank_in(
    conn: Connection,
    name: str,
    *,
    kind: BankKind,
    description: str = "",
    thresholds: Mapping[str, int] | None = None,
    match_dihedral: bool = False,
    pdq_quality_floor: int = DEFAULT_QUALITY_FLOOR,
    enabled: bool = True,
    regions: bool = False,
    region_threshold: int = DEFAULT_REGION_THRESHOLD,
    now: datetime,
) -> int:
    """Insert a bank inside the caller's write transaction (its change-log row and
    ``bank.create`` audit event too); its id. The caller has validated the settings and
    checked that the name is free (`BankStore.create_bank` does both)."""
    overrides = dict(thresholds or {})
    bank_id = conn.execute(
        insert(BANKS).returning(BANKS.c.id),
        {
            "name": name,
            "kind": kind,
            "description": description,
            "enabled": enabled,
            "match_dihedral": match_dihedral,
            "pdq_quality_floor": pdq_quality_floor,
            "regions": regions,
            "region_threshold": region_threshold,
            "created_at": now,
            "updated_at": now,
        },
    ).scalar_one()
    if overrides:
        conn.execute(
            insert(THRESHOLDS),
            [{"bank_id": bank_id, "signal_type": s, "threshold": t} for s, t in overrides.items()],
        )
    conn.execute(insert(CHANGES), change_row(bank_id, None, "bank", now))
    record(
        conn,
        "bank.create",
        f"bank:{name}",
        {
            "kind": kind,
            "enabled": enabled,
            "thresholds": overrides,
            "regions": regions,
            "region_threshold": region_threshold,
        },
        at=now,
    )
    return int(bank_id)


def set_enabled_in(
    conn: Connection,
    entry_id: int,
    *,
    enabled: bool,
    disabled_until: datetime | None,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> Entry:
    """Enable or disable one entry inside the caller's write transaction: the row, an
    ``update`` in the change log (every process's index follows it) and an ``entry.enable``
    or ``entry.disable`` audit event with `details` added. Nothing is written when the entry
    is already so. `NotFound` if there is no such entry."""
    entry = _load_entry(conn, entry_id)
    if entry.enabled == enabled and entry.disabled_until == disabled_until:
        return entry
    conn.execute(
        update(ENTRIES)
        .where(ENTRIES.c.id == entry_id)
        .values(enabled=enabled, disabled_until=disabled_until, updated_at=now)
    )
    conn.execute(insert(CHANGES), change_row(entry.bank_id, entry_id, "update", now))
    record(
        conn,
        "entry.enable" if enabled and disabled_until is None else "entry.disable",
        f"bank:{entry.bank}",
        {"entry_id": entry_id, "until": disabled_until, **(details or {})},
        at=now,
    )
    return _load_entry(conn, entry_id)


def _write_ops(
    conn: Connection,
    bank: str,
    bank_id: int,
    todo: list[_bulk.Plan],
    now: datetime,
    import_run: int | None,
) -> WriteReport:
    """Apply planned adds and removals to one bank, with their audit record and import counts."""
    report = _bulk.apply(conn, bank_id, todo, now)
    if report.added or report.updated or report.removed:
        record(
            conn,
            "entries.write",
            f"bank:{bank}",
            {
                "added": report.added,
                "updated": report.updated,
                "removed": report.removed,
                "import_run": import_run,
            },
            at=now,
        )
    if import_run is not None:
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == import_run)
            .values(
                added=RUNS.c.added + report.added,
                updated=RUNS.c.updated + report.updated,
                removed=RUNS.c.removed + report.removed,
                unchanged=RUNS.c.unchanged + report.unchanged,
            )
        )
    return report


def _replace_regions(conn: Connection, entry_id: int, regions: list[EntryRegion]) -> bool:
    """Make the entry's region codes `regions`; whether that changed anything."""
    held = {
        row.region: (row.value, row.quality)
        for row in conn.execute(
            select(REGIONS.c.region, REGIONS.c.value, REGIONS.c.quality).where(
                REGIONS.c.entry_id == entry_id
            )
        )
    }
    if held == {r.region: (r.value, r.quality) for r in regions}:
        return False
    conn.execute(delete(REGIONS).where(REGIONS.c.entry_id == entry_id))
    if regions:
        conn.execute(
            insert(REGIONS),
            [
                {"entry_id": entry_id, "region": r.region, "value": r.value, "quality": r.quality}
                for r in regions
            ],
        )
    return True


def _runs_select() -> Select[Any]:
    return select(RUNS, BANKS.c.name.label("bank_name")).join(BANKS, BANKS.c.id == RUNS.c.bank_id)


def _validated(op: EntryOp) -> EntryOp:
    if isinstance(op, NewEntry):
        return validate_new_entry(op)
    if isinstance(op, RemoveValue):
        return RemoveValue(op.signal_type, registry.get(op.signal_type).normalize(op.value))
    return op


def _find_bank_id(conn: Connection, name: str) -> int | None:
    bank_id = conn.execute(select(BANKS.c.id).where(BANKS.c.name == name)).scalar()
    return None if bank_id is None else int(bank_id)


def _bank_id(conn: Connection, name: str) -> int:
    bank_id = _find_bank_id(conn, name)
    if bank_id is None:
        raise NotFound(f"no bank named {name!r}")
    return bank_id


def _load_bank(conn: Connection, bank_id: int) -> Bank:
    row = conn.execute(select(BANKS).where(BANKS.c.id == bank_id)).one()
    return to_bank(row, _thresholds_by_bank(conn, bank_id).get(bank_id, {}))


def _thresholds_by_bank(conn: Connection, bank_id: int | None = None) -> dict[int, dict[str, int]]:
    query = select(THRESHOLDS).order_by(THRESHOLDS.c.signal_type)
    if bank_id is not None:
        query = query.where(THRESHOLDS.c.bank_id == bank_id)
    found: dict[int, dict[str, int]] = {}
    for row in conn.execute(query):
        found.setdefault(row.bank_id, {})[row.signal_type] = row.threshold
    return found


def _load_entry(conn: Connection, entry_id: int) -> Entry:
    row = conn.execute(entry_select().where(ENTRIES.c.id == entry_id)).first()
    if row is None:
        raise NotFound(f"no entry with id {entry_id}")
    return to_entry(row)
