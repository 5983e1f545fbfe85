"""Turn untrusted bytes into the pixels a user would see, or a clear `MediaError`.

Every upload is hostile until decoded, so this module is the one place where bytes meet
image decoders, and it holds three promises:

* **One decoder per input.** The format is sniffed from magic bytes and Pillow is opened
  with that single plug-in, so no other plug-in (EPS via Ghostscript, exotic formats with
  a history of bugs) ever parses the data.
* **Limits before work.** Byte size is checked before anything is parsed; width, height and
  pixel count are checked from the header, before a single pixel is decoded. Pillow's own
  process-wide decompression-bomb check is switched off at import in favour of these
  per-call `MediaLimits` (its fixed threshold would warn, or refuse, at sizes the caller
  allowed, and its warning turns into an error under warnings-as-errors).
* **Only `MediaError` escapes.** Decoders raise a zoo of exception types on hostile input
  (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError, ZeroDivisionError,
  MemoryError …). Each is mapped to `TruncatedMedia` or `CorruptMedia` with a short
  message; a crash on some byte string would be a denial of service.

What comes out is "what users see": the first frame only, orientation applied, alpha
dropped (the reference PDQ hasher ignores it too, so a transparent PNG hashes like its
colour channels), palettes expanded, and 16-bit or float samples scaled to 8 bits.
Orientation is the EXIF tag for JPEG, PNG, WebP and AVIF (Pillow reports AVIF's rotation
boxes as that tag) and TIFF (whose loader applies it itself); for HEIF it is the
container's rotation and mirror boxes, which libheif applies, as the HEIF standard makes
the EXIF tag there informational. The reference PDQ hasher ignores orientation; matching
both is the matcher's job (dihedral variants), hashing what users see is this module's.

Large images take a fast path. PDQ only needs a luma plane of a few hundred pixels a side,
so `choose_scale` picks a reduction of 2, 4 or 8, and a JPEG is then decoded by libjpeg in
the DCT domain straight to luma at that scale (JPEG's Y is exactly PDQ's luma,
0.299 R + 0.587 G + 0.114 B), which skips most of the inverse DCT and all colour
conversion. Other formats are fully decoded and box-reduced, which gives the same plane.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from io import BytesIO
from typing import Literal

import numpy as np
import pillow_heif
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError, features

from lightkeeper.errors import (
    CorruptMedia,
    EmptyMedia,
    MediaError,
    MediaTooLarge,
    TruncatedMedia,
    UnsupportedFormat,
)
from lightkeeper.media.sniff import FORMATS, IMAGE_FORMATS, describe, ends_early, sniff

__all__ = [
    "DEFAULT_LIMITS",
    "MIN_REDUCED_SIDE",
    "SCALES",
    "DecodedImage",
    "MediaLimits",
    "choose_scale",
    "decode_image",
    "to_8bit",
]

MIN_REDUCED_SIDE = 192
"""Shortest side, in pixels, that a reduced luma plane keeps.

