"""`decode_image`: untrusted bytes in, the pixels users see (or one clear `MediaError`) out."""

from __future__ import annotations

import io
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image, ImageOps, features

from lightkeeper.errors import (
    CorruptMedia,
    EmptyMedia,
    MediaError,
    MediaTooLarge,
    TruncatedMedia,
    UnsupportedFormat,
)
from lightkeeper.media import (
    DEFAULT_LIMITS,
    MIN_REDUCED_SIDE,
    DecodedImage,
    MediaLimits,
    choose_scale,
    decode_image,
)
from lightkeeper.media.decode import SCALES

PhotoBytes = Callable[..., bytes]
MakePhoto = Callable[..., Image.Image]

ALL_FORMATS = ["jpeg", "png", "gif", "webp", "bmp", "tiff", "heif", "avif"]
LOSSLESS = {"png", "bmp", "tiff"}

# Pillow's transposition that turns a stored image into the displayed one, per orientation.
DISPLAY = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# ... and its inverse, to build the stored image from a wanted displayed one.
STORE = {**DISPLAY, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}

# Where the partial edge blocks land when both stored axes have one: True = displayed first.
# (Orientation 6 turns the stored image clockwise: its bottom edge becomes the left edge.)
PARTIAL_FIRST = {
    1: (False, False),
    2: (False, True),
    3: (True, True),
    4: (True, False),
    5: (False, False),
    6: (False, True),
    7: (True, True),
    8: (True, False),
}


def needs(fmt: str) -> None:
    if fmt == "avif" and not features.check("avif"):
        pytest.skip("Pillow built without AVIF")


def mean_abs_diff(a: NDArray[np.generic], b: NDArray[np.generic]) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def assert_well_formed(image: DecodedImage) -> None:
    """The invariants every caller relies on, whatever the input."""
    assert image.scale in SCALES
    assert 1 <= image.orientation <= 8
    assert image.frames >= 1
    if image.scale == 1:
        assert image.luma is None
        assert image.rgb is not None
        assert image.rgb.dtype == np.uint8
        assert image.rgb.shape == (image.height, image.width, 3)
        plane: NDArray[np.generic] = image.rgb
        assert image.partial_first == (False, False)
    else:
        assert image.rgb is None
        assert image.luma is not None
        assert image.luma.dtype == np.float32
        rows, cols = math.ceil(image.height / image.scale), math.ceil(image.width / image.scale)
        assert image.luma.shape == (rows, cols)
        plane = image.luma
    assert plane.flags.c_contiguous
    assert not plane.flags.writeable


def with_orientation(
    displayed: Image.Image, orientation: int, fmt: str, **options: object
) -> bytes:
    """`displayed` stored so that applying the EXIF `orientation` shows it again."""
    stored = displayed if orientation == 1 else displayed.transpose(STORE[orientation])
    buffer = io.BytesIO()
    if fmt == "tiff":
        stored.save(buffer, "TIFF", tiffinfo={0x0112: orientation})
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        pillow_format = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}[fmt]
        stored.save(buffer, pillow_format, exif=exif, **options)
    return buffer.getvalue()


# --- formats and modes -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_each_format_decodes_to_full_resolution_rgb(
    photo_bytes: PhotoBytes, make_photo: MakePhoto, fmt: str
) -> None:
    needs(fmt)
    source = np.asarray(make_photo(160, 120, seed=2))
    image = decode_image(photo_bytes(fmt, width=160, height=120, seed=2), reduce=False)
    assert_well_formed(image)
    assert (image.format, image.width, image.height, image.scale) == (fmt, 160, 120, 1)
    assert image.rgb is not None
    if fmt in LOSSLESS:
        assert np.array_equal(image.rgb, source)
    else:  # lossy codecs, and GIF's 256-colour palette
        assert mean_abs_diff(image.rgb, source) < 5


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_large_images_come_back_as_a_reduced_luma_plane(
    photo_bytes: PhotoBytes, make_photo: MakePhoto, fmt: str
) -> None:
    needs(fmt)
    data = photo_bytes(fmt, width=640, height=480, seed=3)
    image = decode_image(data)
    assert_well_formed(image)
    assert (image.width, image.height, image.scale) == (640, 480, 2)
    assert image.luma is not None
    expected = np.asarray(make_photo(640, 480, seed=3).convert("L").reduce(2))
    assert mean_abs_diff(image.luma, expected) < 2


