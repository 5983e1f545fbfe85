"""EXIF orientation: Lightkeeper hashes what users see, and still matches lists that did not.

Phones store pixels as the sensor read them and an EXIF tag that says how to turn them for
display. A platform that re-encodes an upload usually bakes the turn into the pixels and drops
the tag, while Meta's reference hasher and HMA ignore the tag when they fill hash lists. A
copy must match whichever of the two a list holds: `pdq` is the displayed picture's hash,
`pdq_as_stored` the stored pixels' hash (the reference's view), given when the tag turns it.
"""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image, ImageOps

from conftest import SHARED_DIR, synthetic_photo
from lightkeeper import hash_bytes, hash_file
from lightkeeper.signals.base import DIHEDRAL_NAMES, STORED_VARIANT_BY_ORIENTATION

VECTORS = SHARED_DIR / "pdq-vectors"
MATCH = 31  # the default PDQ threshold


def distance(a: object, b: object) -> int:
    assert isinstance(a, str) and isinstance(b, str)
    return (int(a, 16) ^ int(b, 16)).bit_count()


def expected() -> dict[str, str]:
    with (VECTORS / "expected.csv").open() as fh:
        return {row["file"]: row["pdq"] for row in csv.DictReader(fh)}


def jpeg(image: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, **params)
    return out.getvalue()


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_as_stored_hash_agrees_with_the_reference_that_ignores_exif(orientation: int) -> None:
    name = f"exif-rotn/exif-rotn-{orientation}.jpg"
    result = hash_file(VECTORS / name)
    assert result["exif_orientation"] == orientation
    assert distance(result["pdq_as_stored"], expected()[name]) <= 10
    # …while the displayed picture is a different hash: rotating a photo changes PDQ.
    assert distance(result["pdq"], expected()[name]) > 64


def test_upright_photo_has_no_as_stored_hash() -> None:
    result = hash_file(VECTORS / "exif-rotn" / "exif-rotn-1.jpg")
    assert "exif_orientation" not in result and "pdq_as_stored" not in result


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_copy_with_the_turn_baked_in_matches_the_displayed_hash(orientation: int) -> None:
    path = VECTORS / "exif-rotn" / f"exif-rotn-{orientation}.jpg"
    original = hash_file(path)
    with Image.open(path) as im:
        baked = jpeg(ImageOps.exif_transpose(im))  # what a re-encoding platform serves
    copy = hash_bytes(baked)
    assert "exif_orientation" not in copy
    assert distance(copy["pdq"], original["pdq"]) <= 10


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_copy_with_the_tag_stripped_matches_the_as_stored_hash(orientation: int) -> None:
    path = VECTORS / "exif-rotn" / f"exif-rotn-{orientation}.jpg"
    original = hash_file(path)
    with Image.open(path) as im:
        stripped = jpeg(im)  # same stored pixels, no EXIF: now displayed as stored
    copy = hash_bytes(stripped)
    assert distance(copy["pdq"], original["pdq_as_stored"]) <= 10


@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_orientation_tag_gives_the_upright_hash(
    orientation: int, synthetic_upright: Image.Image
) -> None:
    upright = hash_bytes(jpeg(synthetic_upright))
    # Store the pixels turned the way a camera would, with the tag that undoes the turn.
    undo = getattr(Image.Transpose, _INVERSE[orientation])
    stored = synthetic_upright.transpose(undo)
    exif = Image.Exif()
    exif[0x0112] = orientation
    tagged = hash_bytes(jpeg(stored, exif=exif))
    assert tagged["exif_orientation"] == orientation
    assert distance(tagged["pdq"], upright["pdq"]) <= 8
    plain = hash_bytes(jpeg(stored))
    assert distance(tagged["pdq_as_stored"], plain["pdq"]) <= 8


def test_the_mapping_names_real_variants() -> None:
    assert set(STORED_VARIANT_BY_ORIENTATION) == set(range(1, 9))
    assert set(STORED_VARIANT_BY_ORIENTATION.values()) == set(DIHEDRAL_NAMES)


# The transpose that turns an upright picture into what a camera stores under each tag.
_INVERSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_90",
    7: "TRANSVERSE",
    8: "ROTATE_270",
}


@pytest.fixture(scope="module")
def synthetic_upright() -> Image.Image:
    return synthetic_photo(900, 600, seed=7)