PDQ's blur window is a 128th of each side, so the fewer reduced pixels it spans, the more
bits a reduction moves. Measured on 57 corpus photos (PDQ quality >= 80, resized to short
sides of 256 to 768, box-reduced by 2 and 4, hashed on the reduced path) against their
exact full-resolution hash, by reduced short side: 128 moved a median of 2 to 4 bits and
at most 16; 160, median 2, at most 8; 192, median 2, at most 6; 224 to 384, median 0 to 1,
at most 8. 192 still keeps 12-megapixel photos at scale 8 and 1-megapixel ones at 4.
"""

SCALES = (1, 2, 4, 8)
"""The reductions libjpeg can apply while decoding, and so the ones `choose_scale` returns."""

_PILLOW_FORMAT = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WEBP",
    "bmp": "BMP",
    "tiff": "TIFF",
    "heif": "HEIF",
    "avif": "AVIF",
}

_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})

# How each EXIF orientation turns the stored pixels into the displayed ones (the TIFF/EXIF
# definitions, as Pillow's ImageOps.exif_transpose applies them): Pillow's transposition,
# which does the pixel work (several times faster than NumPy on a full-resolution RGB
# array), and the same move as (swap axes, then reverse rows, reverse columns), which says
# where each stored edge ends up.
_ORIENTATIONS: dict[int, tuple[Image.Transpose | None, tuple[bool, bool, bool]]] = {
    1: (None, (False, False, False)),
    2: (Image.Transpose.FLIP_LEFT_RIGHT, (False, False, True)),
    3: (Image.Transpose.ROTATE_180, (False, True, True)),
    4: (Image.Transpose.FLIP_TOP_BOTTOM, (False, True, False)),
    5: (Image.Transpose.TRANSPOSE, (True, False, False)),
    6: (Image.Transpose.ROTATE_270, (True, False, True)),  # turned clockwise to display
    7: (Image.Transpose.TRANSVERSE, (True, True, True)),
    8: (Image.Transpose.ROTATE_90, (True, True, False)),  # turned anticlockwise to display
}

_TRUNCATION_HINTS = (
    "truncated",
    "premature end",
    "unexpected end",
    "end of file",
    "end of stream",
    "not enough data",
)

# libheif's decoder plug-in, registered once for the process; Pillow's own plug-ins load lazily.
pillow_heif.register_heif_opener()
# See the module docstring: `MediaLimits`, checked in `_check_dimensions`, replaces it.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class MediaLimits:
    """What one decode may cost; anything larger is refused with `MediaTooLarge`."""

    max_bytes: int = 256 * 1024 * 1024
    """Refuse larger inputs before parsing anything."""
    max_pixels: int = 150_000_000
    """Width times height, checked from the header before decoding."""
    max_dimension: int = 50_000
    """Either side, checked from the header before decoding."""

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_dimension"):
            if getattr(self, name) <= 0:
                raise ValueError(f"MediaLimits.{name} must be positive")


DEFAULT_LIMITS = MediaLimits()


@dataclass(frozen=True, eq=False)  # eq would compare arrays, which has no single answer
class DecodedImage:
    """The first frame of an image, as displayed, at full or reduced resolution.

    Exactly one of `rgb` (scale 1) and `luma` (scale 2, 4 or 8) is set. Both are read-only,
    C-contiguous and in displayed orientation; `luma` has `ceil(height / scale)` rows and
    `ceil(width / scale)` columns, each value the mean luma of a `scale` x `scale` block.
    A partial edge block averages the pixels present, except from a JPEG reduced by libjpeg,
    where it averages the block as the encoder padded it (usually by repeating the edge).
    """

    format: str
    """The sniffed format name (see `lightkeeper.media.sniff.FORMATS`)."""
    width: int
    """Displayed full-resolution width, after EXIF orientation."""
    height: int
    """Displayed full-resolution height, after EXIF orientation."""
    orientation: int
    """The EXIF orientation tag found, 1 to 8 (1 when absent or invalid); already applied
    to the pixels, except in HEIF files, where the container's own rotation is."""
    frames: int
    """Frames or pages in the file; only the first is decoded."""
    scale: int
    """1, 2, 4 or 8: how many full-resolution pixels one plane pixel spans on each axis."""
    partial_first: tuple[bool, bool]
    """(rows, columns): True when that axis's partial edge block (a full dimension that is
    not a multiple of `scale`) comes first in displayed orientation rather than last."""
    rgb: NDArray[np.uint8] | None
    """(height, width, 3) RGB at full resolution; set iff scale == 1."""
    luma: NDArray[np.float32] | None
    """Reduced luma plane, 0 to 255; set iff scale > 1."""


def choose_scale(width: int, height: int) -> int:
    """The largest reduction in `SCALES` that keeps the shorter side >= `MIN_REDUCED_SIDE`.

    Images whose shorter side is under twice `MIN_REDUCED_SIDE` are not reduced.
    """
    side = min(width, height)
    for scale in reversed(SCALES):
        if side >= scale * MIN_REDUCED_SIDE:
            return scale
    return 1


def decode_image(
    data: bytes, *, limits: MediaLimits = DEFAULT_LIMITS, reduce: bool = True
) -> DecodedImage:
    """Decode the first frame of an image from untrusted bytes.

    With `reduce` (the default) large images come back as a reduced luma plane (see
    `choose_scale`); with `reduce=False` always as full-resolution RGB.

    Raises only `MediaError` subclasses: `EmptyMedia`, `UnsupportedFormat`,
    `MediaTooLarge`, `TruncatedMedia` or `CorruptMedia`.
    """
    fmt = _identify(data, limits)
    try:
        with warnings.catch_warnings():
            # Pillow warns (UserWarning) about damaged metadata it can read past, such as a
            # corrupt EXIF block. The image is still hashed — refusing it would let anyone
            # dodge matching by damaging the metadata — and the warning would only be noise
            # on stderr (or an exception where warnings are errors). Not thread-safe before
            # Python 3.14: a thread hashing meanwhile may see its own warnings hidden too.
            warnings.simplefilter("ignore", UserWarning)
            frame = _decode_first_frame(data, fmt, limits, reduce)
    except MediaError:
        raise
    except Exception as error:  # any decoder failure on hostile bytes; see the docstring
        raise _decoder_error(fmt, data, error) from error
    return _describe(frame)