def test_reduce_false_always_gives_full_resolution(photo_bytes: PhotoBytes) -> None:
    image = decode_image(photo_bytes("jpeg", width=1100, height=900), reduce=False)
    assert_well_formed(image)
    assert image.scale == 1
    assert image.rgb is not None and image.rgb.shape == (900, 1100, 3)


def test_small_images_are_not_reduced(photo_bytes: PhotoBytes) -> None:
    image = decode_image(photo_bytes("png", width=1000, height=2 * MIN_REDUCED_SIDE - 1))
    assert image.scale == 1
    assert image.rgb is not None


M = MIN_REDUCED_SIDE


@pytest.mark.parametrize(
    ("width", "height", "scale"),
    [
        (1, 1, 1),
        (2 * M - 1, 4000, 1),
        (2 * M, 2 * M, 2),
        (4000, 4 * M - 1, 2),
        (4 * M, 4 * M, 4),
        (8 * M - 1, 8 * M - 1, 4),
        (8 * M, 8 * M, 8),
        (50_000, 50_000, 8),
    ],
)
def test_choose_scale_keeps_the_short_side_at_least_min_reduced_side(
    width: int, height: int, scale: int
) -> None:
    assert choose_scale(width, height) == scale


@pytest.mark.parametrize(
    ("width", "height", "scale"), [(4032, 3024, 8), (1024, 768, 4), (640, 480, 2), (400, 300, 1)]
)
def test_choose_scale_on_common_photo_sizes(width: int, height: int, scale: int) -> None:
    # 12 and 1 megapixel photos take the deepest reductions, where decoding time is won.
    assert choose_scale(width, height) == scale


@given(width=st.integers(1, 60_000), height=st.integers(1, 60_000))
def test_choose_scale_is_the_largest_allowed_reduction(width: int, height: int) -> None:
    scale = choose_scale(width, height)
    side = min(width, height)
    assert scale in SCALES
    if scale > 1:
        assert side / scale >= MIN_REDUCED_SIDE
    if scale < SCALES[-1]:
        assert side / (scale * 2) < MIN_REDUCED_SIDE


def test_a_jpeg_named_png_is_decoded_as_a_jpeg(write_photo: Callable[..., Path]) -> None:
    path = write_photo("jpeg", width=64, height=48, name="holiday.png")
    assert decode_image(path.read_bytes()).format == "jpeg"


def test_sixteen_bit_png_is_scaled_not_blown_out(make_photo: MakePhoto) -> None:
    ramp = np.linspace(0, 65535, 200 * 100).reshape(100, 200).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    image = decode_image(buffer.getvalue(), reduce=False)
    assert image.rgb is not None
    expected = np.rint(ramp / 257.0)
    assert np.abs(image.rgb[..., 0] - expected).max() <= 1
    assert np.array_equal(image.rgb[..., 0], image.rgb[..., 1])
    assert 120 < image.rgb.mean() < 135  # a plain convert("L") clips to ~255


def test_sixteen_bit_png_on_the_reduced_path(make_photo: MakePhoto) -> None:
    source = make_photo(600, 400, seed=4, mode="I;16")
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    image = decode_image(buffer.getvalue())
    assert image.scale == 2 and image.luma is not None
    expected = np.asarray(make_photo(600, 400, seed=4).convert("L").reduce(2))
    assert mean_abs_diff(image.luma, expected) < 1


