"""Importing a list file into a bank: streamed, in transactional batches, idempotent.

The file is read as a stream (any size, bounded memory) and written in batches of
`batch_size` records, each batch one transaction. Why batches and not one transaction for
the whole file: on SQLite a 13-million-row transaction grows the write-ahead log by
gigabytes and holds the single write lock for minutes, so every other writer (a curator, the
service, another import) would time out. Per batch, other writers get their turn between
batches and the log stays small. A full batch is written on a background thread while the
next one is read, so that parsing and the database's work overlap on two cores.

What that means when an import is cut short (a crash, a kill, a broken file): each batch is
committed whole or not at all, records read since the last full batch are not applied, and
the store's import record stays "running" (or "failed", with the error) with the counts
committed so far. Running the same import again completes it: entries already imported are found
unchanged, never duplicated.

A malformed line never aborts the import: it is counted as invalid, its line number and the
reason kept (the first `MAX_INVALID_LINES` of them), and the rest of the file is imported.
Only a file that cannot be read at all as its format (a CSV without a hash column, broken or
hostile XML, 64-hex hashes of unnamed type) stops the import, with `ListFormatError`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from lightkeeper.banks import (
    BankStore,
    EntryOp,
    NewEntry,
    RemoveExternalId,
    RemoveValue,
    WriteReport,
)
from lightkeeper.banks.store import DEFAULT_BATCH_SIZE
from lightkeeper.banks.validation import validate_new_entry
from lightkeeper.errors import (
    InvalidRequest,
    InvalidSignal,
    ListFormatError,
    UnknownSignalType,
)
from lightkeeper.exchange import _streams
from lightkeeper.exchange.detect import detect_format
from lightkeeper.exchange.formats import get_format
from lightkeeper.exchange.record import Invalid, Notice, Record, Skipped
from lightkeeper.signals import registry

#: Invalid lines listed one by one in a report; beyond this only their number is kept.
MAX_INVALID_LINES = 1000


@dataclass
class ImportReport:
    """What an import did. `invalid_lines` holds the first `MAX_INVALID_LINES` of `invalid`."""

    format: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    invalid: int = 0
    invalid_lines: list[tuple[int, str]] = field(default_factory=list)
    #: Records read fine but not imported, by reason (no plug-in for the signal type …).
    skipped: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    #: The store's record of this import (`BankStore.list_imports`).
    import_id: int | None = None

    @property
    def invalid_lines_omitted(self) -> int:
        """Invalid lines counted but not listed (beyond `MAX_INVALID_LINES`)."""
        return self.invalid - len(self.invalid_lines)

    def note_invalid(self, line_no: int, reason: str) -> None:
        self.invalid += 1
        if len(self.invalid_lines) < MAX_INVALID_LINES:
            self.invalid_lines.append((line_no, reason))


def import_list(
    store: BankStore,
    bank: str,
    stream: BinaryIO,
    fmt: str | None = None,
    signal_type: str | None = None,
    list_name: str | None = None,
    list_version: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_start: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import the list in `stream` (binary; gzip is undone) into `bank`.

    `fmt` is detected from the first bytes when not given. `signal_type` names the type of
    hashes whose file does not say (``lines``, a CSV without a ``signal_type`` column).
    `list_name` and `list_version`, when given, are recorded on every entry, in place of
    what the file says. `on_start` is called with the import's id once its record exists
    (a background job reports it to its caller). See the module docstring for batches and
    failures.
    """
    head, stream = _streams.peek(stream)
    name = fmt or detect_format(head)
    list_format = get_format(name)
    if signal_type is not None:
        registry.get(signal_type)  # UnknownSignalType before anything is written
    store.get_bank(bank)  # NotFound before an import record is made
    report = ImportReport(format=name)
    report.import_id = run_id = store.start_import(
        bank, name, list_name=list_name, list_version=list_version
    )
    if on_start is not None:
        on_start(run_id)
    converter = _Converter(report, list_name, list_version)
    batch: list[EntryOp] = []
    with _BatchWriter(store, bank, run_id, report) as writer:
        try:
            for item in list_format.read(stream, signal_type=signal_type):
                if isinstance(item, Record):
                    op = converter.convert(item)
                    if op is not None:
                        batch.append(op)
                        if len(batch) >= batch_size:
                            writer.write(batch)
                            batch = []
                elif isinstance(item, Invalid):
                    report.note_invalid(item.line_no, item.reason)
                elif isinstance(item, Skipped):
                    report.skipped[item.reason] += 1
                elif isinstance(item, Notice):
                    report.warnings.append(f"line {item.line_no}: {item.message}")
            if batch:
                writer.write(batch)
            writer.wait()
        except BaseException as exc:
            writer.wait_quietly()
            _record_failure(store, run_id, report, exc)
            if isinstance(exc, ListFormatError):
                raise ListFormatError(
                    f"{exc.message}. {_committed(report)} Fix the file and import it again: "
                    "entries already imported are not duplicated."
                ) from exc
            raise
    store.finish_import(
        run_id, "complete", invalid=report.invalid, skipped=sum(report.skipped.values())
    )
    return report