def _identify(data: bytes, limits: MediaLimits) -> str:
    """The sniffed format, once the input is known to be a non-empty, decodable image."""
    if len(data) == 0:
        raise EmptyMedia("the media is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise MediaTooLarge(
            f"the media is {len(data):,} bytes, over the limit of {limits.max_bytes:,} bytes"
        )
    fmt = sniff(data)
    if fmt is None:
        raise UnsupportedFormat(
            f"not a supported image: unrecognised data (first bytes {data[:8].hex(' ')})"
        )
    if fmt not in IMAGE_FORMATS:
        kind = FORMATS[fmt].kind
        if kind == "video":
            reason = " — video hashing is not supported yet"
        elif kind == "image":
            reason = ", which Lightkeeper does not decode"
        else:
            reason = ""
        raise UnsupportedFormat(f"not a supported image: this is {describe(fmt)}{reason}")
    if fmt == "avif" and not features.check("avif"):
        raise UnsupportedFormat(
            "this is an AVIF image, but AVIF support is not installed (Pillow lacks libavif)"
        )
    return fmt


@dataclass(frozen=True, eq=False)
class _FirstFrame:
    """The decoded first frame, already oriented, with what is needed to describe it."""

    format: str
    stored_width: int
    """Full-resolution size before orientation."""
    stored_height: int
    scale: int
    plane: NDArray[np.uint8] | NDArray[np.float32]
    orientation: int
    """The EXIF orientation reported to the caller."""
    applied: int
    """The orientation this module applied (1 when the decoder did, as libheif does)."""
    frames: int


def _decode_first_frame(data: bytes, fmt: str, limits: MediaLimits, reduce: bool) -> _FirstFrame:
    """Every call into Pillow, so that `decode_image` can map whatever it raises."""
    with Image.open(BytesIO(data), formats=[_PILLOW_FORMAT[fmt]]) as im:
        width, height = im.size
        _check_dimensions(width, height, limits)
        scale = choose_scale(width, height) if reduce else 1
        drafted = _draft_jpeg_luma(im, width, height, scale) if fmt == "jpeg" else 1
        before_load = _exif_orientation(im) if fmt == "tiff" else 1
        im.load()
        if drafted == 1 and im.size != (width, height):
            # libheif may decode to another size than its header claimed.
            width, height = im.size
            _check_dimensions(width, height, limits)
            scale = choose_scale(width, height) if reduce else 1
        if drafted > 1:
            scale = drafted
            picture = to_8bit(im, "L")
        elif scale > 1:
            picture = to_8bit(im, "L").reduce(scale)
        else:
            picture = to_8bit(im, "RGB")
        orientation, applied = _orientation(im, fmt, before_load)
        transpose, _ = _ORIENTATIONS[applied]
        if transpose is not None:
            picture = picture.transpose(transpose)
        plane: NDArray[np.uint8] | NDArray[np.float32]
        if scale > 1:
            plane = np.asarray(picture, dtype=np.float32)
        else:
            plane = np.asarray(picture, dtype=np.uint8)
        frames = _count_frames(im)
    return _FirstFrame(fmt, width, height, scale, plane, orientation, applied, frames)


def _check_dimensions(width: int, height: int, limits: MediaLimits) -> None:
    if width <= 0 or height <= 0:
        raise CorruptMedia(f"the image header claims an empty size ({width} x {height})")
    if width > limits.max_dimension or height > limits.max_dimension:
        raise MediaTooLarge(
            f"the image is {width} x {height} pixels; "
            f"sides over {limits.max_dimension:,} pixels are refused"
        )
    if width * height > limits.max_pixels:
        raise MediaTooLarge(
            f"the image is {width} x {height} = {width * height:,} pixels, "
            f"over the limit of {limits.max_pixels:,}"
        )