@pytest.mark.parametrize(
    ("mode", "samples", "expected"),
    [
        ("I;16", np.array([[0, 257, 65535]], dtype=np.uint16), [0, 1, 255]),
        ("I", np.array([[0, 32896, 65535]], dtype=np.int32), [0, 128, 255]),
        ("I", np.array([[-1000, 0, 1000]], dtype=np.int32), [0, 128, 255]),
        ("F", np.array([[0.0, 0.5, 1.0]], dtype=np.float32), [0, 128, 255]),
        ("F", np.array([[-2.0, 0.0, 2.0]], dtype=np.float32), [0, 128, 255]),
    ],
)
def test_high_depth_tiff_samples_are_scaled_to_8_bits(
    mode: str, samples: NDArray[np.generic], expected: list[int]
) -> None:
    im = Image.fromarray(samples)
    assert im.mode == mode
    buffer = io.BytesIO()
    im.save(buffer, "TIFF")
    image = decode_image(buffer.getvalue(), reduce=False)
    assert image.rgb is not None
    assert image.rgb[0, :, 0].tolist() == expected


@pytest.mark.parametrize("fmt", ["png", "webp", "tiff"])
def test_alpha_is_ignored(make_photo: MakePhoto, fmt: str) -> None:
    colour = make_photo(64, 48, seed=6)
    alpha = Image.linear_gradient("L").resize((64, 48))
    rgba = colour.copy()
    rgba.putalpha(alpha)
    buffer = io.BytesIO()
    rgba.save(buffer, fmt.upper(), **({"lossless": True} if fmt == "webp" else {}))
    image = decode_image(buffer.getvalue(), reduce=False)
    assert image.rgb is not None
    assert np.array_equal(image.rgb, np.asarray(colour))


def test_palette_with_per_entry_transparency_decodes_without_warning() -> None:
    palette_image = Image.new("P", (8, 8), 1)
    palette_image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    buffer = io.BytesIO()
    palette_image.save(buffer, "PNG", transparency=b"\x00\x80")  # a tRNS chunk of alphas
    image = decode_image(buffer.getvalue(), reduce=False)
    assert image.rgb is not None
    assert image.rgb[0, 0].tolist() == [200, 100, 50]


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "jpeg"), ("L", "png"), ("1", "png"), ("1", "bmp"), ("P", "png"), ("LA", "png")],
)
def test_grey_and_palette_modes_become_rgb(make_photo: MakePhoto, mode: str, fmt: str) -> None:
    source = make_photo(64, 48, seed=7, mode=mode)
    buffer = io.BytesIO()
    source.save(buffer, fmt.upper())
    image = decode_image(buffer.getvalue(), reduce=False)
    assert image.rgb is not None
    expected = np.asarray(source.convert("RGB"))
    assert mean_abs_diff(image.rgb, expected) < (3 if fmt == "jpeg" else 0.01)


def test_cmyk_jpeg_becomes_rgb(make_photo: MakePhoto) -> None:
    source = make_photo(64, 48, seed=8)
    buffer = io.BytesIO()
    source.convert("CMYK").save(buffer, "JPEG", quality=95)
    image = decode_image(buffer.getvalue(), reduce=False)
    assert image.rgb is not None
    assert mean_abs_diff(image.rgb, np.asarray(source)) < 4


# --- animations and pages ----------------------------------------------------------------

FRAME_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("GIF", {}),
        ("WEBP", {"lossless": True}),
        ("PNG", {}),  # APNG
        ("TIFF", {}),  # multi-page
    ],
)
def test_only_the_first_frame_is_decoded_and_frames_are_counted(
    fmt: str, options: dict[str, object]
) -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in FRAME_COLOURS]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], **options)
    image = decode_image(buffer.getvalue(), reduce=False)
    assert image.frames == 3
    assert image.rgb is not None
    assert np.abs(image.rgb.astype(int) - FRAME_COLOURS[0]).max() <= 2


