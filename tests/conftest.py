"""Fixtures shared by every test module: where the shared test data lives, and benign photos.

Lightkeeper never handles abuse material, and its tests never need it: synthetic photos
(smooth gradients plus shapes, made here with NumPy and Pillow) and the public PDQ test
photos under `shared_dir / "pdq-vectors"` stand in for every image.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pillow_heif
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image, ImageDraw, ImageFilter, features

# Lets the photo writers save HEIC; opening is registered by lightkeeper.media itself.
pillow_heif.register_heif_opener()

# No test here is judged by the clock (speed is measured by bench/, never by a unit test):
# Hypothesis's deadline and its "input generation is slow" check fail a correct test on a
# shared host that stalls the suite for seconds (CI at 18e0934: two URL property tests, with
# the host taking back 1,290 s of CPU time during the run). Every other check stays on.
settings.register_profile(
    "lightkeeper", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("lightkeeper")

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"

#: Format names (as `lightkeeper.media.sniff` spells them) -> (Pillow format, file suffix).
PHOTO_FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": ("JPEG", ".jpg"),
    "png": ("PNG", ".png"),
    "gif": ("GIF", ".gif"),
    "webp": ("WEBP", ".webp"),
    "bmp": ("BMP", ".bmp"),
    "tiff": ("TIFF", ".tif"),
    "heif": ("HEIF", ".heic"),
    "avif": ("AVIF", ".avif"),
}


def synthetic_photo(
    width: int = 640, height: int = 480, *, seed: int = 0, mode: str = "RGB"
) -> Image.Image:
    """A benign photo-like image: smooth colour gradients under a few soft-edged shapes.

    Deterministic for a given seed, with no symmetry (so rotations and mirrors of it all
    differ), and smooth enough that lossy codecs keep it close to the original. `mode` is
    any Pillow mode; "I;16" gives true 16-bit samples (the 8-bit image times 257).
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(-1.0, 1.0, size=3)
        ramp = 0.5 + 0.35 * (a * u + b * v) + 0.15 * np.sin(np.pi * (c + 1.5 * u * v + u))
        channels.append(ramp)
    pixels = np.clip(np.stack(channels, axis=-1) * 255, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)

    draw = ImageDraw.Draw(image)
    for index in range(6):
        fill = tuple(int(value) for value in rng.integers(0, 256, size=3))
        x0, x1 = sorted(rng.uniform(0, width, size=2))
        y0, y1 = sorted(rng.uniform(0, height, size=2))
        box = (x0, y0, max(x1, x0 + 2), max(y1, y0 + 2))
        if index % 3 == 0:
            draw.ellipse(box, fill=fill)
        elif index % 3 == 1:
            draw.rectangle(box, fill=fill)
        else:
            points = [(float(px), float(py)) for px, py in rng.uniform(0, 1, size=(3, 2))]
            draw.polygon([(px * width, py * height) for px, py in points], fill=fill)
    # An off-centre marker in the top-left quadrant breaks any accidental symmetry.
    draw.rectangle((width // 10, height // 10, width // 4, height // 6), fill=(250, 250, 20))
    image = image.filter(ImageFilter.GaussianBlur(radius=max(width, height) / 400))

    if mode == "RGB":
        return image
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(grey)
    return image.convert(mode)


def encode_photo(image: Image.Image, fmt: str, **save_options: Any) -> bytes:
    """`image` saved in `fmt` (a key of `PHOTO_FORMATS`), with Pillow's save options."""
    pillow_format, _ = PHOTO_FORMATS[fmt]
    if fmt == "avif" and not features.check("avif"):
        pytest.skip("this Pillow was built without AVIF support")
    buffer = io.BytesIO()
    image.save(buffer, pillow_format, **save_options)
    return buffer.getvalue()


class PhotoWriter(Protocol):
    def __call__(
        self,
        fmt: str,
        *,
        width: int = 640,
        height: int = 480,
        seed: int = 0,
        mode: str = "RGB",
        name: str | None = None,
        **save_options: Any,
    ) -> Path: ...


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared, read-only test data folder (`/work/shared` beside the repository)."""
    return SHARED_DIR


@pytest.fixture(scope="session")
def pdq_vectors(shared_dir: Path) -> Path:
    """Meta's public PDQ test photos and their reference hashes (see its README.md)."""
    return shared_dir / "pdq-vectors"


@pytest.fixture
def make_photo() -> Callable[..., Image.Image]:
    """Factory for `synthetic_photo` images: `make_photo(width, height, seed=, mode=)`."""
    return synthetic_photo


@pytest.fixture
def photo_bytes() -> Callable[..., bytes]:
    """Factory: `photo_bytes(fmt, width=, height=, seed=, mode=, **save_options)` -> bytes."""

    def build(
        fmt: str,
        *,
        width: int = 640,
        height: int = 480,
        seed: int = 0,
        mode: str = "RGB",
        **save_options: Any,
    ) -> bytes:
        return encode_photo(
            synthetic_photo(width, height, seed=seed, mode=mode), fmt, **save_options
        )

    return build


@pytest.fixture
def write_photo(tmp_path: Path) -> PhotoWriter:
    """Factory writing a synthetic photo into `tmp_path`; returns the file's path.

    `write_photo("jpeg", width=1200, height=900, seed=3, quality=90)`; the file is named
    `photo-<seed>-<width>x<height><suffix>` unless `name` is given (names never decide a
    format in Lightkeeper, so a test may give a JPEG a ".png" name on purpose).
    """

    def write(
        fmt: str,
        *,
        width: int = 640,
        height: int = 480,
        seed: int = 0,
        mode: str = "RGB",
        name: str | None = None,
        **save_options: Any,
    ) -> Path:
        _, suffix = PHOTO_FORMATS[fmt]
        data = encode_photo(
            synthetic_photo(width, height, seed=seed, mode=mode), fmt, **save_options
        )
        path = tmp_path / (name or f"photo-{seed}-{width}x{height}{suffix}")
        path.write_bytes(data)
        return path

    return write


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """Superuser URL of the PostgreSQL server the session's PostgreSQL cases share.

    ``LIGHTKEEPER_TEST_POSTGRES_URL`` if set, else a throwaway server started on first use
    and stopped at exit (`lightkeeper.banks.testing`); skips, or fails under
    ``LIGHTKEEPER_REQUIRE_POSTGRES=1``, when none can be had. For tests that run their own
    processes on one server (several ``lightkeeper serve``); a database per test comes from
    `lightkeeper.banks.testing.temporary_database`.
    """
    from lightkeeper.banks.testing import postgres_admin_url

    return postgres_admin_url()
