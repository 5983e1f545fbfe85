"""``lightkeeper hash``: output users script against, exit codes, and bad inputs among good."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import lightkeeper
from conftest import PhotoWriter
from lightkeeper import hashing
from lightkeeper.cli import hash_command
from lightkeeper.cli.main import main
from lightkeeper.errors import PluginError
from lightkeeper.media.decode import DEFAULT_LIMITS
from lightkeeper.signals import registry
from lightkeeper.signals.pdq import DIHEDRAL_NAMES
from test_hashing import animated_gif, png_bomb

TEXT_LINE = re.compile(r"^(?P<pdq>[0-9a-f]{64})  q=(?P<q>[ \d]{3})  (?P<file>.+)$")
SUCCESS_KEYS = ["file", "pdq", "pdq_quality", "md5", "sha1", "sha256", "format", "width", "height"]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["hash", *map(str, args)])


def json_lines(result: Result) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def _exact(data: bytes) -> dict[str, str]:
    return {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256")}


@pytest.fixture
def mixed(tmp_path: Path, write_photo: PhotoWriter) -> list[Path]:
    """A good photo among bad inputs, in the order they are passed."""
    good = write_photo("jpeg", width=320, height=240, name="good.jpg")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(write_photo("png", width=320, height=240).read_bytes()[:3000])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    document = tmp_path / "report.pdf"
    document.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    return [empty, truncated, good, document, bomb, tmp_path / "missing.jpg"]


def test_one_good_file_text_output(write_photo: PhotoWriter) -> None:
    path = write_photo("png", width=300, height=200)
    result = run(path)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    match = TEXT_LINE.match(result.stdout.rstrip("\n"))
    assert match, result.stdout
    expected = hashing.hash_file(path)
    assert match["pdq"] == expected["pdq"]
    assert int(match["q"]) == expected["pdq_quality"]
    assert match["file"] == str(path)


def test_good_file_among_bad_ones_text(mixed: list[Path]) -> None:
    result = run(*mixed)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].endswith("  " + str(mixed[2]))
    errors = result.stderr.splitlines()
    assert errors == [
        f"lightkeeper: {mixed[0]}: the media is empty (0 bytes)",
        f"lightkeeper: {mixed[1]}: the PNG image is truncated: the data ends before the image does",
        f"lightkeeper: {mixed[3]}: not a supported image: this is a PDF document",
        f"lightkeeper: {mixed[4]}: the image is 60000 x 60000 pixels; "
        "sides over 50,000 pixels are refused",
        f"lightkeeper: {mixed[5]}: no such file or directory",
        "lightkeeper: 5 of 6 files could not be hashed",
    ]
    assert "Traceback" not in result.output


def test_good_file_among_bad_ones_json(mixed: list[Path]) -> None:
    result = run("--json", *mixed)
    assert result.exit_code == 1
    records = json_lines(result)
    assert [record["file"] for record in records] == [str(path) for path in mixed]
    empty, truncated, good, document, bomb, missing = records

    assert list(good) == SUCCESS_KEYS
    assert good["format"] == "jpeg" and (good["width"], good["height"]) == (320, 240)
    assert {key: good[key] for key in ("md5", "sha1", "sha256")} == _exact(mixed[2].read_bytes())

    # Readable bytes that are no image still get their exact hashes: lists cover documents.
    for record, path, error_type in [
        (empty, mixed[0], "empty"),
        (truncated, mixed[1], "truncated"),
        (document, mixed[3], "unsupported_format"),
        (bomb, mixed[4], "too_large"),
    ]:
        assert list(record) == ["file", "error", "error_type", "md5", "sha1", "sha256"]
        assert record["error_type"] == error_type
        assert {k: record[k] for k in ("md5", "sha1", "sha256")} == _exact(path.read_bytes())
    assert missing == {
        "file": str(mixed[5]),
        "error": "no such file or directory",
        "error_type": "input_error",
    }
    # JSON on stdout is the whole story; stderr only says how many failed.
    assert result.stderr == "lightkeeper: 5 of 6 files could not be hashed\n"


def test_json_success_matches_the_library(write_photo: PhotoWriter) -> None:
    path = write_photo("jpeg", width=400, height=300)
    (record,) = json_lines(run("--json", path))
    assert record == {"file": str(path), **hashing.hash_file(path)}


def test_dihedral(write_photo: PhotoWriter) -> None:
    path = write_photo("png", width=256, height=256)
    (record,) = json_lines(run("--json", "--dihedral", path))
    variants = record["pdq_dihedral"]
    assert isinstance(variants, dict) and list(variants) == list(DIHEDRAL_NAMES)
    assert variants[DIHEDRAL_NAMES[0]] == record["pdq"]

    text = run("--dihedral", path).stdout.splitlines()
    assert len(text) == 9
    assert [line.split()[0] for line in text[1:]] == list(DIHEDRAL_NAMES)
    assert [line.split()[1] for line in text[1:]] == list(variants.values())


def test_warnings(tmp_path: Path) -> None:
    gif = tmp_path / "anim.gif"
    gif.write_bytes(animated_gif(frames=2))
    (record,) = json_lines(run("--json", gif))
    assert record["frames"] == 2
    assert record["warnings"] == ["2 frames or pages: only the first was hashed"]
    result = run(gif)
    assert result.exit_code == 0
    assert f"lightkeeper: {gif}: warning: 2 frames or pages: only the first was hashed" in (
        result.stderr
    )


def test_directories_recurse_in_sorted_order(tmp_path: Path, write_photo: PhotoWriter) -> None:
    root = tmp_path / "tree"
    (root / "b" / "deeper").mkdir(parents=True)
    (root / ".cache").mkdir()
    source = write_photo("png", width=96, height=96)
    for relative in ["b/deeper/z.png", "b/a.png", "c.png", ".cache/hidden.png", "a.png"]:
        shutil.copy(source, root / relative)
    (root / "b" / "loop").symlink_to(root)  # a loop: entered once, no endless walk
    (root / "link.png").symlink_to(root / "c.png")
    (root / "dangling.png").symlink_to(root / "nowhere.png")
    os.mkfifo(root / "fifo")  # skipped in a walk: reading it would block

    result = run("--json", root)
    files = [
        Path(str(record["file"])).relative_to(root).as_posix() for record in json_lines(result)
    ]
    assert files == [
        ".cache/hidden.png",
        "a.png",
        "b/a.png",
        "b/deeper/z.png",
        "c.png",
        "dangling.png",
        "link.png",
    ]
    assert json_lines(result)[5]["error"] == "broken symbolic link"
    assert result.exit_code == 1


def test_parallel_output_equals_serial(tmp_path: Path, write_photo: PhotoWriter) -> None:
    for seed in range(9):
        write_photo("jpeg" if seed % 2 else "png", width=160, height=120, seed=seed)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not much of a jpeg")
    serial = run("--json", "--jobs", "1", tmp_path)
    parallel = run("--json", "--jobs", "3", tmp_path)
    assert serial.exit_code == parallel.exit_code == 1
    assert parallel.stdout == serial.stdout
    assert len(serial.stdout.splitlines()) == 10


def test_limits_from_options(write_photo: PhotoWriter) -> None:
    path = write_photo("png", width=200, height=100)
    (too_many,) = json_lines(run("--json", "--max-pixels", "19999", path))
    assert too_many["error_type"] == "too_large"
    assert "md5" in too_many  # the bytes were read, only decoding was refused
    (too_big,) = json_lines(run("--json", "--max-bytes", "100", path))
    assert too_big["error_type"] == "too_large"
    assert "md5" not in too_big  # refused from its size, never read
    assert run("--max-pixels", "20000", path).exit_code == 0


def test_help_defaults_are_the_library_defaults() -> None:
    assert DEFAULT_LIMITS.max_bytes == hash_command.DEFAULT_MAX_BYTES
    assert DEFAULT_LIMITS.max_pixels == hash_command.DEFAULT_MAX_PIXELS


def test_undecodable_file_names_survive(tmp_path: Path, write_photo: PhotoWriter) -> None:
    name = os.fsdecode(b"caf\xe9.png")
    shutil.copy(write_photo("png", width=80, height=80), tmp_path / name)
    (tmp_path / "photo-0-80x80.png").unlink()
    (record,) = json_lines(run("--json", tmp_path))
    assert os.fsencode(str(record["file"])) == os.fsencode(tmp_path / name)
    assert run(tmp_path).stdout.rstrip().endswith("caf\\xe9.png")


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"lightkeeper, version {lightkeeper.__version__}\n"


# --- exit codes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [[], ["--jobs", "0", "x"], ["--max-bytes", "-1", "x"], ["--frobnicate", "x"]],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert run(*args).exit_code == 2


def test_no_input_files_exit_4(tmp_path: Path) -> None:
    (tmp_path / "empty-dir").mkdir()
    result = run(tmp_path / "empty-dir")
    assert result.exit_code == 4
    assert result.stderr == f"lightkeeper: no input files found in {tmp_path / 'empty-dir'}\n"
    assert result.stdout == ""


def test_broken_plug_in_exits_3(write_photo: PhotoWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list[object]:
        raise PluginError("signal type plug-in 'pdq' (x:Y) failed to load: boom")

    monkeypatch.setattr(registry, "image_signal_types", broken)
    result = run(write_photo("png", width=64, height=64))
    assert result.exit_code == 3
    assert result.stderr.startswith("lightkeeper: broken installation: signal type plug-in 'pdq'")
    assert len(result.stderr.splitlines()) == 1


def test_bug_while_hashing_one_file_exits_70_after_the_others(
    tmp_path: Path, write_photo: PhotoWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = write_photo("png", width=64, height=64, seed=1)
    cursed = write_photo("png", width=64, height=64, seed=2)
    real = hashing.hash_bytes

    def flaky(data: bytes, **options: object) -> dict[str, object]:
        if data == cursed.read_bytes():
            raise ZeroDivisionError("division by zero")
        return real(data, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "hash_bytes", flaky)
    result = run("--json", "--jobs", "1", good, cursed)
    assert result.exit_code == 70
    first, second = json_lines(result)
    assert "pdq" in first
    assert second["error_type"] == "internal_error"
    assert str(second["error"]).startswith("internal error: ZeroDivisionError: division by zero")


def test_unexpected_exception_is_one_line_exit_70(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(paths: object) -> object:
        raise RuntimeError("the walk fell over")

    monkeypatch.setattr(hash_command, "collect_inputs", crash)
    result = run(tmp_path)
    assert result.exit_code == 70
    assert result.stderr.splitlines() == [
        "lightkeeper: internal error: RuntimeError: the walk fell over "
        "(this is a bug; please report it)"
    ]


def test_traceback_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(paths: object) -> object:
        raise RuntimeError("the walk fell over")

    monkeypatch.setattr(hash_command, "collect_inputs", crash)
    result = CliRunner().invoke(main, ["hash", str(tmp_path)], env={"LIGHTKEEPER_TRACEBACK": "1"})
    assert isinstance(result.exception, RuntimeError)


def test_ctrl_c_exits_130(write_photo: PhotoWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(path: str, options: object) -> dict[str, object]:
        raise KeyboardInterrupt

    monkeypatch.setattr(hash_command, "hash_one", interrupted)
    result = run("--jobs", "1", write_photo("png", width=64, height=64))
    assert result.exit_code == 130
    assert result.stderr == "lightkeeper: interrupted\n"


def _die(path: str, options: object) -> dict[str, object]:
    os._exit(1)  # a worker killed, as by the OOM killer or a crash in C


def test_dead_worker_exits_70(write_photo: PhotoWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = [write_photo("png", width=64, height=64, seed=seed) for seed in range(2)]
    monkeypatch.setattr(hash_command, "hash_one", _die)
    result = run("--jobs", "2", *photos)
    assert result.exit_code == 70
    assert result.stderr.startswith("lightkeeper: a worker process died")
    assert "Traceback" not in result.output


# --- the installed script, as users run it -----------------------------------------------

SCRIPT = Path(sys.executable).with_name("lightkeeper")


def test_installed_script(pdq_vectors: Path, tmp_path: Path) -> None:
    photos = sorted((pdq_vectors / "labelme-subset").iterdir())[:3]
    done = subprocess.run(
        [SCRIPT, "hash", "--json", *photos, tmp_path / "missing.jpg"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in records] == [*map(str, photos), str(tmp_path / "missing.jpg")]
    assert all("pdq" in record for record in records[:3])
    # Never a progress bar (nor anything else) but the summary in a pipe.
    assert done.stderr == "lightkeeper: 1 of 4 files could not be hashed\n"


def test_broken_installation_in_a_real_process(pdq_vectors: Path) -> None:
    photo = pdq_vectors / "pen-and-coaster.png"
    code = (
        "import sys; sys.modules['PIL'] = None;"  # what a missing or broken Pillow looks like
        "from lightkeeper.cli.main import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "hash", photo], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3
    assert done.stderr.startswith("lightkeeper: broken installation: ")
    assert "Traceback" not in done.stderr


def test_progress_bar_only_on_a_terminal_and_never_in_the_results(pdq_vectors: Path) -> None:
    photos = sorted((pdq_vectors / "labelme-subset").iterdir())[:3]
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [SCRIPT, "hash", "--json", "--jobs", "1", *photos],
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    drawn = b""
    while True:  # drain the terminal so that the bar never blocks on a full buffer
        ready, _, _ = select.select([controller], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process exited
            break
        if not chunk:
            break
        drawn += chunk
    stdout, _ = process.communicate(timeout=60)
    os.close(controller)
    assert process.returncode == 0
    assert [json.loads(line)["file"] for line in stdout.decode().splitlines()] == [
        str(photo) for photo in photos
    ]
    assert b"hashing" in drawn and b"3/3" in drawn