def test_a_still_image_has_one_frame(photo_bytes: PhotoBytes) -> None:
    assert decode_image(photo_bytes("gif", width=32, height=32)).frames == 1


# --- orientation -------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["png", "tiff", "jpeg", "webp", "avif"])
def test_exif_orientation_gives_the_displayed_pixels(
    make_photo: MakePhoto, fmt: str, orientation: int
) -> None:
    needs(fmt)
    displayed = make_photo(96, 64, seed=5)
    data = with_orientation(displayed, orientation, fmt, quality=95)
    image = decode_image(data, reduce=False)
    assert (image.width, image.height, image.orientation) == (96, 64, orientation)
    assert image.rgb is not None
    if fmt in LOSSLESS:
        assert np.array_equal(image.rgb, np.asarray(displayed))
    else:
        assert mean_abs_diff(image.rgb, np.asarray(displayed)) < 6
        # ... and it is not some other orientation of the same picture.
        wrong = np.asarray(displayed.transpose(Image.Transpose.ROTATE_180))
        assert mean_abs_diff(image.rgb, wrong) > 20


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillows_exif_transpose(
    make_photo: MakePhoto, orientation: int
) -> None:
    stored = make_photo(50, 30, seed=9)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "PNG", exif=exif)
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    image = decode_image(buffer.getvalue(), reduce=False)
    assert image.rgb is not None
    assert np.array_equal(image.rgb, expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_reduced_plane_is_oriented_and_says_where_partial_blocks_are(orientation: int) -> None:
    # Stored 1203 x 905: black, but for the spare rows and columns past the last whole
    # block, which are white.
    width, height = 1203, 905
    scale = choose_scale(width, height)
    assert scale > 1 and width % scale and height % scale
    stored = np.zeros((height, width), dtype=np.uint8)
    stored[height - height % scale :, :] = 255
    stored[:, width - width % scale :] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "PNG", exif=exif)

    image = decode_image(buffer.getvalue())
    assert image.scale == scale
    assert image.partial_first == PARTIAL_FIRST[orientation]
    assert image.luma is not None
    # The all-white partial blocks sit exactly where `partial_first` says.
    first_row, first_col = image.partial_first
    assert (image.luma[0 if first_row else -1] == 255).all()
    assert (image.luma[:, 0 if first_col else -1] == 255).all()
    assert (image.luma[1:-1, 1:-1] == 0).all()
    # And the plane is the stored plane reduced, then oriented.
    reduced = Image.fromarray(stored).reduce(scale)
    if orientation != 1:
        reduced = reduced.transpose(DISPLAY[orientation])
    assert np.array_equal(image.luma, np.asarray(reduced, dtype=np.float32))


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_fast_jpeg_path_applies_orientation_with_odd_sizes(
    make_photo: MakePhoto, orientation: int
) -> None:
    stored = make_photo(1203, 905, seed=10)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95)
    image = decode_image(buffer.getvalue())
    assert image.scale == 4 and image.luma is not None
    assert image.partial_first == PARTIAL_FIRST[orientation]
    reduced = stored.convert("L").reduce(4)
    if orientation != 1:
        reduced = reduced.transpose(DISPLAY[orientation])
    assert mean_abs_diff(image.luma, np.asarray(reduced)) < 2


@pytest.mark.parametrize("progressive", [False, True])
def test_large_jpegs_are_reduced_by_libjpeg_not_after_a_full_decode(
    make_photo: MakePhoto, monkeypatch: pytest.MonkeyPatch, progressive: bool
) -> None:
    # Box-reducing a full decode gives nearly the same plane, several times slower: forbid
    # it here, so that this passes only when libjpeg decodes straight to the reduced luma.
    buffer = io.BytesIO()
    make_photo(1600, 1540, seed=13).save(buffer, "JPEG", progressive=progressive)

    def no_reduce(self: Image.Image, factor: int, box: object = None) -> Image.Image:
        raise AssertionError("a full decode was reduced")

    monkeypatch.setattr(Image.Image, "reduce", no_reduce)
    image = decode_image(buffer.getvalue())
    assert image.scale == 8
    assert image.luma is not None and image.luma.shape == (193, 200)


