"""`hash_bytes` and `hash_file`: what a library user gets back, and what they must catch."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import struct
import sys
import types
import zlib
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from PIL import Image

from conftest import PhotoWriter, synthetic_photo
from lightkeeper import hashing
from lightkeeper.errors import (
    EmptyMedia,
    InputError,
    MediaTooLarge,
    TruncatedMedia,
    UnsupportedFormat,
)
from lightkeeper.hashing import bytes_signals, hash_bytes, hash_file
from lightkeeper.media.decode import MediaLimits
from lightkeeper.signals import registry
from lightkeeper.signals.base import ImageSignal, ImageSignalType
from lightkeeper.signals.exact import HexDigestSignal
from lightkeeper.signals.pdq import DIHEDRAL_NAMES

HEX64 = set("0123456789abcdef")


def _exact(data: bytes) -> dict[str, str]:
    return {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256")}


def _is_pdq(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= HEX64


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny PNG whose header claims a huge image: refused before any pixel is decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def animated_gif(frames: int = 3) -> bytes:
    images = [synthetic_photo(160, 120, seed=seed) for seed in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=100)
    return buffer.getvalue()


def flat_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), (128, 128, 128)).save(buffer, "PNG")
    return buffer.getvalue()


# --- what comes back --------------------------------------------------------------------


def test_keys_in_order_and_values(photo_bytes: Callable[..., bytes]) -> None:
    data = photo_bytes("jpeg", width=640, height=480, quality=90)
    result = hash_bytes(data)
    assert list(result) == [
        "pdq",
        "pdq_quality",
        "md5",
        "sha1",
        "sha256",
        "format",
        "width",
        "height",
    ]
    assert _is_pdq(result["pdq"])
    quality = result["pdq_quality"]
    assert isinstance(quality, int) and 50 <= quality <= 100
    assert {k: result[k] for k in ("md5", "sha1", "sha256")} == _exact(data)
    assert (result["format"], result["width"], result["height"]) == ("jpeg", 640, 480)


def test_hash_file_equals_hash_bytes_of_the_content(write_photo: PhotoWriter) -> None:
    path = write_photo("png", width=300, height=200)
    assert hash_file(path) == hash_bytes(path.read_bytes())
    assert hash_file(str(path)) == hash_file(path)


def test_close_to_the_reference_hasher(pdq_vectors: Path) -> None:
    with (pdq_vectors / "expected.csv").open() as table:
        rows = [row for row in csv.DictReader(table) if row["file"].startswith("dih/")]
    for row in rows[:3]:
        result = hash_file(pdq_vectors / row["file"])
        distance = (int(str(result["pdq"]), 16) ^ int(row["pdq"], 16)).bit_count()
        assert distance <= 10, (row["file"], distance)


def test_exif_orientation_reported_when_not_1(pdq_vectors: Path) -> None:
    assert "exif_orientation" not in hash_file(pdq_vectors / "exif-rotn" / "exif-rotn-1.jpg")
    rotated = hash_file(pdq_vectors / "exif-rotn" / "exif-rotn-6.jpg")
    assert rotated["exif_orientation"] == 6
    assert list(rotated)[-2:] == ["exif_orientation", "pdq_as_stored"]


def test_animation_hashes_the_first_frame_and_says_so() -> None:
    result = hash_bytes(animated_gif(frames=3))
    assert result["frames"] == 3
    assert result["warnings"] == ["3 frames or pages: only the first was hashed"]
    assert list(result)[-2:] == ["frames", "warnings"]


def test_low_quality_is_flagged() -> None:
    result = hash_bytes(flat_png())
    assert result["pdq_quality"] == 0
    assert result["warnings"] == ["pdq quality 0 is below 50: low quality, not used for matching"]


def test_dihedral_variants_in_documented_order(photo_bytes: Callable[..., bytes]) -> None:
    result = hash_bytes(photo_bytes("png", width=256, height=256), dihedral=True)
    variants = result["pdq_dihedral"]
    assert isinstance(variants, dict)
    assert list(variants) == list(DIHEDRAL_NAMES)
    assert all(_is_pdq(value) for value in variants.values())
    assert variants[DIHEDRAL_NAMES[0]] == result["pdq"]  # the first is the image as shown
    assert len(set(variants.values())) == 8
    assert list(result)[-1] == "pdq_dihedral"
    assert "pdq_dihedral" not in hash_bytes(photo_bytes("png", width=256, height=256))


# --- plug-ins appear without changes here ------------------------------------------------


class _Sha512Signal(HexDigestSignal):
    name = "sha512"
    description = "SHA-512 of the bytes"
    algorithm = "sha512"
    hex_length = 128


class _MeanSignal(ImageSignalType):
    """A toy image signal without a quality: contributes its value only."""

    name = "mean"
    description = "mean luma"
    comparison = "exact"

    def normalize(self, value: str) -> str:
        return value

    def from_image(self, image: object, *, dihedral: bool = False) -> ImageSignal:
        return ImageSignal(value="m")


@pytest.fixture
def with_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    plugin = types.ModuleType("lightkeeper_test_hash_plugins")
    plugin.Sha512 = _Sha512Signal  # type: ignore[attr-defined]
    plugin.Mean = _MeanSignal  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
    points = [
        *registry.entry_points(group=registry.GROUP),
        EntryPoint("sha512", f"{plugin.__name__}:Sha512", registry.GROUP),
        EntryPoint("mean", f"{plugin.__name__}:Mean", registry.GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: points)
    registry.all_signal_types.cache_clear()
    yield
    registry.all_signal_types.cache_clear()


@pytest.mark.usefixtures("with_plugins")
def test_registered_plug_ins_contribute_their_values(photo_bytes: Callable[..., bytes]) -> None:
    data = photo_bytes("png", width=200, height=150)
    result = hash_bytes(data)
    assert list(result)[:7] == ["mean", "pdq", "pdq_quality", "md5", "sha1", "sha256", "sha512"]
    assert result["mean"] == "m"
    assert result["sha512"] == hashlib.sha512(data).hexdigest()
    assert bytes_signals(b"%PDF-1.7")["sha512"] == hashlib.sha512(b"%PDF-1.7").hexdigest()


# --- errors the caller catches -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", EmptyMedia),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", UnsupportedFormat),
        (b"just some text, not an image\n", UnsupportedFormat),
        (png_bomb(), MediaTooLarge),
    ],
)
def test_media_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        hash_bytes(data)


def test_truncated(photo_bytes: Callable[..., bytes]) -> None:
    data = photo_bytes("png", width=400, height=300)
    with pytest.raises(TruncatedMedia):
        hash_bytes(data[: len(data) // 2])


def test_limits_are_the_callers(photo_bytes: Callable[..., bytes]) -> None:
    data = photo_bytes("png", width=400, height=300)
    with pytest.raises(MediaTooLarge):
        hash_bytes(data, limits=MediaLimits(max_pixels=400 * 300 - 1))
    with pytest.raises(MediaTooLarge):
        hash_bytes(data, limits=MediaLimits(max_bytes=len(data) - 1))
    assert hash_bytes(data, limits=MediaLimits(max_pixels=400 * 300))["width"] == 400


def test_bytes_signals_cover_any_data() -> None:
    data = b"\x00\x00\x00\x18ftypmp42 not really a video"
    assert bytes_signals(data) == _exact(data)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^no such file or directory$"):
        hash_file(tmp_path / "nope.jpg")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^is a directory$"):
        hash_file(tmp_path)


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        hash_file(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(write_photo: PhotoWriter) -> None:
    path = write_photo("png", width=64, height=64)
    path.chmod(0)
    with pytest.raises(InputError, match=r"^permission denied$"):
        hash_file(path)


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (NotADirectoryError(20, "Not a directory"), "cannot open: Not a directory"),
        (
            OSError(40, "Too many levels of symbolic links"),
            "cannot open: Too many levels of symbolic links",
        ),
    ],
)
def test_open_failures_are_input_errors(
    write_photo: PhotoWriter, monkeypatch: pytest.MonkeyPatch, raised: OSError, message: str
) -> None:
    path = write_photo("png", width=64, height=64)

    def failing_open(*args: object, **kwargs: object) -> int:
        raise raised

    with monkeypatch.context() as patch, pytest.raises(InputError) as caught:
        patch.setattr(hashing.os, "open", failing_open)
        hash_file(path)
    assert str(caught.value) == message


def test_size_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.jpg"
    with path.open("wb") as file:
        file.truncate(10_000)  # sparse: the size is there without the bytes

    def must_not_read(*args: object) -> bytes:
        raise AssertionError("read a file that stat already showed to be too large")

    monkeypatch.setattr(hashing, "_read_bounded", must_not_read)
    with pytest.raises(MediaTooLarge, match="the file is 10,000 bytes, over the limit of 9,999"):
        hash_file(path, limits=MediaLimits(max_bytes=9_999))


def test_file_that_grows_while_read_is_still_bounded(tmp_path: Path) -> None:
    grown = io.BytesIO(b"x" * 5000)
    assert hashing._read_bounded(grown, 100, MediaLimits(max_bytes=5000)) == b"x" * 5000
    grown.seek(0)
    with pytest.raises(MediaTooLarge):
        hashing._read_bounded(grown, 100, MediaLimits(max_bytes=4999))