def _draft_jpeg_luma(im: Image.Image, width: int, height: int, scale: int) -> int:
    """Ask libjpeg to decode straight to luma at 1/`scale`; return the scale it will use.

    Returns 1 when it cannot reduce; the caller then reduces a full decode instead.
    """
    if scale == 1 or im.draft("L", (width // scale, height // scale)) is None:
        return 1
    for candidate in SCALES:
        if im.size == (-(-width // candidate), -(-height // candidate)):
            return candidate
    raise CorruptMedia(f"the JPEG decoder reduced {width} x {height} to an unexpected size")


def to_8bit(im: Image.Image, mode: Literal["RGB", "L"]) -> Image.Image:
    """`im` as 8-bit RGB or luma, whatever its mode: the one place modes are normalised.

    Alpha is dropped, not composited: the reference hasher ignores it, and so do we.
    Palettes are expanded. 16-bit samples are scaled (not clipped, as Pillow's `convert`
    does, which turns a 16-bit PNG white). 32-bit integer samples within 0..65535 are
    read as 16-bit (that is how Pillow has represented 16-bit files); wider integer ranges,
    and float samples outside 0..1, are stretched from their minimum to their maximum.
    """
    # Transparency is alpha by another name; with it present, Pillow warns on palette images.
    im.info.pop("transparency", None)
    if im.mode in _HIGH_DEPTH_MODES:
        grey = Image.fromarray(_samples_to_8bit(np.asarray(im), im.mode))
        return grey if mode == "L" else grey.convert("RGB")
    if im.mode == mode:
        return im
    if im.mode in ("La", "RGBa", "LAB") and mode == "L":
        return im.convert("RGB").convert("L")
    return im.convert(mode)


def _samples_to_8bit(values: NDArray[np.generic], mode: str) -> NDArray[np.uint8]:
    # float32 holds every 16-bit sample exactly, at half the memory of float64.
    samples = values.astype(np.float32)
    if mode == "F":
        np.nan_to_num(samples, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(samples.min()), float(samples.max())) if samples.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535):
        samples *= 255 / 65535
    elif mode == "F" and low >= 0 and high <= 1:
        samples *= 255
    elif high > low:
        samples -= low
        samples *= 255 / (high - low)
    else:
        samples[...] = 0
    np.rint(samples, out=samples)
    return np.clip(samples, 0, 255, out=samples).astype(np.uint8)


def _exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag of `im`, or 1 when absent, invalid or unreadable.

    A damaged EXIF block must not stop the image from being hashed, so any failure to read
    it counts as orientation 1.
    """
    try:
        return _valid_orientation(im.getexif().get(0x0112))
    except Exception:  # a hostile EXIF block is no reason to refuse the image
        return 1


def _orientation(im: Image.Image, fmt: str, before_load: int) -> tuple[int, int]:
    """(EXIF orientation found, orientation still to apply to the decoded pixels).

    Called after loading; `before_load` is the tag as read before, for the formats whose
    loader consumes it.
    """
    if fmt == "heif":
        # HEIF's own rotation and mirror boxes decide what users see (the standard makes the
        # EXIF tag informational); libheif applied them, and pillow_heif set the tag aside.
        return _valid_orientation(im.info.get("original_orientation")), 1
    if fmt == "tiff":
        # Pillow's TIFF loader applies the orientation tag itself, then deletes it.
        return before_load, 1
    orientation = _exif_orientation(im)
    return orientation, orientation


def _valid_orientation(value: object) -> int:
    """`value` if it is an EXIF orientation (an int from 1 to 8), else 1."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return value
    return 1


def _count_frames(im: Image.Image) -> int:
    """Frames or pages in the file; 1 when a damaged later frame stops the count.

    Counting must not stop the first frame, already decoded, from being hashed: appending
    a broken frame would otherwise be a way to dodge matching.
    """
    try:
        frames = getattr(im, "n_frames", 1)
    except Exception:  # a later frame is damaged; the first one is what we hash
        return 1
    return frames if isinstance(frames, int) and frames >= 1 else 1


def _describe(frame: _FirstFrame) -> DecodedImage:
    """The public description of an oriented first frame, in displayed terms."""
    _, (swap, reverse_rows, reverse_cols) = _ORIENTATIONS[frame.applied]
    scale = frame.scale
    width, height = frame.stored_width, frame.stored_height
    # Partial edge blocks are last on both stored axes; orientation may move them first.
    rows_partial, cols_partial = height % scale != 0, width % scale != 0
    if swap:
        rows_partial, cols_partial = cols_partial, rows_partial
        width, height = height, width
    plane = np.ascontiguousarray(frame.plane)
    plane.flags.writeable = False
    return DecodedImage(
        format=frame.format,
        width=width,
        height=height,
        orientation=frame.orientation,
        frames=frame.frames,
        scale=scale,
        partial_first=(rows_partial and reverse_rows, cols_partial and reverse_cols),
        rgb=plane.astype(np.uint8, copy=False) if scale == 1 else None,
        luma=plane.astype(np.float32, copy=False) if scale > 1 else None,
    )


def _decoder_error(fmt: str, data: bytes, error: Exception) -> MediaError:
    """The `MediaError` that says, in a short message, why the decoder gave up."""
    the_image = "the " + describe(fmt).split(" ", 1)[1]
    if isinstance(error, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return MediaTooLarge(f"{the_image} is too large to decode: {error}")
    reason = _short_reason(error)
    if any(hint in reason.lower() for hint in _TRUNCATION_HINTS) or ends_early(fmt, data):
        return TruncatedMedia(f"{the_image} is truncated: the data ends before the image does")
    return CorruptMedia(f"{the_image} is corrupt and cannot be decoded ({reason})")


def _short_reason(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "its header is not valid"
    if isinstance(error, MemoryError):
        return "it needs more memory than is available"
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", str(error)).strip() or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."