def test_heif_orientation_is_decided_by_the_container_not_exif(make_photo: MakePhoto) -> None:
    # HEIF makes its own rotation boxes authoritative and the EXIF tag informational;
    # libheif applies the boxes. A file with only the EXIF tag is shown as stored.
    stored = make_photo(96, 64, seed=5)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "HEIF", exif=exif)
    image = decode_image(buffer.getvalue(), reduce=False)
    assert image.orientation == 6
    assert (image.width, image.height) == (96, 64)
    assert image.rgb is not None
    assert mean_abs_diff(image.rgb, np.asarray(stored)) < 6


@pytest.mark.parametrize("value", [0, 9, 65535])
def test_invalid_orientation_counts_as_1(make_photo: MakePhoto, value: int) -> None:
    stored = make_photo(40, 20, seed=1)
    exif = Image.Exif()
    exif[0x0112] = value
    buffer = io.BytesIO()
    stored.save(buffer, "PNG", exif=exif)
    image = decode_image(buffer.getvalue(), reduce=False)
    assert image.orientation == 1
    assert image.rgb is not None and np.array_equal(image.rgb, np.asarray(stored))


PHONE_SIZES = {1: (4032, 3024), 3: (4032, 3024), 6: (3024, 4032), 8: (3024, 4032)}


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_phone_photos_decode_upright(pdq_vectors: Path, orientation: int) -> None:
    # The same desk photographed with the phone held four ways: all stored 4032 x 3024,
    # all upright once oriented (bright wall at the top, the desk at the bottom).
    data = (pdq_vectors / "exif-rotn" / f"exif-rotn-{orientation}.jpg").read_bytes()
    image = decode_image(data)
    assert image.orientation == orientation
    assert (image.width, image.height) == PHONE_SIZES[orientation]
    assert image.luma is not None
    quarter_rows, quarter_cols = image.luma.shape[0] // 4, image.luma.shape[1] // 4
    top_minus_bottom = image.luma[:quarter_rows].mean() - image.luma[-quarter_rows:].mean()
    left_minus_right = image.luma[:, :quarter_cols].mean() - image.luma[:, -quarter_cols:].mean()
    assert top_minus_bottom > 30
    assert top_minus_bottom > abs(left_minus_right)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_fast_path_on_phone_photos_matches_a_reduced_full_decode(
    pdq_vectors: Path, orientation: int
) -> None:
    data = (pdq_vectors / "exif-rotn" / f"exif-rotn-{orientation}.jpg").read_bytes()
    fast = decode_image(data)
    full = decode_image(data, reduce=False)
    assert_well_formed(fast)
    assert_well_formed(full)
    assert fast.scale == 8
    assert (fast.width, fast.height) == (full.width, full.height)
    assert full.rgb is not None and fast.luma is not None
    reference = np.asarray(Image.fromarray(full.rgb).convert("L").reduce(8))
    assert mean_abs_diff(fast.luma, reference) < 1.0
    assert np.abs(fast.luma - reference).max() <= 8


# --- hostile inputs ----------------------------------------------------------------------


def assert_clear(error: MediaError) -> None:
    """A message a person can read: one line, no traceback, no memory address."""
    message = str(error)
    assert message and "\n" not in message
    assert "Traceback" not in message
    assert not re.search(r"0x[0-9a-f]{6,}", message)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int, *, bit_depth: int = 8, idat: bytes = b"") -> bytes:
    """A greyscale PNG header claiming `width` x `height`, with correct CRCs."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def zero_png(width: int, height: int) -> bytes:
    """A real, all-black 1-bit PNG: tiny on disk, `width` x `height` when decoded."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + math.ceil(width / 8))
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return png_claiming(width, height, bit_depth=1, idat=idat)


