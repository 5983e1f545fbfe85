"""Fuzzing `decode_image` with damaged real files: an image or a `MediaError`, nothing else.

Uploads are hostile, and a decoder that raises an unexpected exception (or a Python
warning turned error) on some byte string is a way to crash or dodge the pipeline. Each
format starts from a valid file (with EXIF, animation or large enough to take the reduced
path, so those parsers are reached too) and is damaged by bit flips, truncations,
insertions, overwrites and deletions, concentrated on the headers where parsing happens.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, features

from lightkeeper.errors import MediaError
from lightkeeper.media import DecodedImage, MediaLimits, decode_image
from lightkeeper.media.decode import SCALES

MakePhoto = Callable[..., Image.Image]

# Small enough that a flipped size field cannot make one example take seconds.
FUZZ_LIMITS = MediaLimits(max_pixels=4_000_000, max_dimension=8_000)


def seed_file(make_photo: MakePhoto, fmt: str) -> bytes:
    """A valid file of `fmt`, 400 x 384 (so it takes the reduced path), with metadata."""
    photo = make_photo(400, 384, seed=21)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    if fmt == "gif":
        second = make_photo(400, 384, seed=22)
        photo.save(buffer, "GIF", save_all=True, append_images=[second], duration=100)
    elif fmt == "tiff":
        photo.save(buffer, "TIFF", tiffinfo={0x0112: 6}, compression="tiff_lzw")
    elif fmt == "bmp":
        photo.save(buffer, "BMP")
    elif fmt == "heif":
        photo.save(buffer, "HEIF", exif=exif, quality=50)
    else:
        pillow_format = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}[fmt]
        photo.save(buffer, pillow_format, exif=exif)
    return buffer.getvalue()


@st.composite
def damaged(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        # Half the damage falls in the first 256 bytes, where the headers are.
        position = draw(
            st.one_of(st.integers(0, min(255, len(data) - 1)), st.integers(0, len(data) - 1))
        )
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "delete"]))
        if operation == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "truncate":
            del data[position:]
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[position : position + len(chunk)] = chunk
        else:
            del data[position : position + draw(st.integers(1, 16))]
    return bytes(data)


def check(image: DecodedImage) -> None:
    assert image.scale in SCALES
    if image.scale == 1:
        assert image.rgb is not None and image.luma is None
        assert image.rgb.shape == (image.height, image.width, 3)
    else:
        assert image.luma is not None and image.rgb is None
        rows, cols = math.ceil(image.height / image.scale), math.ceil(image.width / image.scale)
        assert image.luma.shape == (rows, cols)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "gif", "webp", "bmp", "tiff", "heif", "avif"])
def test_damaged_files_give_an_image_or_a_media_error(make_photo: MakePhoto, fmt: str) -> None:
    if fmt == "avif" and not features.check("avif"):
        pytest.skip("Pillow built without AVIF")
    original = seed_file(make_photo, fmt)
    assert decode_image(original, limits=FUZZ_LIMITS).scale == 2

    @settings(max_examples=150, deadline=None)
    @given(data=damaged(original))
    def fuzz(data: bytes) -> None:
        try:
            image = decode_image(data, limits=FUZZ_LIMITS)
        except MediaError as error:
            assert str(error)
        else:
            check(image)

    fuzz()
