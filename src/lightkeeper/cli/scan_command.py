"""``lightkeeper scan``: match a whole directory tree, on every core, resumably.

A backlog scan can run for hours over millions of files, so it must survive being stopped:

- The report (JSON lines, or CSV) is appended one record per file as results arrive, and
  flushed each time, so whatever was scanned before a Ctrl-C, a kill or a crash is on disk.
- Every record carries the file's path, size and modification time. ``--resume`` reads the
  report back, skips the files whose record still matches them (a file changed since is
  scanned again), drops a half-written last record, and goes on appending.
- Workers are processes (hashing is CPU-bound); each builds its `Matcher` once, in the pool's
  initializer, and keeps following the store's change log, so a hash added while the scan
  runs is matched from the next file on. Each worker holds its own copy of the indexes.

The files are walked as ``hash`` walks them (sorted, hidden files included, links followed
once), and results are written in that order.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import click

from lightkeeper.cli.bank_command import db_option, open_store
from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.hash_command import INTERNAL_ERROR_TYPE
from lightkeeper.cli.inputs import collect_inputs
from lightkeeper.cli.match_command import describe, outcome_exit_code, safe_match
from lightkeeper.cli.options import jobs_option, no_progress_option
from lightkeeper.cli.output import Reporter, display_path, error
from lightkeeper.cli.pool import stop_now
from lightkeeper.cpus import available_cpus
from lightkeeper.errors import InputError

if TYPE_CHECKING:
    from lightkeeper.matching import Matcher

REPORT_FORMATS = ("jsonl", "csv")
#: Columns of a CSV report, one row per file; lists of matches are joined with ";".
CSV_COLUMNS = (
    "file",
    "size",
    "mtime_ns",
    "status",
    "sha256",
    "matches",
    "banks",
    "entry_ids",
    "signal_types",
    "distances",
    "variants",
    "suppressed",
    "allowed",
    "low_quality",
    "quality",
    "error_type",
    "error",
)
#: How every JSON-lines record starts (`scan_record` puts the file first).
_RECORD_START = '{"file": '
#: Most files handed to a worker at a time (small: results stream and Ctrl-C stays prompt).
_MAX_CHUNK = 4


@dataclass(frozen=True)
class _Row:
    """What the scan needs to know of one record of the report (new or read back)."""

    file: str
    size: int | None
    mtime_ns: int | None
    matched: bool
    failed: bool
    internal: bool
    low_quality: bool
    #: The record as written: a JSON line's text, or a CSV row's cells.
    raw: str | list[str]


@dataclass
class _Tally:
    files: int = 0
    matched: int = 0
    failed: int = 0
    internal: int = 0
    low_quality: int = 0

    def count(self, row: _Row) -> None:
        self.files += 1
        self.matched += row.matched
        self.failed += row.failed
        self.internal += row.internal
        self.low_quality += row.low_quality


# ---------------------------------------------------------------------------------- records


def record_status(record: Mapping[str, Any]) -> str:
    """ "match", "allowed" (only suppressed or allow matches), "error" or "no_match"."""
    if record.get("matched"):
        return "match"
    if record.get("suppressed") or record.get("allowed"):
        return "allowed"
    if "error" in record:
        return "error"
    return "no_match"


def scan_record(matcher: Matcher, path: str) -> dict[str, Any]:
    """The JSON record of one file: its key (path, size, mtime) and its match result."""
    try:
        info = Path(path).stat()
        size: int | None = info.st_size
        mtime_ns: int | None = info.st_mtime_ns
    except OSError:
        size = mtime_ns = None  # `match_file` says why, in the record
    result = safe_match(matcher, path)
    return {"file": path, "size": size, "mtime_ns": mtime_ns, **result.to_dict()}


def _problem_record(path: str, problem: str) -> dict[str, Any]:
    from lightkeeper.matching import MatchResult

    result = MatchResult(file=path, error=problem, error_type="input_error")
    return {"file": path, "size": None, "mtime_ns": None, **result.to_dict()}


def _row_of_record(record: Mapping[str, Any], fmt: str) -> _Row:
    error_type = record.get("error_type")
    raw: str | list[str] = json.dumps(dict(record)) if fmt == "jsonl" else _csv_cells(record)
    return _Row(
        file=record["file"],
        size=record.get("size"),
        mtime_ns=record.get("mtime_ns"),
        matched=bool(record.get("matched")),
        failed="error" in record,
        internal=error_type == INTERNAL_ERROR_TYPE,
        low_quality=bool(record.get("low_quality")),
        raw=raw,
    )


def _csv_cells(record: Mapping[str, Any]) -> list[str]:
    matches = record.get("matches", [])

    def joined(key: str) -> str:
        return ";".join(str(m[key]) for m in matches)

    cells = {
        "file": record["file"],
        "size": _cell(record.get("size")),
        "mtime_ns": _cell(record.get("mtime_ns")),
        "status": record_status(record),
        "sha256": _cell(record.get("sha256")),
        "matches": str(len(matches)),
        "banks": joined("bank"),
        "entry_ids": joined("entry_id"),
        "signal_types": joined("signal_type"),
        "distances": joined("distance"),
        "variants": joined("variant"),
        "suppressed": str(len(record.get("suppressed", []))),
        "allowed": str(len(record.get("allowed", []))),
        "low_quality": "true" if record.get("low_quality") else "false",
        "quality": _cell(record.get("quality")),
        "error_type": _cell(record.get("error_type")),
        "error": _cell(record.get("error")),
    }
    return [cells[column] for column in CSV_COLUMNS]


def _cell(value: object) -> str:
    return "" if value is None else str(value)


# ---------------------------------------------------------------------------------- report


def _format_csv(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _line(row: _Row) -> str:
    return row.raw + "\n" if isinstance(row.raw, str) else _format_csv(row.raw)


def _open_text(path: Path, mode: str) -> TextIO:
    # surrogateescape: file names that are not UTF-8 go out and come back byte for byte.
    return cast(TextIO, path.open(mode, encoding="utf-8", errors="surrogateescape", newline=""))


def read_report(path: Path, fmt: str) -> list[_Row]:
    """The records of a report, without a last one cut short by an interruption.

    Anything else that is not a record means the file is not a scan report of this format,
    and it is refused (`--resume` rewrites the report: it must not eat someone's file).
    """
    with _open_text(path, "r") as fh:
        text = fh.read()
    rows = _read_jsonl(text) if fmt == "jsonl" else _read_csv(text)
    if rows is None:
        raise click.UsageError(
            f"{display_path(str(path))} is not a Lightkeeper {fmt} scan report; "
            "name another --output, or the --format it was written in"
        )
    return rows


def _read_jsonl(text: str) -> list[_Row] | None:
    rows: list[_Row] = []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("file"), str):
            rows.append(_row_of_record(record, "jsonl"))
        elif number < len(lines) or not _RECORD_START.startswith(line[: len(_RECORD_START)]):
            return None  # not a record, nor the start of one cut short
    return rows


def _read_csv(text: str) -> list[_Row] | None:
    # strict: a row cut inside a quoted cell raises at the end instead of passing as whole.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    all_cells: list[list[str]] = []
    try:
        all_cells.extend(reader)
    except csv.Error:
        pass  # the last row was cut short (only our header guards the rest)
    else:
        if all_cells and not text.endswith("\n"):
            all_cells.pop()  # the last row was cut short
    if not all_cells:
        return [] if _format_csv(CSV_COLUMNS).startswith(text) else None
    if tuple(all_cells[0]) != CSV_COLUMNS:
        return None
    rows: list[_Row] = []
    for number, cells in enumerate(all_cells[1:], start=2):
        if len(cells) != len(CSV_COLUMNS):
            if number == len(all_cells):
                break  # cut short
            return None
        record = dict(zip(CSV_COLUMNS, cells, strict=True))
        rows.append(
            _Row(
                file=record["file"],
                size=_int_or_none(record["size"]),
                mtime_ns=_int_or_none(record["mtime_ns"]),
                matched=record["status"] == "match",
                failed=bool(record["error_type"]),
                internal=record["error_type"] == INTERNAL_ERROR_TYPE,
                low_quality=record["low_quality"] == "true",
                raw=cells,
            )
        )
    return rows


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _rewrite(path: Path, fmt: str, rows: Sequence[_Row]) -> None:
    """Replace the report with `rows` (complete records only), atomically."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with _open_text(Path(temporary), "w") as out:
            if fmt == "csv":
                out.write(_format_csv(CSV_COLUMNS))
            out.writelines(_line(row) for row in rows)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------- workers

_WORKER_MATCHER: Matcher | None = None


def _init_worker(url: str) -> None:
    """Pool initializer: each worker opens the store and builds its matcher once."""
    global _WORKER_MATCHER
    # Ctrl-C reaches the whole process group: the parent alone handles it, and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from lightkeeper.banks import BankStore
    from lightkeeper.matching import Matcher

    _WORKER_MATCHER = Matcher(BankStore.open(url))


def _scan_in_worker(path: str) -> dict[str, Any]:
    assert _WORKER_MATCHER is not None, "the pool initializer did not run"
    return scan_record(_WORKER_MATCHER, path)


@contextmanager
def _records(paths: list[str], db: str | None, jobs: int) -> Iterator[Iterator[dict[str, Any]]]:
    """The record of each path, in order, computed over up to `jobs` processes."""
    from lightkeeper.banks import resolve_database_url
    from lightkeeper.matching import Matcher

    workers = min(jobs, len(paths))
    if workers <= 1:
        with open_store(db) as store:
            matcher = Matcher(store)
            yield (scan_record(matcher, path) for path in paths)
        return
    chunksize = max(1, min(_MAX_CHUNK, len(paths) // (workers * 4)))
    executor = ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(resolve_database_url(db),)
    )
    try:
        yield executor.map(_scan_in_worker, paths, chunksize=chunksize)
    except BaseException:
        stop_now(executor)
        raise
    executor.shutdown(wait=True)


# ---------------------------------------------------------------------------------- command


@click.command(
    "scan",
    epilog=(
        "Exit codes: 0 no match; 10 at least one file in the report matched a block bank "
        "(even if others failed); 1 some files could not be read or decoded, none matched; "
        "2 usage error; 4 no input files found; 5 the bank store cannot be used; "
        "70 internal error; 130 interrupted (the report so far resumes with --resume)."
    ),
)
@click.argument("directory", type=click.Path(exists=True, path_type=str))
@db_option
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to FILE, appending as results arrive [default: stdout].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(REPORT_FORMATS),
    default=None,
    help="Report format [default: csv for an --output ending in .csv, else jsonl].",
)
@jobs_option("scans")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the report in --output: skip the files it already holds, unchanged.",
)
@no_progress_option
def scan_command(
    directory: str,
    db: str | None,
    output: Path | None,
    fmt: str | None,
    jobs: int | None,
    resume: bool,
    no_progress: bool,
) -> None:
    """Match a directory tree against the banks, into a resumable report.

    The report has one record per file: with --format jsonl the object `match --json`
    prints plus "size" and "mtime_ns"; with --format csv the columns file, size, mtime_ns,
    status (match, allowed, no_match, error), sha256, matches, banks, entry_ids,
    signal_types, distances, variants (";"-separated, one per match), suppressed, allowed,
    low_quality, quality, error_type, error.

    Records are appended and flushed as files are done, so an interrupted scan keeps its
    work: run it again with --resume to skip the files already reported (a file whose size
    or modification time changed is scanned again). Matches and errors are shown on stderr
    as they come, and a summary at the end: files, matched, errors, low quality, elapsed
    time and files per second.
    """
    # (BLAS threads are limited to one by the `lightkeeper` group, before NumPy loads.)
    # Imported before the pool forks, so that its workers inherit them loaded.
    from lightkeeper import hashing, matching  # noqa: F401

    if fmt is None:
        fmt = "csv" if output is not None and output.suffix.lower() == ".csv" else "jsonl"
    if resume and output is None:
        raise click.UsageError("--resume needs --output FILE: the report to continue")
    existing = output is not None and output.exists() and output.stat().st_size > 0
    if existing and not resume:
        raise click.UsageError(
            f"{display_path(str(output))} already exists: pass --resume to continue it, "
            "or name another file"
        )

    inputs = list(collect_inputs([directory]))
    if not inputs:
        error(f"no input files found in {display_path(directory)}")
        raise click.exceptions.Exit(ExitCode.NO_INPUT)

    with open_store(db) as store:  # a store that cannot be used fails before the report
        if not any(bank.enabled and bank.kind == "block" for bank in store.list_banks()):
            error("warning: no enabled block bank in the store: nothing can match")

    kept: list[_Row] = []
    todo = list(inputs)
    try:
        if resume and output is not None and existing:
            kept, todo = _plan_resume(read_report(output, fmt), inputs)
            _rewrite(output, fmt, kept)  # with its CSV header
        sink = None if output is None else _open_text(output, "a")
    except OSError as exc:
        raise InputError(
            f"cannot write the report {display_path(str(output))}: {exc.strerror or exc}"
        ) from None
    tally = _Tally()
    for row in kept:
        tally.count(row)
    skipped = len(inputs) - len(todo)
    jobs = jobs or available_cpus()
    started = time.monotonic()
    done = 0
    interrupted = False
    try:
        if sink is not None and fmt == "csv" and not existing:
            sink.write(_format_csv(CSV_COLUMNS))
            sink.flush()
        elif sink is None and fmt == "csv":
            click.echo(_format_csv(CSV_COLUMNS), nl=False)
        paths = [item.path for item in todo if item.problem is None]
        with (
            _records(paths, db, jobs) as records,
            Reporter(total=len(todo), progress=not no_progress) as reporter,
        ):
            for record in _merge(todo, records):
                row = _row_of_record(record, fmt)
                if sink is not None:
                    sink.write(_line(row))
                    sink.flush()
                else:
                    reporter.result(_stdout_line(record, row, fmt))
                tally.count(row)
                done += 1
                _show(reporter, record, row, to_stdout=sink is None)
                reporter.advance()
    except KeyboardInterrupt:
        interrupted = True
    except BrokenProcessPool:
        error(
            "a worker process failed to start or died (out of memory, a crash in a compiled "
            "decoder, or a store it could not open); the report holds what was done: "
            "run again with --resume"
        )
        raise click.exceptions.Exit(ExitCode.INTERNAL_ERROR) from None
    finally:
        if sink is not None:
            sink.close()
    elapsed = time.monotonic() - started
    _summary(tally, done, skipped, elapsed, jobs, output)
    if interrupted:
        error("interrupted: run the same command with --resume to continue the report")
        raise click.exceptions.Exit(ExitCode.INTERRUPTED)
    code = outcome_exit_code(tally.matched, tally.failed, tally.internal)
    if code != ExitCode.OK:
        raise click.exceptions.Exit(code)