def jpeg_claiming(photo_bytes: PhotoBytes, width: int, height: int) -> bytes:
    data = bytearray(photo_bytes("jpeg", width=64, height=48))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def test_zero_bytes_is_empty_media() -> None:
    with pytest.raises(EmptyMedia) as caught:
        decode_image(b"")
    assert_clear(caught.value)


@pytest.mark.parametrize("data", [b"\xff", b"\x89", b"G", b"\x00"])
def test_one_byte_is_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        decode_image(data)
    assert_clear(caught.value)


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8, 0.98])
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_truncated_files_are_truncated_media(
    photo_bytes: PhotoBytes, fmt: str, fraction: float
) -> None:
    needs(fmt)
    data = photo_bytes(fmt, width=480, height=400, seed=11)  # scale 2: JPEG drafts
    with pytest.raises(TruncatedMedia) as caught:
        decode_image(data[: int(len(data) * fraction)])
    assert_clear(caught.value)
    assert "truncated" in str(caught.value)


def test_corrupted_png_data_is_corrupt_media(photo_bytes: PhotoBytes) -> None:
    data = bytearray(photo_bytes("png", width=320, height=240, seed=12))
    middle = len(data) // 2
    data[middle : middle + 32] = b"\xa5" * 32
    with pytest.raises(CorruptMedia) as caught:
        decode_image(bytes(data))
    assert_clear(caught.value)


def test_corrupted_jpeg_header_is_corrupt_media(photo_bytes: PhotoBytes) -> None:
    data = bytearray(photo_bytes("jpeg", width=320, height=240, seed=12))
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 0  # precision 0 bits: libjpeg refuses it
    with pytest.raises(CorruptMedia) as caught:
        decode_image(bytes(data))
    assert_clear(caught.value)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_corrupted_middle_bytes_never_escape_as_raw_errors(
    photo_bytes: PhotoBytes, make_photo: MakePhoto, fmt: str
) -> None:
    # Some codecs (JPEG, BMP) decode damaged data to damaged pixels; that is fine, as long
    # as the result has the right shape or the failure is a MediaError.
    needs(fmt)
    data = bytearray(photo_bytes(fmt, width=320, height=240, seed=12))
    for fraction in (0.3, 0.5, 0.7):
        damaged = bytearray(data)
        start = int(len(data) * fraction)
        damaged[start : start + 16] = b"\xa5" * 16
        try:
            image = decode_image(bytes(damaged))
        except MediaError as error:
            assert_clear(error)
        else:
            assert_well_formed(image)
            assert (image.width, image.height) == (320, 240)


def test_png_header_claiming_100000_square_is_refused_before_decoding() -> None:
    with pytest.raises(MediaTooLarge) as caught:
        decode_image(png_claiming(100_000, 100_000))
    assert_clear(caught.value)
    assert "100000 x 100000" in str(caught.value)


def test_png_header_under_the_side_limit_but_over_the_pixel_limit_is_refused() -> None:
    with pytest.raises(MediaTooLarge, match="pixels"):
        decode_image(png_claiming(40_000, 40_000))


def test_decompression_bomb_over_the_default_limit_is_refused() -> None:
    bomb = zero_png(20_000, 20_000)
    assert len(bomb) < 100_000  # 400 megapixels in a few tens of kilobytes
    with pytest.raises(MediaTooLarge) as caught:
        decode_image(bomb)
    assert_clear(caught.value)


def test_pixel_and_side_limits_are_per_call() -> None:
    data = zero_png(3000, 3000)
    assert decode_image(data).scale == 8  # fine under the default limits
    with pytest.raises(MediaTooLarge):
        decode_image(data, limits=MediaLimits(max_pixels=1_000_000))
    with pytest.raises(MediaTooLarge):
        decode_image(data, limits=MediaLimits(max_dimension=2999))
    limits = MediaLimits(max_pixels=9_000_000, max_dimension=3000)
    assert decode_image(data, limits=limits).width == 3000