class _BatchWriter:
    """Writes batches on one background thread while the caller reads the next batch.

    sqlite3 (and psycopg) release the GIL while the database works, so parsing and writing
    overlap on two cores. One batch at most is in flight, and batches commit in order; a
    failed write surfaces on the next `write` or `wait`.
    """

    def __init__(self, store: BankStore, bank: str, run_id: int, report: ImportReport) -> None:
        self.store, self.bank, self.run_id, self.report = store, bank, run_id, report
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lightkeeper-import")
        self.pending: Future[WriteReport] | None = None

    def __enter__(self) -> _BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)

    def write(self, batch: list[EntryOp]) -> None:
        self.wait()
        # In the caller's context, so the audit trail names whoever the caller acts as.
        self.pending = self.pool.submit(
            contextvars.copy_context().run,
            self.store.write_batch,
            self.bank,
            batch,
            validated=True,
            import_run=self.run_id,
        )

    def wait(self) -> None:
        """Block until the batch in flight is committed, and count it."""
        if self.pending is not None:
            written, self.pending = self.pending.result(), None
            self.report.added += written.added
            self.report.updated += written.updated
            self.report.removed += written.removed
            self.report.unchanged += written.unchanged

    def wait_quietly(self) -> None:
        """`wait`, when another error is already on its way out."""
        with contextlib.suppress(Exception):
            self.wait()


class _Converter:
    """Turns records into store operations, normalising values and noting the bad ones."""

    def __init__(self, report: ImportReport, list_name: str | None, version: str | None) -> None:
        self.report = report
        self.list_name = list_name
        self.list_version = version
        self.known = set(registry.all_signal_types())

    def convert(self, record: Record) -> EntryOp | None:
        list_name = self.list_name or record.list_name
        if record.signal_type is None or record.value is None:
            if record.op == "remove" and record.external_id:
                return RemoveExternalId(record.external_id, list_name)
            self.report.note_invalid(record.line_no, "no signal type or value")
            return None
        signal_type = record.signal_type.lower()
        if signal_type not in self.known:
            self.report.skipped[f"signal type {signal_type!r} is not registered"] += 1
            return None
        try:
            if record.op == "remove":
                return RemoveValue(signal_type, registry.get(signal_type).normalize(record.value))
            return validate_new_entry(
                NewEntry(
                    signal_type,
                    record.value,
                    list_name=list_name,
                    list_version=self.list_version or record.list_version,
                    external_id=record.external_id,
                    classification=record.classification,
                    note=record.note,
                )
            )
        except (InvalidSignal, InvalidRequest, UnknownSignalType) as exc:
            self.report.note_invalid(record.line_no, str(exc))
            return None


def _committed(report: ImportReport) -> str:
    done = report.added + report.updated + report.removed + report.unchanged
    if not done:
        return "Nothing was imported."
    return f"{done} records in earlier batches were committed before it."


def _record_failure(
    store: BankStore, run_id: int, report: ImportReport, exc: BaseException
) -> None:
    # If the store itself is what failed, the original error matters more than this one.
    with contextlib.suppress(Exception):
        store.finish_import(
            run_id,
            "failed",
            invalid=report.invalid,
            skipped=sum(report.skipped.values()),
            error=str(exc) or type(exc).__name__,
        )
