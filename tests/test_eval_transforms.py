"""The transform suite: what each family does to a photo, reproducibly, and its documentation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import synthetic_photo
from lightkeeper.evaluation import transforms
from lightkeeper.evaluation.transforms import FAMILIES, Transform, standard_suite, transform_rng

SUITE = standard_suite()
BY_ID = {t.id: t for t in SUITE}
DOC = Path(__file__).resolve().parents[1] / "docs" / "accuracy.md"


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return synthetic_photo(240, 160, seed=7)


def apply(transform_id: str, image: Image.Image, seed: int = 0) -> Image.Image:
    return BY_ID[transform_id].apply(image, transform_rng(seed, "set", 0, transform_id))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_suite_has_unique_ids_and_only_documented_families() -> None:
    assert len({t.id for t in SUITE}) == len(SUITE)
    assert {t.family for t in SUITE} == set(FAMILIES)
    assert 60 <= len(SUITE) <= 100  # the copies per photo that keep a corpus run in minutes


def test_every_family_is_described_in_the_module_and_in_the_docs() -> None:
    doc = transforms.__doc__ or ""
    prose = DOC.read_text(encoding="utf-8").split("<!-- eval:begin -->")[0]
    for family in FAMILIES:
        assert f"``{family}``" in doc, family
        assert f"`{family}`" in prose, family
    for transform in SUITE:  # every strength is listed in the module docstring
        section = re.search(rf"``{re.escape(transform.family)}`` \[([^\]]*)\]", doc)
        assert section is not None and transform.strength.replace("deg", "") in section.group(1)


def test_transforms_are_pure_and_reproducible(photo: Image.Image) -> None:
    before = photo.tobytes()
    for transform in SUITE:
        first = apply(transform.id, photo, seed=3)
        again = apply(transform.id, photo, seed=3)
        assert first.mode == "RGB", transform.id
        assert first.tobytes() == again.tobytes(), transform.id
    assert photo.tobytes() == before  # no transform wrote into its input


def test_random_choices_follow_the_seed(photo: Image.Image) -> None:
    random_ones = ["crop-edge/10%", "sticker/10%", "text/10%", "noise/s10", "screenshot/phone"]
    for transform_id in random_ones:
        outputs = {apply(transform_id, photo, seed=s).tobytes() for s in range(6)}
        assert len(outputs) > 1, transform_id


def test_rng_depends_on_seed_set_photo_and_transform() -> None:
    def draw(*args: object) -> float:
        return float(transform_rng(*args).random())  # type: ignore[arg-type]

    base = draw(1, "a", 0, "jpeg/q10")
    assert draw(1, "a", 0, "jpeg/q10") == base
    assert len({base, draw(2, "a", 0, "jpeg/q10"), draw(1, "b", 0, "jpeg/q10")}) == 3
    assert len({base, draw(1, "a", 1, "jpeg/q10"), draw(1, "a", 0, "jpeg/q20")}) == 3


def test_geometry_is_what_the_strength_says(photo: Image.Image) -> None:
    w, h = photo.size
    assert apply("resize/0.5x", photo).size == (w // 2, h // 2)
    assert apply("resize/2x", photo).size == (2 * w, 2 * h)
    assert apply("aspect/w0.75", photo).size == (180, h)
    assert apply("crop-centre/10%", photo).size == (w - 24, h - 16)
    edge = apply("crop-edge/20%", photo).size
    assert edge in {(w - 48, h), (w, h - 32)}
    assert apply("border/10%", photo).size == (w + 32, h + 32)
    assert apply("border/letterbox", photo).size == (w, w)
    assert apply("rotate/5deg", photo).size == (w, h)
    assert apply("screenshot/phone", photo).size == (720, 1560)
    assert apply("screenshot/desktop", photo).size == (1440, 900)


def test_centre_crop_keeps_the_centre(photo: Image.Image) -> None:
    cropped = pixels(apply("crop-centre/20%", photo))
    assert np.array_equal(cropped, pixels(photo)[16:-16, 24:-24])


def test_dihedral_family_is_the_seven_rotations_and_flips(photo: Image.Image) -> None:
    original = pixels(photo)
    assert np.array_equal(pixels(apply("dihedral/rotate90", photo)), np.rot90(original))
    assert np.array_equal(pixels(apply("dihedral/rotate180", photo)), np.rot90(original, 2))
    assert np.array_equal(pixels(apply("dihedral/mirror", photo)), original[:, ::-1])
    assert np.array_equal(pixels(apply("dihedral/flip", photo)), original[::-1])
    assert np.array_equal(pixels(apply("dihedral/transpose", photo)), original.transpose(1, 0, 2))


def test_tone_edits(photo: Image.Image) -> None:
    grey = pixels(apply("greyscale/L", photo))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    original = pixels(photo).mean()
    assert pixels(apply("brightness/-20%", photo)).mean() == pytest.approx(0.8 * original, rel=0.02)
    assert pixels(apply("brightness/+10%", photo)).mean() > original
    assert pixels(apply("gamma/1.5", photo)).mean() < original


def test_blur_and_noise_change_detail_not_level(photo: Image.Image) -> None:
    original = pixels(photo).astype(np.float64)
    blurred = pixels(apply("blur/s1%", photo)).astype(np.float64)
    noisy = pixels(apply("noise/s10", photo)).astype(np.float64)
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(original, axis=1)).mean()
    assert (noisy - original).std() == pytest.approx(10, rel=0.2)
    assert abs((noisy - original).mean()) < 1


@pytest.mark.parametrize("coverage", [2, 5, 10, 20])
def test_sticker_covers_the_share_it_names(coverage: int) -> None:
    # On a flat picture, every changed pixel is sticker.
    flat = Image.new("RGB", (300, 200), (1, 2, 3))
    for seed in range(3):
        changed = (pixels(apply(f"sticker/{coverage}%", flat, seed)) != (1, 2, 3)).any(axis=2)
        assert changed.mean() == pytest.approx(coverage / 100, rel=0.12)


@pytest.mark.parametrize("family", ["text", "watermark"])
def test_text_bounding_box_covers_about_the_share_it_names(family: str) -> None:
    flat = Image.new("RGB", (400, 300), (90, 90, 90))
    for coverage in (5, 10):
        changed = (pixels(apply(f"{family}/{coverage}%", flat)) != (90, 90, 90)).any(axis=2)
        rows, cols = np.nonzero(changed)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) / changed.size
        assert box == pytest.approx(coverage / 100, rel=0.35)


def test_reencodings_lose_more_at_lower_quality(photo: Image.Image) -> None:
    original = pixels(photo)

    def error(transform_id: str) -> float:
        return float(np.abs(pixels(apply(transform_id, photo)) - original).mean())

    assert error("jpeg/q10") > error("jpeg/q50") > error("jpeg/q95")
    assert error("webp/q10") > error("webp/q75")


def test_screenshot_contains_the_photo_scaled(photo: Image.Image) -> None:
    shot = apply("screenshot/phone", photo)  # full width at the top of the content area
    top = 170
    height = round(photo.height * 720 / photo.width)
    region = shot.crop((0, top, 720, top + height)).resize(photo.size)
    assert np.abs(pixels(region) - pixels(photo)).mean() < 12


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(min_value=8, max_value=120),
    height=st.integers(min_value=8, max_value=120),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_transform_handles_any_photo_size(width: int, height: int, seed: int) -> None:
    image = synthetic_photo(width, height, seed=seed % 1000)
    for transform in SUITE:
        out = transform.apply(image, transform_rng(seed, "s", 0, transform.id))
        assert out.mode == "RGB" and out.width >= 1 and out.height >= 1, transform.id


def test_transforms_travel_to_worker_processes() -> None:
    import pickle  # transport to the pool, not storage

    for transform in SUITE:
        copy: Transform = pickle.loads(pickle.dumps(transform))
        assert copy.id == transform.id
