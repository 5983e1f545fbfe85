"""PDQ, Meta's 256-bit perceptual photo hash: the signal type, and two ways to compute it.

- The exact path (`hash_pixels`, `hash_pixels_dihedral`) runs the compiled port of Meta's
  reference (`_pdq.c`) on full-resolution RGB and gives, bit for bit, what the reference
  gives on the same pixels. This is what conformance is judged on.
- The fast path (`hash_reduced_luma`) starts from a luma plane decoded at 1/2, 1/4 or 1/8
  resolution (libjpeg's DCT-domain scaling, Pillow's ``Image.draft`` or ``Image.reduce``),
  which skips most of the decoding work on a large photo. Running the reference's blur on
  the small plane would be off by up to ~12 bits at 1/8; instead the reference's whole
  blur-and-sample step, a linear map of the full-resolution luma, is folded onto the
  reduced pixels (each the mean of a block), so the result stays within a few bits of the
  exact hash.

Values travel as the reference's 64 lowercase hex digits. Bit k of the reference's
Hash256 (k = 16 * row + column of the 16 x 16 DCT block) is bit ``k % 4`` of hex digit
``63 - k // 4``; as bytes (`hex_to_code`) it is bit ``k % 8`` of byte ``31 - k // 8``.
"""

from __future__ import annotations

import functools
import re
import string
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from lightkeeper.errors import InvalidSignal
from lightkeeper.signals import _pdq
from lightkeeper.signals.base import (
    DIHEDRAL_NAMES,
    STORED_VARIANT_BY_ORIENTATION,
    ImageSignal,
    ImageSignalType,
)

if TYPE_CHECKING:
    from lightkeeper.media.decode import DecodedImage

__all__ = [
    "DIHEDRAL_NAMES",
    "PdqSignal",
    "code_to_hex",
    "hamming_distance",
    "hash_pixels",
    "hash_pixels_dihedral",
    "hash_reduced_luma",
    "hex_to_code",
]

HEX_DIGITS: Final = 64
CODE_BYTES: Final = 32
#: Below this many pixels on a side the reference gives the all-zero hash, quality 0.
MIN_SIDE: Final = 5
_ZERO_HEX: Final = "0" * HEX_DIGITS
_HEX_CHARS: Final = frozenset(string.hexdigits)


def _split_codes(codes: bytes) -> tuple[str, ...]:
    return tuple(codes[i : i + CODE_BYTES].hex() for i in range(0, len(codes), CODE_BYTES))


def _checked_rgb(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"expected a NumPy array of RGB pixels, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB pixels, got dtype {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an array of shape (height, width, 3), got {rgb.shape}")
    return np.ascontiguousarray(rgb)


def hash_pixels(rgb: NDArray[np.uint8]) -> tuple[str, int]:
    """PDQ hash (64 hex digits) and quality (0..100) of an (height, width, 3) uint8 RGB array.

    Bit-identical to Meta's reference (as the ``pdqhash`` binding runs it) on the same
    pixels. Images under 5 pixels on a side get the all-zero hash and quality 0, as there.
    """
    pixels = _checked_rgb(rgb)
    code, quality = _pdq.hash_rgb(pixels, pixels.shape[0], pixels.shape[1])
    return code.hex(), quality


def hash_pixels_dihedral(rgb: NDArray[np.uint8]) -> tuple[tuple[str, ...], int]:
    """The hashes of the image's eight rotations and flips, in `DIHEDRAL_NAMES` order.

    All eight come from one DCT, as in the reference. One quirk is kept from it for
    bit-exactness: on an input of exactly 64 x 64 pixels the reference's dihedral entry
    point runs a blur (of width 1, not exactly the identity in float arithmetic) that its
    single-hash one skips, so the "original" here can differ from `hash_pixels` in a few
    bits on such images.
    """
    pixels = _checked_rgb(rgb)
    codes, quality = _pdq.hash_rgb(pixels, pixels.shape[0], pixels.shape[1], dihedral=True)
    return _split_codes(codes), quality


