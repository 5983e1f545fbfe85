"""The acceptance flow of issue 3, end to end through the command line, as a new user runs it.

A user hashes their photos, imports the hashes as a list into a bank, and then finds edited
copies of those photos (resized, recompressed, slightly cropped and brightened) with the
evidence of each match, while unrelated photos are not found. All photos are benign:
synthetic ones (conftest) and Meta's public PDQ test photos.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image, ImageEnhance

from conftest import SHARED_DIR, synthetic_photo
from lightkeeper.cli.exit_codes import ExitCode
from lightkeeper.cli.main import main

SEEDS = (101, 102, 103, 104, 105)
UNRELATED_VECTORS = ("labelme-subset/q0003.jpg", "labelme-subset/q0122.jpg")


def lk(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def save(image: Image.Image, path: Path, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def edits(image: Image.Image) -> dict[str, Image.Image]:
    """The edits a photo goes through when it is shared around.

    The crop is slight (1% a side) on purpose: PDQ is robust to scaling, recompression and
    colour changes, not to cropping; 3-4% a side already moves these photos 45-90 bits.
    """
    width, height = image.size
    dx, dy = width // 100, height // 100
    return {
        "resized": image.resize((width // 2, height // 2), Image.Resampling.LANCZOS),
        "recompressed": image,  # saved below as a low-quality JPEG
        "cropped-brighter": ImageEnhance.Brightness(
            image.crop((dx, dy, width - dx, height - dy))
        ).enhance(1.1),
    }


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    originals = tmp_path / "my-photos"
    for seed in SEEDS:
        save(synthetic_photo(800, 600, seed=seed), originals / f"photo-{seed}.jpg", quality=95)
    return {"originals": originals, "work": tmp_path}


def test_new_user_lists_their_photos_and_finds_edited_copies(photos: dict[str, Path]) -> None:
    originals, work = photos["originals"], photos["work"]
    db = str(work / "lightkeeper.db")

    # 1. Hash the photos.
    hashed = lk("hash", "--json", originals)
    assert hashed.exit_code == 0, hashed.output
    records = [json.loads(line) for line in hashed.stdout.splitlines()]
    assert len(records) == len(SEEDS)

    # 2. Turn them into a list file and import it into a new bank.
    listing = work / "my-list.csv"
    with listing.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["signal_type", "value", "external_id"])
        for record in records:
            name = Path(record["file"]).name
            writer.writerow(["pdq", record["pdq"], name])
            writer.writerow(["md5", record["md5"], name])
    assert lk("bank", "create", "my-photos", "--db", db).exit_code == 0
    imported = lk(
        "bank",
        "import",
        "my-photos",
        listing,
        "--list-name",
        "family-album",
        "--list-version",
        "2024-06",
        "--db",
        db,
    )
    assert imported.exit_code == 0, imported.output
    assert f"{2 * len(SEEDS)} added" in imported.stdout

    # 3. Edited copies of every photo, and photos that have nothing to do with them.
    copies = work / "found-online"
    expected: dict[str, tuple[str, str]] = {}  # copy -> (original's name, its PDQ)
    for record in records:
        original = Image.open(record["file"]).convert("RGB")
        for edit, image in edits(original).items():
            quality = 40 if edit == "recompressed" else 85
            path = save(image, copies / f"{edit}-{Path(record['file']).stem}.jpg", quality=quality)
            expected[str(path)] = (Path(record["file"]).name, record["pdq"])
    unrelated = work / "unrelated"
    for seed in (201, 202, 203):
        save(synthetic_photo(800, 600, seed=seed), unrelated / f"other-{seed}.jpg", quality=90)
    for name in UNRELATED_VECTORS:
        (unrelated / Path(name).name).write_bytes((SHARED_DIR / "pdq-vectors" / name).read_bytes())

    # 4. Every edited copy is found, with the evidence of the match.
    found = lk("match", "--json", "--db", db, copies)
    assert found.exit_code == ExitCode.MATCH_FOUND, found.output
    results = {r["file"]: r for r in map(json.loads, found.stdout.splitlines())}
    assert set(results) == set(expected)
    for path, (original_name, original_pdq) in expected.items():
        result = results[path]
        assert result["matched"], (path, result)
        [match] = result["matches"]  # the PDQ; an edited copy's MD5 differs
        assert match["bank"] == "my-photos" and match["bank_kind"] == "block"
        assert match["signal_type"] == "pdq" and match["value"] == original_pdq
        assert match["external_id"] == original_name
        assert (match["list_name"], match["list_version"]) == ("family-album", "2024-06")
        assert match["distance"] <= match["threshold"] == 31
        assert match["quality"] >= 50 and match["variant"] == "original"

    # 5. Unrelated photos are not.
    unmatched = lk("match", "--json", "--db", db, unrelated)
    assert unmatched.exit_code == 0, unmatched.output
    assert [json.loads(line)["matches"] for line in unmatched.stdout.splitlines()] == [[]] * 5

    # 6. The originals match by their exact hash too, and a scan of everything agrees.
    exact = lk("match", "--json", "--db", db, originals / f"photo-{SEEDS[0]}.jpg")
    assert sorted(m["signal_type"] for m in json.loads(exact.stdout)["matches"]) == ["md5", "pdq"]
    report = work / "scan.csv"
    scanned = lk("scan", work, "--db", db, "--output", report, "--jobs", "2")
    assert scanned.exit_code == ExitCode.MATCH_FOUND
    rows = list(csv.DictReader(io.StringIO(report.read_text())))
    matched = {row["file"] for row in rows if row["status"] == "match"}
    photos_listed = {str(originals / f"photo-{seed}.jpg") for seed in SEEDS}
    assert matched == set(expected) | photos_listed
