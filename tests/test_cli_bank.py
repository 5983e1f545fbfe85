"""``lightkeeper bank``: the operator's commands on their own store, their output and exit codes."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from conftest import PhotoWriter
from lightkeeper.banks import BankStore
from lightkeeper.banks import settings as bank_settings
from lightkeeper.banks.store import DEFAULT_QUALITY_FLOOR
from lightkeeper.banks.testing import backends, temporary_database
from lightkeeper.cli import bank_command
from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.main import main
from lightkeeper.exchange import FORMATS
from lightkeeper.hashing import hash_file

PDQ_A = "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_B = "30a10efd71c83f429013d48d0ffffc52e34e0e17ada952a9d29685211ea9e5af"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store: an SQLite file; under `on_every_backend`, a PostgreSQL database as well."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield str(tmp_path / "banks.db")
        return
    with temporary_database(backend, migrated=True) as url:
        yield url


#: Runs a test once per backend, its `db` an SQLite path or a PostgreSQL URL.
on_every_backend = pytest.mark.parametrize("db", backends(), indirect=True)


def lk(*args: str | Path, db: str | None = None, input: str | bytes | None = None) -> Result:
    argv = [str(a) for a in args] + (["--db", db] if db is not None else [])
    result = CliRunner().invoke(main, argv, input=input)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, AssertionError | TypeError | AttributeError)
    return result


def json_lines(result: Result) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


# ---------------------------------------------------------------------------------- constants


def test_help_defaults_agree_with_the_library() -> None:
    assert bank_settings.DATABASE_URL.env == bank_command.DATABASE_ENV
    default = bank_settings.resolve_database_url(None, environ={})
    assert default == bank_settings.resolve_database_url(bank_command.DEFAULT_DATABASE, {})
    assert tuple(FORMATS) == bank_command.LIST_FORMATS
    assert bank_command.DEFAULT_QUALITY_FLOOR == DEFAULT_QUALITY_FLOOR


# ---------------------------------------------------------------------------------- banks


@on_every_backend
def test_create_list_show_and_delete(db: str) -> None:
    created = lk("bank", "create", "ncmec", "--description", "industry list", db=db)
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("created block bank 'ncmec'")
    assert lk("bank", "create", "fp", "--allow", "--threshold", "pdq=20", db=db).exit_code == 0
    assert lk("bank", "create", "rot", "--dihedral", "--quality-floor", "70", db=db).exit_code == 0

    listed = lk("bank", "list", db=db)
    assert listed.exit_code == 0
    assert listed.stdout.splitlines()[0].split() == [
        "NAME",
        "KIND",
        "ENABLED",
        "ENTRIES",
        "DESCRIPTION",
    ]
    assert [line.split()[:4] for line in listed.stdout.splitlines()[1:]] == [
        ["fp", "allow", "yes", "0"],
        ["ncmec", "block", "yes", "0"],
        ["rot", "block", "yes", "0"],
    ]
    banks = {b["name"]: b for b in json_lines(lk("bank", "list", "--json", db=db))}
    assert banks["fp"]["kind"] == "allow" and banks["fp"]["thresholds"] == {"pdq": 20}
    assert banks["rot"]["match_dihedral"] is True and banks["rot"]["pdq_quality_floor"] == 70
    assert banks["ncmec"]["entries"] == 0

    deleted = lk("bank", "delete", "fp", "--yes", db=db)
    assert deleted.exit_code == 0 and "deleted bank 'fp'" in deleted.stdout
    assert [b["name"] for b in json_lines(lk("bank", "list", "--json", db=db))] == [
        "ncmec",
        "rot",
    ]


def test_show_counts_per_signal_type_and_never_prints_entries(db: str, tmp_path: Path) -> None:
    lk("bank", "create", "b", "--threshold", "pdq=24", db=db)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{PDQ_A}\n{PDQ_B}\n")
    lk("bank", "import", "b", listing, "--signal-type", "pdq", "--list-name", "L", db=db)
    lk("bank", "add", "b", MD5, db=db)
    shown = lk("bank", "show", "b", db=db)
    assert shown.exit_code == 0, shown.output
    assert PDQ_A not in shown.stdout and MD5 not in shown.stdout
    lines = shown.stdout.splitlines()
    assert "  pdq                   2  threshold 24 (set)" in lines
    assert "  md5                   1  threshold 0 (default)" in lines
    assert any(line.startswith("  #1 ") and "lines L complete: 2 added" in line for line in lines)

    data = json.loads(lk("bank", "show", "b", "--json", db=db).stdout)
    assert data["entries"] == 3
    assert data["signal_types"]["pdq"] == {"entries": 2, "threshold": 24, "threshold_set": True}
    assert data["imports"][0]["added"] == 2 and data["imports"][0]["status"] == "complete"
    assert PDQ_A not in json.dumps(data)


def test_delete_asks_first(db: str) -> None:
    lk("bank", "create", "b", db=db)
    refused = lk("bank", "delete", "b", db=db, input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert "b" in [x["name"] for x in json_lines(lk("bank", "list", "--json", db=db))]
    confirmed = lk("bank", "delete", "b", db=db, input="y\n")
    assert confirmed.exit_code == 0
    assert json_lines(lk("bank", "list", "--json", db=db)) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["bank", "show", "nope"], ExitCode.INPUT_ERRORS, "lightkeeper: no bank named 'nope'\n"),
        (["bank", "delete", "nope", "--yes"], ExitCode.INPUT_ERRORS, "no bank named 'nope'"),
        (["bank", "create", "Bad Name"], ExitCode.INPUT_ERRORS, "invalid bank name 'Bad Name'"),
        (["bank", "create", "b", "--threshold", "pdq"], ExitCode.USAGE, "is not TYPE=N"),
        (["bank", "create", "b", "--threshold", "pdq=300"], ExitCode.INPUT_ERRORS, "exceeds"),
        (["bank", "create", "b", "--threshold", "vpdq=3"], ExitCode.INPUT_ERRORS, "unknown signal"),
        (["bank", "create", "b", "--quality-floor", "101"], ExitCode.USAGE, "0<=x<=100"),
    ],
)
def test_bad_bank_requests_exit_with_one_clear_line(
    db: str, args: list[str], code: int, message: str
) -> None:
    result = lk(*args, db=db)
    assert result.exit_code == code, result.output
    assert message in result.stderr


def test_creating_a_bank_twice_is_a_conflict(db: str) -> None:
    lk("bank", "create", "b", db=db)
    again = lk("bank", "create", "b", db=db)
    assert again.exit_code == ExitCode.INPUT_ERRORS
    assert again.stderr == "lightkeeper: bank 'b' already exists\n"


#: The bank settings `bank create` and `bank update` both take.
SETTING_OPTIONS = (
    "description",
    "thresholds",
    "dihedral",
    "quality_floor",
    "regions",
    "region_threshold",
)


def test_create_and_update_take_the_same_settings_and_create_shows_a_new_banks_defaults() -> None:
    create = {p.name: p for p in bank_command.create_command.params}
    update = {p.name: p for p in bank_command.update_command.params}
    for name in SETTING_OPTIONS:
        made, changed = create[name], update[name]
        assert isinstance(made, click.Option) and isinstance(changed, click.Option)
        assert (made.opts, made.secondary_opts) == (changed.opts, changed.secondary_opts)
        assert (made.type.to_info_dict(), made.metavar, made.multiple) == (
            changed.type.to_info_dict(),
            changed.metavar,
            changed.multiple,
        ), name
        if name != "regions":  # update says what switching regions does to codes kept
            assert made.help == changed.help, name
    library = inspect.signature(BankStore.create_bank).parameters
    assert create["description"].default == library["description"].default
    assert create["dihedral"].default == library["match_dihedral"].default
    assert create["quality_floor"].default == library["pdq_quality_floor"].default
    assert create["regions"].default == library["regions"].default
    assert create["region_threshold"].default == library["region_threshold"].default


@on_every_backend
def test_update_changes_only_the_settings_given(db: str) -> None:
    lk("bank", "create", "b", "--description", "kept", "--threshold", "pdq=20", db=db)
    lk("bank", "create", "other", db=db)
    updated = lk("bank", "update", "b", "--dihedral", "--quality-floor", "70", db=db)
    assert updated.exit_code == 0, updated.output
    assert updated.stdout == (
        "updated block bank 'b': pdq threshold 20, quality floor 70, dihedral on, regions off\n"
    )
    disabled = lk("bank", "update", "b", "--disable", "--region-threshold", "25", db=db)
    assert disabled.stdout.startswith("updated block bank 'b' (disabled): ")
    banks = {b["name"]: b for b in json_lines(lk("bank", "list", "--json", db=db))}
    b = banks["b"]
    assert (b["description"], b["thresholds"], b["match_dihedral"]) == ("kept", {"pdq": 20}, True)
    assert (b["pdq_quality_floor"], b["regions"], b["region_threshold"]) == (70, False, 25)
    assert b["enabled"] is False
    assert banks["other"]["enabled"] is True and banks["other"]["match_dihedral"] is False
    missing = lk("bank", "update", "nope", "--dihedral", db=db)
    assert missing.exit_code == ExitCode.INPUT_ERRORS
    assert missing.stderr == "lightkeeper: no bank named 'nope'\n"


# ---------------------------------------------------------------------------------- store location


def test_store_comes_from_the_environment_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIGHTKEEPER_DATABASE_URL", raising=False)
    assert lk("bank", "create", "here").exit_code == 0
    assert (tmp_path / "lightkeeper-data" / "lightkeeper.db").is_file()
    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("LIGHTKEEPER_DATABASE_URL", f"sqlite:///{elsewhere}")
    assert lk("bank", "create", "there").exit_code == 0
    assert [b["name"] for b in json_lines(lk("bank", "list", "--json"))] == ["there"]
    assert [
        b["name"]
        for b in json_lines(lk("bank", "list", "--json", db="lightkeeper-data/lightkeeper.db"))
    ] == ["here"]


def test_a_store_that_cannot_be_opened_exits_5(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("these are notes, not a database\n" * 100)
    result = lk("bank", "list", db=str(not_a_db))
    assert result.exit_code == ExitCode.STORE_UNAVAILABLE
    assert (
        result.stderr == f"lightkeeper: bank store sqlite:///{not_a_db}: file is not a database\n"
    )
    unknown = lk("bank", "list", db="nosuchdb://host/x")
    assert unknown.exit_code == ExitCode.STORE_UNAVAILABLE
    assert "not a database URL" in unknown.stderr


# ---------------------------------------------------------------------------------- import, export


@on_every_backend
def test_import_reports_counts_and_invalid_line_numbers(db: str, tmp_path: Path) -> None:
    lk("bank", "create", "b", db=db)
    listing = tmp_path / "list.csv"
    listing.write_text(
        f"signal_type,value,external_id\npdq,{PDQ_A},1\npdq,0123,2\nmd5,{MD5},3\nmd5,zz,4\n"
    )
    result = lk("bank", "import", "b", listing, "--list-version", "v7", db=db)
    assert result.exit_code == ExitCode.INPUT_ERRORS
    assert result.stdout == (
        f"imported {listing} into 'b' (csv): 2 added, 0 updated, 0 removed, 0 unchanged, "
        "2 invalid\n"
    )
    errors = result.stderr.splitlines()
    assert [line.split(": ")[2] for line in errors] == ["line 3", "line 5"]

    again = lk("bank", "import", "b", listing, "--json", db=db)
    report = json.loads(again.stdout)
    assert again.exit_code == ExitCode.INPUT_ERRORS
    assert {k: report[k] for k in ("added", "updated", "unchanged", "invalid", "format")} == {
        "added": 0,
        "updated": 0,  # importing a list again adds nothing
        "unchanged": 2,
        "invalid": 2,
        "format": "csv",
    }
    assert [line["line"] for line in report["invalid_lines"]] == [3, 5]


def test_clean_import_from_stdin_exits_0(db: str) -> None:
    lk("bank", "create", "b", db=db)
    result = lk(
        "bank", "import", "b", "-", "--signal-type", "pdq", db=db, input=f"{PDQ_A}\n{PDQ_B}\n"
    )
    assert result.exit_code == 0, result.output
    assert "2 added" in result.stdout and result.stderr == ""


def test_import_errors_are_clear(db: str, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"{PDQ_A}\n")
    unknown = lk("bank", "import", "nope", listing, db=db)
    assert unknown.exit_code == ExitCode.INPUT_ERRORS
    assert unknown.stderr == "lightkeeper: no bank named 'nope'\n"
    lk("bank", "create", "b", db=db)
    ambiguous = lk("bank", "import", "b", listing, db=db)
    assert ambiguous.exit_code == ExitCode.INPUT_ERRORS
    assert "--signal-type" in ambiguous.stderr or "signal type" in ambiguous.stderr
    missing = lk("bank", "import", "b", tmp_path / "missing.csv", db=db)
    assert missing.exit_code == ExitCode.USAGE and "does not exist" in missing.stderr


@on_every_backend
def test_export_round_trips_into_another_bank(db: str, tmp_path: Path) -> None:
    lk("bank", "create", "src", db=db)
    lk("bank", "create", "dst", db=db)
    listing = tmp_path / "list.csv"
    listing.write_text(f"signal_type,value,classification\npdq,{PDQ_A},A1\nmd5,{MD5},B2\n")
    lk("bank", "import", "src", listing, "--list-name", "L", db=db)
    exported = tmp_path / "out.csv"
    result = lk("bank", "export", "src", exported, db=db)
    assert result.exit_code == 0, result.output
    assert "exported 2 entries" in result.stderr
    assert lk("bank", "import", "dst", exported, db=db).exit_code == 0
    with BankStore.open(db) as store:

        def contents(bank: str) -> set[tuple[object, ...]]:
            return {
                (e.signal_type, e.value, e.classification, e.list_name)
                for e in store.iter_entries(bank)
            }

        assert (
            contents("dst")
            == contents("src")
            == {
                ("pdq", PDQ_A, "A1", "L"),
                ("md5", MD5, "B2", "L"),
            }
        )
    to_stdout = lk("bank", "export", "src", "-", "--format", "lines", "--signal-type", "md5", db=db)
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout.splitlines()[-1] == MD5


def test_export_refusal_leaves_no_partial_file(db: str, tmp_path: Path) -> None:
    lk("bank", "create", "b", db=db)
    lk("bank", "add", "b", MD5, db=db)
    lk("bank", "add", "b", PDQ_A, "--signal-type", "pdq", db=db)
    target = tmp_path / "out.txt"
    result = lk("bank", "export", "b", target, "--format", "lines", db=db)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert not target.exists()
    assert not [p.name for p in tmp_path.iterdir() if not p.name.startswith("banks.db")]


# ---------------------------------------------------------------------------------- add, remove


@on_every_backend
def test_add_a_photo_adds_its_pdq_md5_and_sha256(db: str, write_photo: PhotoWriter) -> None:
    photo = write_photo("jpeg", width=400, height=300)
    hashes = hash_file(photo)
    lk("bank", "create", "b", db=db)
    result = lk("bank", "add", "b", photo, "--classification", "A1", db=db)
    assert result.exit_code == 0, result.output
    assert [line.split()[:3] for line in result.stdout.splitlines()] == [
        ["added", "pdq", hashes["pdq"]],
        ["added", "md5", hashes["md5"]],
        ["added", "sha256", hashes["sha256"]],
    ]
    again = lk("bank", "add", "b", photo, "--classification", "A1", db=db)
    assert [line.split()[0] for line in again.stdout.splitlines()] == ["unchanged"] * 3
    with BankStore.open(db) as store:
        assert {e.classification for e in store.iter_entries("b")} == {"A1"}


def test_add_skips_the_pdq_of_a_photo_below_the_quality_floor(db: str, tmp_path: Path) -> None:
    from PIL import Image

    flat = tmp_path / "flat.png"
    Image.new("RGB", (128, 128), (90, 90, 90)).save(flat)
    lk("bank", "create", "b", db=db)
    result = lk("bank", "add", "b", flat, db=db)
    assert result.exit_code == 0
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["md5", "sha256"]
    assert "PDQ quality 0 is below the bank's floor 50" in result.stderr


def test_add_hash_values_and_refuse_bad_ones_without_adding_anything(db: str) -> None:
    lk("bank", "create", "b", db=db)
    bad = lk("bank", "add", "b", MD5, PDQ_A, "nothing-here.jpg", db=db)
    assert bad.exit_code == ExitCode.INPUT_ERRORS
    assert f"lightkeeper: {PDQ_A}: 64 hex digits may be a PDQ hash or a SHA-256" in bad.stderr
    assert "lightkeeper: nothing-here.jpg: no such file" in bad.stderr
    assert "nothing was added" in bad.stderr
    assert json.loads(lk("bank", "show", "b", "--json", db=db).stdout)["entries"] == 0
    good = lk("bank", "add", "b", PDQ_A.upper(), "--signal-type", "pdq", db=db)
    assert good.exit_code == 0 and good.stdout.split()[:3] == ["added", "pdq", PDQ_A]
    malformed = lk("bank", "add", "b", "abc", "--signal-type", "pdq", db=db)
    assert malformed.exit_code == ExitCode.INPUT_ERRORS
    assert "a PDQ hash has 64 hex digits" in malformed.stderr
    assert lk("bank", "add", "nope", MD5, db=db).stderr == "lightkeeper: no bank named 'nope'\n"


def test_remove_by_entry_id_and_by_hash(db: str) -> None:
    lk("bank", "create", "b", db=db)
    lk("bank", "create", "other", db=db)
    added = lk("bank", "add", "b", PDQ_A, PDQ_B, "--signal-type", "pdq", db=db).stdout
    entry_a = added.splitlines()[0].split()[-1]
    other = lk("bank", "add", "other", MD5, db=db).stdout.split()[-1]
    result = lk("bank", "remove", "b", entry_a, PDQ_B, MD5, other, db=db)
    assert result.exit_code == ExitCode.INPUT_ERRORS
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["removed", "pdq"],
        ["removed", "pdq"],
    ]
    assert result.stderr.splitlines() == [
        f"lightkeeper: {MD5}: not in bank 'b'",
        f"lightkeeper: {other}: entry {other} is not in bank 'b'",
    ]
    assert json.loads(lk("bank", "show", "b", "--json", db=db).stdout)["entries"] == 0
    assert json.loads(lk("bank", "show", "other", "--json", db=db).stdout)["entries"] == 1


def test_unwritable_export_and_directory_items_are_clear_errors(db: str, tmp_path: Path) -> None:
    lk("bank", "create", "b", db=db)
    nowhere = lk("bank", "export", "b", tmp_path / "no-dir" / "out.csv", db=db)
    assert nowhere.exit_code == ExitCode.INPUT_ERRORS
    assert nowhere.stderr == (
        f"lightkeeper: cannot write {tmp_path / 'no-dir' / 'out.csv'}: No such file or directory\n"
    )
    folder = lk("bank", "add", "b", tmp_path, db=db)
    assert folder.exit_code == ExitCode.INPUT_ERRORS
    assert f"lightkeeper: {tmp_path}: is a directory: name the files in it" in folder.stderr