def _spread_sparse(
    weight: NDArray[np.float64],
    start: NDArray[np.intp],
    stop: NDArray[np.intp],
    n: int,
    scale: int,
    reduced: int,
    offset: int,
) -> NDArray[np.float64]:
    """Block weights W[r, k] = sum over p of weight[r, p] * |[start, stop) of p ∩ block k|,
    enumerating only the few blocks each window meets: best when windows span few blocks.
    Block k covers inputs [k * scale - offset, (k + 1) * scale - offset)."""
    span = (stop - start).max(initial=0)
    block = ((start + offset) // scale)[..., None] + np.arange(span // scale + 2)
    lo = np.maximum(start[..., None], block * scale - offset)
    hi = np.minimum(stop[..., None], (block + 1) * scale - offset)
    overlap = np.maximum(hi - lo, 0)
    keep = (overlap > 0) & (block < reduced)
    rows = weight.shape[0]
    index = (np.arange(rows)[:, None, None] * reduced + block)[keep]
    contribution = (weight[..., None] * overlap)[keep]
    total = np.bincount(index, weights=contribution, minlength=rows * reduced)
    block_weights: NDArray[np.float64] = total.reshape(rows, reduced).astype(np.float64)
    return block_weights


def _spread_dense(
    weight: NDArray[np.float64],
    start: NDArray[np.intp],
    stop: NDArray[np.intp],
    n: int,
    scale: int,
    reduced: int,
    offset: int,
) -> NDArray[np.float64]:
    """The same block weights through the full-resolution row (difference array, then
    prefix sums read at block edges): best when windows span many blocks (scale 1, 2)."""
    rows = weight.shape[0]
    base = np.arange(rows)[:, None] * (n + 1)
    edges = np.concatenate([(base + start).ravel(), (base + stop).ravel()])
    steps = np.concatenate([weight.ravel(), -weight.ravel()])
    steps_at = np.bincount(edges, weights=steps, minlength=rows * (n + 1))
    per_input = np.cumsum(steps_at.reshape(rows, n + 1), axis=1)
    cumulative = np.zeros((rows, n + 1))
    np.cumsum(per_input[:, :n], axis=1, out=cumulative[:, 1:])
    bounds = np.clip(np.arange(reduced + 1) * scale - offset, 0, n)
    block_weights: NDArray[np.float64] = cumulative[:, bounds[1:]] - cumulative[:, bounds[:-1]]
    return block_weights


@functools.lru_cache(maxsize=32)
def _axis_weights(n: int, scale: int, reduced: int, partial_first: bool) -> NDArray[np.float32]:
    """The 64 x `reduced` weights that take one axis of a reduced plane to the 64 samples
    the reference computes from the full-resolution axis of length n.

    Along an axis the reference blurs twice with a box filter (output o of a pass averages
    its input over [max(0, o - before), min(n - 1, o + after)]) and keeps outputs
    ``samples``. So output r is the mean over the second window of first-pass outputs p,
    each the mean over its own window of inputs q: input q weighs the sum over p of
    1 / (count(sample r) * count(p)) for the windows of p that hold q. A reduced pixel
    stands for the mean of its block of `scale` inputs, so its weight is the sum of its
    inputs' weights. The last block is the partial one unless `partial_first`.

    Built in float64 (about a millisecond for a new photo size at scale 8), returned
    read-only in float32, and cached, as photo sizes recur.
    """
    window = (n + 127) // 128
    half = (window + 2) // 2
    before, after = window - half, half - 1
    positions = np.arange(n)
    lo = np.maximum(positions - before, 0)
    hi = np.minimum(positions + after, n - 1)
    count = (hi - lo + 1).astype(np.float64)
    samples = ((np.arange(64) + 0.5) * n / 64).astype(np.intp)
    # (output r, first-pass output p): p runs over the second-pass window of samples[r].
    p = lo[samples, None] + np.arange(window)
    in_window = p <= hi[samples, None]
    p = np.minimum(p, n - 1)
    weight = np.where(in_window, 1.0 / (count[samples, None] * count[p]), 0.0)
    offset = reduced * scale - n if partial_first else 0
    spread = _spread_sparse if window // scale < 16 else _spread_dense
    weights = spread(weight, lo[p], hi[p] + 1, n, scale, reduced, offset).astype(np.float32)
    weights.setflags(write=False)
    return weights


def hash_reduced_luma(
    luma: NDArray[np.float32],
    full_height: int,
    full_width: int,
    scale: int,
    partial_first: tuple[bool, bool] = (False, False),
    dihedral: bool = False,
) -> tuple[tuple[str, ...], int]:
    """PDQ of an image from its luma plane reduced `scale` times on each axis: the fast path.

    `luma` has ``ceil(full_height / scale)`` rows and ``ceil(full_width / scale)`` columns,
    each value the mean luma (0..255) of a `scale` x `scale` block of the full-resolution
    image. `partial_first` says, for (rows, columns), whether that axis's partial edge block
    comes first rather than last (e.g. after an EXIF rotation). Returns one hash, or the
    eight of `DIHEDRAL_NAMES` with `dihedral`, and the quality.

    Within a few bits of the exact hash of the full-resolution pixels when the reference's
    blur window (side / 128) spans at least two blocks, i.e. the shorter side is at least
    256 x `scale`; on smaller images detail the blocks average away moves bits (tens of
    bits on some 256-pixel photos at scale 2). At scale 1 it differs from the exact path
    only by float rounding.
    """
    if not isinstance(luma, np.ndarray) or luma.ndim != 2:
        raise ValueError("luma must be a 2-D NumPy array")
    if luma.dtype.kind != "f":
        raise ValueError(f"luma must hold floating-point values, got dtype {luma.dtype}")
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    if full_height < 0 or full_width < 0:
        raise ValueError(f"full size must be non-negative, got {full_height} x {full_width}")
    rows, cols = -(-full_height // scale), -(-full_width // scale)
    if luma.shape != (rows, cols):
        raise ValueError(
            f"a {full_height} x {full_width} image reduced by {scale} has a {rows} x {cols} "
            f"luma plane, got {luma.shape[0]} x {luma.shape[1]}"
        )
    if full_height < MIN_SIDE or full_width < MIN_SIDE:
        return (_ZERO_HEX,) * (len(DIHEDRAL_NAMES) if dihedral else 1), 0
    row_weights = _axis_weights(full_height, scale, rows, partial_first[0])
    col_weights = _axis_weights(full_width, scale, cols, partial_first[1])
    plane = np.asarray(luma, dtype=np.float32)
    # Either order gives the same 64 x 64; this one makes the second product the smaller.
    if rows >= cols:
        buffer64 = (row_weights @ plane) @ col_weights.T
    else:
        buffer64 = row_weights @ (plane @ col_weights.T)
    codes, quality = _pdq.hash_buffer64(
        np.ascontiguousarray(buffer64, dtype=np.float32), dihedral=dihedral
    )
    return _split_codes(codes), quality


def _normalized_hex(value: object) -> str:
    # Fast path for the common, well-formed value: list imports validate millions of these.
    if isinstance(value, str) and _HEX64.fullmatch(value):
        return value.lower()
    if not isinstance(value, str):
        raise InvalidSignal(f"a PDQ hash is a string of 64 hex digits, got {type(value).__name__}")
    text = value.strip()
    if len(text) != HEX_DIGITS:
        raise InvalidSignal(f"a PDQ hash has 64 hex digits, got {len(text)} characters")
    for position, char in enumerate(text, start=1):
        if char not in _HEX_CHARS:
            raise InvalidSignal(
                f"a PDQ hash has only hex digits, got {char!r} at position {position}"
            )
    return text.lower()


_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}")


def hex_to_code(value: str) -> bytes:
    """The 32 bytes of a PDQ hash given as hex (``bytes.fromhex`` of its canonical form)."""
    return bytes.fromhex(_normalized_hex(value))


def code_to_hex(code: bytes) -> str:
    """The canonical 64 lowercase hex digits of a 32-byte PDQ code."""
    if len(code) != CODE_BYTES:
        raise InvalidSignal(f"a PDQ code has 32 bytes, got {len(code)}")
    return bytes(code).hex()


def hamming_distance(a: str, b: str) -> int:
    """Number of differing bits between two PDQ hashes given as hex."""
    return (int(_normalized_hex(a), 16) ^ int(_normalized_hex(b), 16)).bit_count()


class PdqSignal(ImageSignalType):
    """Meta's PDQ: robust to resizing and recompression, compared by Hamming distance."""

    name = "pdq"
    description = "PDQ perceptual photo hash (Meta), 256 bits, Hamming distance"
    comparison = "hamming"
    bits = 256
    default_threshold = 31
    default_quality_floor = 50

    def normalize(self, value: str) -> str:
        """64 lowercase hex digits; surrounding whitespace and upper case are accepted."""
        return _normalized_hex(value)

    def from_image(self, image: DecodedImage, *, dihedral: bool = False) -> ImageSignal:
        """Exact PDQ when the decoder kept full-resolution RGB, else the reduced-luma path.

        With `dihedral`, the variants come in `DIHEDRAL_NAMES` order; `value` is always
        the plain hash (see `hash_pixels_dihedral` for the one case where they differ).
        When the file has an EXIF orientation, `as_stored` is the hash of the pixels as
        stored (the variant that undoes the orientation), which is what hashers that ignore
        EXIF put in hash lists; it costs nothing extra, the variants come from the same DCT.
        """
        rotated = image.orientation != 1
        want_variants = dihedral or rotated
        variants: tuple[str, ...] | None = None
        if image.rgb is not None:
            if not want_variants:
                value, quality = hash_pixels(image.rgb)
            else:
                variants, quality = hash_pixels_dihedral(image.rgb)
                value = variants[0]
                if image.rgb.shape[:2] == (64, 64):  # see hash_pixels_dihedral
                    value = hash_pixels(image.rgb)[0]
        elif image.luma is not None:
            hashes, quality = hash_reduced_luma(
                image.luma,
                image.height,
                image.width,
                image.scale,
                image.partial_first,
                dihedral=want_variants,
            )
            value = hashes[0]
            variants = hashes if want_variants else None
        else:
            raise ValueError("the decoded image carries neither RGB pixels nor a luma plane")
        as_stored = None
        if rotated and variants is not None:
            stored = STORED_VARIANT_BY_ORIENTATION.get(image.orientation, "original")
            as_stored = variants[DIHEDRAL_NAMES.index(stored)]
        return ImageSignal(
            value=value,
            quality=quality,
            dihedral=variants if dihedral else None,
            as_stored=as_stored,
        )
