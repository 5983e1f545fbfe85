"""``lightkeeper match``: evidence per file, and exit codes a script can branch on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import PhotoWriter
from lightkeeper.banks import BankStore
from lightkeeper.banks.testing import backends, temporary_database
from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.main import main
from lightkeeper.hashing import bytes_signals, hash_file
from lightkeeper.matching import Matcher, MatchResult

MATCH_KEYS = {
    "bank",
    "bank_kind",
    "entry_id",
    "signal_type",
    "value",
    "content_value",
    "distance",
    "threshold",
    "quality",
    "variant",
    "list_name",
    "list_version",
    "external_id",
    "classification",
}


def lk(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def setup(
    request: pytest.FixtureRequest, tmp_path: Path, write_photo: PhotoWriter
) -> Iterator[tuple[str, Path, Path]]:
    """A store whose bank "listed" holds the PDQ of one photo; that photo and another.

    The store is an SQLite file, or under `on_every_backend` a PostgreSQL database as well.
    """
    backend = getattr(request, "param", "sqlite")
    with ExitStack() as stack:
        if backend == "sqlite":
            db = str(tmp_path / "banks.db")
        else:
            db = stack.enter_context(temporary_database(backend, migrated=True))
        yield _populate(db, write_photo)


#: Runs a test once per backend (see `setup`).
on_every_backend = pytest.mark.parametrize("setup", backends(), indirect=True)


def _populate(db: str, write_photo: PhotoWriter) -> tuple[str, Path, Path]:
    listed = write_photo("jpeg", width=480, height=360, seed=1, name="listed.jpg")
    other = write_photo("jpeg", width=480, height=360, seed=2, name="other.jpg")
    with BankStore.open(db) as store:
        store.create_bank("listed")
        store.add_entry(
            "listed", "pdq", str(hash_file(listed)["pdq"]), list_name="L", external_id="7"
        )
    return db, listed, other


@on_every_backend
def test_json_has_one_object_per_file_with_the_evidence(setup: tuple[str, Path, Path]) -> None:
    db, listed, other = setup
    result = lk("match", "--json", "--db", db, listed, other)
    assert result.exit_code == ExitCode.MATCH_FOUND, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["file"] == str(listed) and first["matched"] is True
    assert [set(m) for m in first["matches"]] == [MATCH_KEYS]
    match = first["matches"][0]
    assert (match["bank"], match["distance"], match["threshold"], match["external_id"]) == (
        "listed",
        0,
        31,
        "7",
    )
    assert second["file"] == str(other)
    assert second["matched"] is False and second["matches"] == []
    assert set(second) == {
        "file",
        "sha256",
        "matched",
        "matches",
        "suppressed",
        "allowed",
        "low_quality",
        "quality",
        "signals",
    }


def test_text_output_shows_each_file_and_each_match(setup: tuple[str, Path, Path]) -> None:
    db, listed, other = setup
    result = lk("match", "--db", db, listed, other)
    assert result.exit_code == ExitCode.MATCH_FOUND
    lines = result.stdout.splitlines()
    assert lines[0] == f"MATCH     {listed}"
    assert lines[1].startswith("    listed  entry 1  pdq  distance 0 <= 31  quality ")
    assert "list L" in lines[1] and "id 7" in lines[1]
    assert lines[2] == f"no match  {other}"
    assert result.stderr == ""


@on_every_backend
def test_no_match_exits_0(setup: tuple[str, Path, Path]) -> None:
    db, _, other = setup
    result = lk("match", "--db", db, other)
    assert result.exit_code == 0 and result.stdout == f"no match  {other}\n"


def test_a_match_wins_over_files_that_failed(setup: tuple[str, Path, Path], tmp_path: Path) -> None:
    db, listed, other = setup
    missing = tmp_path / "missing.jpg"
    both = lk("match", "--db", db, missing, listed)
    assert both.exit_code == ExitCode.MATCH_FOUND
    assert f"lightkeeper: {missing}: no such file or directory" in both.stderr
    failed_only = lk("match", "--json", "--db", db, missing, other)
    assert failed_only.exit_code == ExitCode.INPUT_ERRORS
    record = json.loads(failed_only.stdout.splitlines()[0])
    assert record["error_type"] == "input_error" and record["matched"] is False


def test_a_match_wins_over_an_internal_error(
    setup: tuple[str, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, listed, other = setup
    real = Matcher.match_file

    def flaky(self: Matcher, path: str) -> MatchResult:
        if str(path) == str(other):
            raise RuntimeError("boom")
        return real(self, path)

    monkeypatch.setattr(Matcher, "match_file", flaky)
    alone = lk("match", "--db", db, other)
    assert alone.exit_code == ExitCode.INTERNAL_ERROR
    assert "internal error: RuntimeError: boom" in alone.stderr
    assert lk("match", "--db", db, other, listed).exit_code == ExitCode.MATCH_FOUND


def test_a_file_that_is_no_image_is_still_matched_by_its_bytes(tmp_path: Path) -> None:
    db = str(tmp_path / "banks.db")
    document = tmp_path / "notes.txt"
    document.write_text("not a picture\n")
    with BankStore.open(db) as store:
        store.create_bank("docs")
        store.add_entry("docs", "sha256", bytes_signals(document.read_bytes())["sha256"])
    result = lk("match", "--json", "--db", db, document)
    assert result.exit_code == ExitCode.MATCH_FOUND
    record = json.loads(result.stdout)
    assert record["error_type"] == "unsupported_format"
    assert [m["signal_type"] for m in record["matches"]] == ["sha256"]


def test_allowed_and_low_quality_are_shown(tmp_path: Path, write_photo: PhotoWriter) -> None:
    from PIL import Image

    db = str(tmp_path / "banks.db")
    photo = write_photo("png", width=320, height=240, seed=4, name="fp.png")
    flat = tmp_path / "flat.png"
    Image.new("RGB", (100, 100), (10, 200, 10)).save(flat)
    with BankStore.open(db) as store:
        store.create_bank("block")
        store.create_bank("fp", kind="allow")
        for bank in ("block", "fp"):
            store.add_entry(bank, "pdq", str(hash_file(photo)["pdq"]))
    result = lk("match", "--db", db, photo, flat)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"allowed   {photo}"
    assert lines[1].startswith("    suppressed: block  entry 1") and lines[1].endswith(
        "by fp entry 2"
    )
    assert lines[2].startswith("    allowed: fp  entry 2")
    assert lines[3].startswith(f"no match  {flat}  (low quality: pdq quality 0")


def test_directories_are_walked(setup: tuple[str, Path, Path]) -> None:
    db, listed, other = setup
    result = lk("match", "--json", "--db", db, listed.parent)
    files = [json.loads(line)["file"] for line in result.stdout.splitlines()]
    assert str(listed) in files and str(other) in files


def test_bad_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    no_input = lk("match", "--db", str(tmp_path / "b.db"), empty)
    assert no_input.exit_code == ExitCode.NO_INPUT
    assert no_input.stderr == f"lightkeeper: no input files found in {empty}\n"
    bad_store = tmp_path / "bad.db"
    bad_store.write_bytes(b"\x00" * 4096)
    photo = tmp_path / "x.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    unavailable = lk("match", "--db", str(bad_store), photo)
    assert unavailable.exit_code == ExitCode.STORE_UNAVAILABLE
    assert unavailable.stderr.startswith("lightkeeper: bank store sqlite:///")