@pytest.mark.parametrize(("width", "height"), [(65_500, 65_500), (40_000, 40_000), (60_000, 10)])
def test_jpeg_header_claiming_huge_sizes_is_refused(
    photo_bytes: PhotoBytes, width: int, height: int
) -> None:
    with pytest.raises(MediaTooLarge) as caught:
        decode_image(jpeg_claiming(photo_bytes, width, height))
    assert_clear(caught.value)


def test_input_over_max_bytes_is_refused_before_parsing(photo_bytes: PhotoBytes) -> None:
    data = photo_bytes("png", width=64, height=48)
    with pytest.raises(MediaTooLarge, match="bytes"):
        decode_image(data, limits=MediaLimits(max_bytes=len(data) - 1))
    assert decode_image(data, limits=MediaLimits(max_bytes=len(data))).width == 64


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        MediaLimits(max_pixels=0)
    assert MediaLimits() == DEFAULT_LIMITS


def _zip_holding_a_jpeg(photo_bytes: PhotoBytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.jpg", photo_bytes("jpeg", width=32, height=32))
    return buffer.getvalue()


MP4_START = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2\x00\x00\x00\x08free"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF document"),
        (MP4_START, "an MP4 video — video hashing is not supported yet"),
        (b"<!doctype html><html><body><img src=x></body></html>", "an HTML document"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1 1\n", "a PostScript document"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', "an SVG drawing"),
        (b"\xff\x0a\xfa\x7f\x00", "a JPEG XL image, which Lightkeeper does not decode"),
    ],
)
def test_non_images_are_named_in_the_error(data: bytes, says: str) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        decode_image(data)
    assert says in str(caught.value)
    assert_clear(caught.value)


def test_an_image_inside_a_zip_is_not_decoded(photo_bytes: PhotoBytes) -> None:
    with pytest.raises(UnsupportedFormat, match="a ZIP archive"):
        decode_image(_zip_holding_a_jpeg(photo_bytes))


def test_random_bytes_are_unrecognised_and_show_their_first_bytes() -> None:
    data = b"\x13\x37" + np.random.default_rng(0).bytes(998)
    with pytest.raises(UnsupportedFormat) as caught:
        decode_image(data)
    assert "unrecognised data (first bytes 13 37" in str(caught.value)


def test_missing_avif_support_is_a_clear_unsupported_format(
    photo_bytes: PhotoBytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs("avif")
    data = photo_bytes("avif", width=32, height=32)
    monkeypatch.setattr(features, "check", lambda feature: False)
    with pytest.raises(UnsupportedFormat, match="AVIF support is not installed"):
        decode_image(data)


@given(data=st.binary(min_size=0, max_size=2048))
def test_arbitrary_bytes_give_an_image_or_a_media_error(data: bytes) -> None:
    try:
        image = decode_image(data)
    except MediaError as error:
        assert_clear(error)
    else:
        assert_well_formed(image)


def test_damaged_exif_does_not_stop_hashing(make_photo: MakePhoto) -> None:
    """A corrupt EXIF block reads as orientation 1; the pixels are still decoded (and hashed),
    so damaging the metadata is no way to dodge matching. (Pytest turns warnings into errors
    here, so this also shows no warning escapes.)"""
    photo = make_photo(400, 300, seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    photo.save(out, "JPEG", exif=exif)
    data = bytearray(out.getvalue())
    start = data.find(b"Exif\x00\x00")
    data[start + 10 : start + 30] = b"\xee" * 20  # the IFD's entry count and first entries
    image = decode_image(bytes(data))
    assert image.orientation == 1
    assert (image.width, image.height) == (400, 300)
