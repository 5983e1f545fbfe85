"""``lightkeeper scan``: a report per file, over processes, that survives being interrupted."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import PhotoWriter, encode_photo, synthetic_photo
from lightkeeper.banks import BankStore
from lightkeeper.banks.testing import backends, temporary_database
from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.main import main
from lightkeeper.cli.scan_command import CSV_COLUMNS
from lightkeeper.hashing import hash_file


def lk(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def tree(
    request: pytest.FixtureRequest, tmp_path: Path, write_photo: PhotoWriter
) -> Iterator[tuple[str, Path]]:
    """A store with a bank holding one photo's PDQ, and a tree of 6 files under "photos".

    The store is an SQLite file, or under `on_every_backend` a PostgreSQL database as well.
    """
    backend = getattr(request, "param", "sqlite")
    with ExitStack() as stack:
        if backend == "sqlite":
            db = str(tmp_path / "banks.db")
        else:
            db = stack.enter_context(temporary_database(backend, migrated=True))
        yield _populate(db, tmp_path, write_photo)


#: Runs a test once per backend (see `tree`).
on_every_backend = pytest.mark.parametrize("tree", backends(), indirect=True)


def _populate(db: str, tmp_path: Path, write_photo: PhotoWriter) -> tuple[str, Path]:
    root = tmp_path / "photos"
    (root / "sub" / ".hidden").mkdir(parents=True)
    listed = write_photo("jpeg", width=400, height=300, seed=1, name="listed.jpg")
    for i, (fmt, name) in enumerate(
        [("png", "a.png"), ("jpeg", "sub/b.jpg"), ("webp", "sub/.hidden/c.webp")]
    ):
        (root / name).write_bytes(write_photo(fmt, width=320, height=240, seed=10 + i).read_bytes())
    (root / "sub" / "listed-copy.jpg").write_bytes(listed.read_bytes())
    (root / "readme.txt").write_text("not a picture\n")
    (root / "z.jpg").write_bytes(listed.read_bytes()[:2000])  # truncated
    with BankStore.open(db) as store:
        store.create_bank("listed")
        store.add_entry("listed", "pdq", str(hash_file(listed)["pdq"]))
    return db, root


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@on_every_backend
def test_scan_writes_one_record_per_file_and_a_summary(
    tree: tuple[str, Path], tmp_path: Path
) -> None:
    db, root = tree
    report = tmp_path / "report.jsonl"
    result = lk("scan", root, "--db", db, "--output", report, "--jobs", "2")
    assert result.exit_code == ExitCode.MATCH_FOUND, result.output
    rows = records(report)
    assert [Path(str(r["file"])).relative_to(root).as_posix() for r in rows] == [
        "a.png",
        "readme.txt",
        "sub/.hidden/c.webp",
        "sub/b.jpg",
        "sub/listed-copy.jpg",
        "z.jpg",
    ]
    by_name = {Path(str(r["file"])).name: r for r in rows}
    copy = by_name["listed-copy.jpg"]
    assert copy["matched"] is True and copy["matches"][0]["bank"] == "listed"  # type: ignore[index]
    stat = (root / "sub" / "listed-copy.jpg").stat()
    assert (copy["size"], copy["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
    assert by_name["z.jpg"]["error_type"] == "truncated"
    assert by_name["readme.txt"]["error_type"] == "unsupported_format"
    assert by_name["a.png"]["matched"] is False and "error" not in by_name["a.png"]
    assert (
        f"lightkeeper: {root / 'sub' / 'listed-copy.jpg'}: MATCH listed  entry 1" in result.stderr
    )
    summary = [line for line in result.stderr.splitlines() if "scan:" in line]
    assert summary[0] == (
        f"lightkeeper: scan: 6 files in the report ({report}): 1 matched, 2 errors, 0 low quality"
    )
    assert summary[1].startswith("lightkeeper: scan: this run: 6 files in ")
    assert "files/s (2 jobs); 0 already in the report" in summary[1]


def test_csv_report_and_stdout(tree: tuple[str, Path], tmp_path: Path) -> None:
    db, root = tree
    report = tmp_path / "report.csv"
    assert lk("scan", root, "--db", db, "-o", report, "-j", "1").exit_code == ExitCode.MATCH_FOUND
    with report.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(Path(r["file"]).name, r["status"]) for r in rows] == [
        ("a.png", "no_match"),
        ("readme.txt", "error"),
        ("c.webp", "no_match"),
        ("b.jpg", "no_match"),
        ("listed-copy.jpg", "match"),
        ("z.jpg", "error"),
    ]
    match = rows[4]
    assert (match["matches"], match["banks"], match["distances"], match["signal_types"]) == (
        "1",
        "listed",
        "0",
        "pdq",
    )
    to_stdout = lk("scan", root, "--db", db, "--format", "csv", "-j", "1")
    assert list(csv.DictReader(io.StringIO(to_stdout.stdout))) == rows
    jsonl = lk("scan", root, "--db", db, "-j", "1")
    assert [json.loads(line)["file"] for line in jsonl.stdout.splitlines()] == [
        r["file"] for r in rows
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_skips_what_the_report_holds_and_drops_a_half_written_record(
    tree: tuple[str, Path], tmp_path: Path, fmt: str
) -> None:
    db, root = tree
    report = tmp_path / f"report.{fmt}"
    assert lk("scan", root, "--db", db, "-o", report, "-j", "1").exit_code == ExitCode.MATCH_FOUND
    complete = report.read_text()
    lines = complete.splitlines(keepends=True)
    keep = 4 if fmt == "csv" else 3  # the CSV header, then three records
    report.write_text("".join(lines[:keep]) + lines[keep][: len(lines[keep]) // 2])
    assert not complete.startswith(report.read_text() + "\n")
    result = lk("scan", root, "--db", db, "-o", report, "--resume", "-j", "2")
    assert result.exit_code == ExitCode.MATCH_FOUND, result.output
    assert "this run: 3 files" in result.stderr and "; 3 already in the report" in result.stderr
    assert "6 files in the report" in result.stderr and "1 matched, 2 errors" in result.stderr
    assert report.read_text() == complete
    again = lk("scan", root, "--db", db, "-o", report, "--resume")
    assert "this run: 0 files" in again.stderr and report.read_text() == complete
    report.write_text(complete[:9])  # cut inside the first record (or the CSV header)
    fresh = lk("scan", root, "--db", db, "-o", report, "--resume", "-j", "1")
    assert "this run: 6 files" in fresh.stderr and report.read_text() == complete


def test_resume_scans_a_changed_file_again(tree: tuple[str, Path], tmp_path: Path) -> None:
    db, root = tree
    report = tmp_path / "report.jsonl"
    lk("scan", root, "--db", db, "-o", report, "-j", "1")
    changed = root / "a.png"
    changed.write_bytes((root / "sub" / "listed-copy.jpg").read_bytes())  # now a listed photo
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    result = lk("scan", root, "--db", db, "-o", report, "--resume", "-j", "1")
    assert "this run: 1 files" in result.stderr
    rows = records(report)
    assert len(rows) == 6 and [r["file"] for r in rows].count(str(changed)) == 1
    assert next(r for r in rows if r["file"] == str(changed))["matched"] is True
    assert "2 matched" in result.stderr


def test_interrupted_scan_resumes(tmp_path: Path) -> None:
    """Ctrl-C stops the workers, keeps every finished record, and --resume completes it."""
    root = tmp_path / "many"
    root.mkdir()
    photo = encode_photo(synthetic_photo(400, 300, seed=3), "jpeg", quality=90)
    for i in range(200):
        (root / f"{i:03}.jpg").write_bytes(photo)
    db = str(tmp_path / "banks.db")
    with BankStore.open(db) as store:
        store.create_bank("b")
    report = tmp_path / "report.jsonl"
    command = [
        sys.executable,
        "-c",
        "from lightkeeper.cli.main import main; main()",
        "scan",
        str(root),
        "--db",
        db,
        "-o",
        str(report),
        "-j",
        "2",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while (not report.exists() or report.read_text().count("\n") < 5) and process.poll() is None:
        assert time.monotonic() < deadline, "the scan wrote nothing"
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED, stderr
    assert "interrupted: run the same command with --resume" in stderr
    assert "Traceback" not in stderr
    done = len(records(report))
    assert 5 <= done < 200

    resumed = lk("scan", root, "--db", db, "-o", report, "--resume", "-j", "2")
    assert resumed.exit_code == 0, resumed.output
    assert f"; {done} already in the report" in resumed.stderr
    assert sorted(str(r["file"]) for r in records(report)) == sorted(str(p) for p in root.iterdir())


def test_usage_errors(tree: tuple[str, Path], tmp_path: Path) -> None:
    db, root = tree
    report = tmp_path / "report.jsonl"
    report.write_text('{"file": "x"}\n')
    exists = lk("scan", root, "--db", db, "-o", report)
    assert exists.exit_code == ExitCode.USAGE and "already exists: pass --resume" in exists.stderr
    no_output = lk("scan", root, "--db", db, "--resume")
    assert no_output.exit_code == ExitCode.USAGE and "--resume needs --output" in no_output.stderr
    missing = lk("scan", tmp_path / "nowhere", "--db", db)
    assert missing.exit_code == ExitCode.USAGE and "does not exist" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert lk("scan", empty, "--db", db).exit_code == ExitCode.NO_INPUT
    for name, text in [("foreign.csv", "a,b\n1,2\n"), ("notes.jsonl", "my notes\n")]:
        foreign = tmp_path / name
        foreign.write_text(text)
        not_ours = lk("scan", root, "--db", db, "-o", foreign, "--resume")
        assert not_ours.exit_code == ExitCode.USAGE, not_ours.output
        assert "is not a Lightkeeper" in not_ours.stderr
        assert foreign.read_text() == text  # --resume rewrites only its own reports
    nowhere = lk("scan", root, "--db", db, "-o", tmp_path / "no-dir" / "r.jsonl")
    assert nowhere.exit_code == ExitCode.INPUT_ERRORS
    assert nowhere.stderr.startswith("lightkeeper: cannot write the report ")
    assert nowhere.stderr.endswith(": No such file or directory\n")


def test_scan_without_banks_warns(tmp_path: Path, write_photo: PhotoWriter) -> None:
    photo = write_photo("png", width=200, height=200)
    result = lk("scan", photo.parent, "--db", str(tmp_path / "b.db"), "-j", "1")
    assert result.exit_code == 0
    assert "warning: no enabled block bank in the store: nothing can match" in result.stderr