def _plan_resume(rows: list[_Row], inputs: Sequence[Any]) -> tuple[list[_Row], list[Any]]:
    """The report rows to keep, and the inputs still to scan.

    A file whose record has its current size and modification time is done. A file changed
    since is scanned again, and its old record dropped; records of files no longer there
    are kept (they were scanned). Of several records of one path, the last counts.
    """
    latest = {row.file: row for row in rows}
    todo = []
    stale: set[str] = set()
    for item in inputs:
        row = latest.get(item.path)
        if row is not None and item.problem is None and row.size is not None:
            try:
                info = Path(item.path).stat()
            except OSError:
                info = None
            if info is not None and (info.st_size, info.st_mtime_ns) == (row.size, row.mtime_ns):
                continue
        if row is not None:
            stale.add(item.path)
        todo.append(item)
    kept = [row for path, row in latest.items() if path not in stale]
    return kept, todo


def _merge(todo: Sequence[Any], records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in todo:
        if item.problem is not None:
            yield _problem_record(item.path, item.problem)
        else:
            yield next(records)


def _stdout_line(record: Mapping[str, Any], row: _Row, fmt: str) -> str:
    if fmt == "jsonl":
        return str(row.raw)
    cells = list(row.raw)
    cells[0] = display_path(record["file"])  # stdout may not take undecodable bytes
    return _format_csv(cells).rstrip("\n")


def _show(reporter: Reporter, record: Mapping[str, Any], row: _Row, *, to_stdout: bool) -> None:
    """Matches and errors on stderr as they come (the report has the rest)."""
    from lightkeeper.matching import Match

    path = record["file"]
    if "error" in record:
        reporter.message(str(record["error"]), path)
    if row.matched and not to_stdout:
        for data in record["matches"]:
            reporter.message(f"MATCH {describe(Match(**data))}", path)


def _summary(
    tally: _Tally, done: int, skipped: int, elapsed: float, jobs: int, output: Path | None
) -> None:
    rate = done / elapsed if elapsed > 0 else 0.0
    where = f" ({display_path(str(output))})" if output is not None else ""
    error(
        f"scan: {tally.files:,} files in the report{where}: {tally.matched:,} matched, "
        f"{tally.failed:,} errors, {tally.low_quality:,} low quality"
    )
    error(
        f"scan: this run: {done:,} files in {elapsed:.1f} s, {rate:.1f} files/s "
        f"({jobs} jobs); {skipped:,} already in the report"
    )
