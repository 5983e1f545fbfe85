"""PDQ: the compiled port agrees bit for bit with Meta's reference (the `pdqhash` binding)
on identical pixels, the fast reduced-resolution path stays within a few bits of it, and
hash values are parsed strictly.

Synthetic images are generated here; photos are the public PDQ test photos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image

from lightkeeper.errors import InvalidSignal
from lightkeeper.media.decode import DecodedImage
from lightkeeper.signals import _pdq, pdq
from lightkeeper.signals.base import ImageSignal
from lightkeeper.signals.pdq import (
    DIHEDRAL_NAMES,
    PdqSignal,
    code_to_hex,
    hamming_distance,
    hash_pixels,
    hash_pixels_dihedral,
    hash_reduced_luma,
    hex_to_code,
)

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "pdq-vectors"
BRIDGE = VECTORS / "dih" / "bridge-1-original.jpg"
ZERO = "0" * 64


def bits_to_hex(bits: Any) -> str:
    """The `pdqhash` binding's bit array (element 0 most significant) as reference hex."""
    return f"{int(''.join('1' if b else '0' for b in bits), 2):064x}"


def oracle(rgb: NDArray[np.uint8]) -> tuple[str, int]:
    bits, quality = pdqhash.compute(rgb)
    return bits_to_hex(bits), int(quality)


def oracle_dihedral(rgb: NDArray[np.uint8]) -> tuple[tuple[str, ...], int]:
    variants, quality = pdqhash.compute_dihedral(rgb)
    return tuple(bits_to_hex(bits) for bits in variants), int(quality)


def binding_luma(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Luma exactly as the binding computes it (NumPy double, rounded to float32)."""
    luma = rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114
    plane: NDArray[np.float32] = luma.astype(np.float32)
    return plane


def photo(path: Path = BRIDGE) -> NDArray[np.uint8]:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def synthetic(kind: str, height: int, width: int, seed: int) -> NDArray[np.uint8]:
    """Benign test images that stress different parts of the algorithm."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "flat":  # large flat areas: many equal DCT inputs, low quality
        image = np.full((height, width, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        image[height // 3 :, width // 2 :] = rng.integers(0, 256, 3)
        return image
    if kind == "gradient":
        y = np.linspace(0, 1, height)[:, None, None]
        x = np.linspace(0, 1, width)[None, :, None]
        angle = rng.random(3)
        values = 255 * (angle * y + (1 - angle) * x) + rng.normal(0, 2, (height, width, 3))
        return np.clip(values, 0, 255).astype(np.uint8)
    # near-black speckle: luma sums where float rounding is most fragile
    image = rng.integers(0, 3, (height, width, 3), dtype=np.uint8)
    mask = rng.random((height, width)) < 0.3
    image[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)
    return image


sides = st.one_of(st.integers(1, 12), st.integers(13, 300), st.sampled_from([63, 64, 65, 128]))
kinds = st.sampled_from(["noise", "flat", "gradient", "speckle"])
seeds = st.integers(0, 2**32 - 1)


# --- exact path: bit for bit with the reference ---------------------------------------


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=kinds, height=sides, width=sides, seed=seeds)
def test_identical_pixels_give_the_reference_hash(
    kind: str, height: int, width: int, seed: int
) -> None:
    rgb = synthetic(kind, height, width, seed)
    assert hash_pixels(rgb) == oracle(rgb)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=kinds, height=sides, width=sides, seed=seeds)
def test_dihedral_variants_are_the_reference_variants(
    kind: str, height: int, width: int, seed: int
) -> None:
    rgb = synthetic(kind, height, width, seed)
    assert hash_pixels_dihedral(rgb) == oracle_dihedral(rgb)


@pytest.mark.parametrize(
    ("height", "width"), [(5, 5), (5, 300), (64, 64), (64, 65), (127, 129), (300, 7)]
)
def test_edge_sizes_match_the_reference(height: int, width: int) -> None:
    rgb = synthetic("noise", height, width, seed=height * 1000 + width)
    assert hash_pixels(rgb) == oracle(rgb)
    assert hash_pixels_dihedral(rgb) == oracle_dihedral(rgb)


@pytest.mark.parametrize(("height", "width"), [(1, 200), (200, 1), (4, 4), (4, 100), (0, 0)])
def test_too_small_images_hash_to_zero_with_quality_zero(height: int, width: int) -> None:
    rgb = synthetic("noise", max(height, 1), max(width, 1), seed=1)[:height, :width]
    assert hash_pixels(rgb) == (ZERO, 0)
    assert hash_pixels_dihedral(rgb) == ((ZERO,) * 8, 0)
    if height and width:
        assert oracle(rgb) == (ZERO, 0)


def quirky_64x64() -> NDArray[np.uint8]:
    """A 64 x 64 image (found by search) whose hash changes with the reference's entry
    point: the single-hash one skips its blur for 64 x 64 input, the dihedral one does not.
    """
    rng = np.random.default_rng(5993)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = rng.random((64, 64)) < 0.5
    rgb[mask] = rng.integers(0, 3, (int(mask.sum()), 3), dtype=np.uint8)
    return rgb


def test_a_64x64_image_follows_each_reference_entry_point() -> None:
    rgb = quirky_64x64()
    single, variants = hash_pixels(rgb), hash_pixels_dihedral(rgb)
    assert single[0] != variants[0][0]
    assert single == oracle(rgb)
    assert variants == oracle_dihedral(rgb)


def test_a_photo_matches_the_reference_bit_for_bit() -> None:
    rgb = photo()
    assert hash_pixels(rgb) == oracle(rgb)
    assert hash_pixels_dihedral(rgb) == oracle_dihedral(rgb)


def test_non_contiguous_arrays_are_hashed_as_their_pixels() -> None:
    rgb = synthetic("gradient", 90, 120, seed=3)
    view = rgb[::-1, ::2]
    assert not view.flags.c_contiguous
    assert hash_pixels(view) == oracle(np.ascontiguousarray(view))


def test_the_dihedral_order_is_rotations_then_flips() -> None:
    # rotate90 is counter-clockwise (np.rot90), flipx mirrors top to bottom, flip_plus1
    # transposes. Turning the pixels is not exactly turning the DCT, so allow a few bits.
    rgb = photo()
    variants, _ = hash_pixels_dihedral(rgb)
    turned = {
        "original": rgb,
        "rotate90": np.rot90(rgb, 1),
        "rotate180": np.rot90(rgb, 2),
        "rotate270": np.rot90(rgb, 3),
        "flipx": rgb[::-1],
        "flipy": rgb[:, ::-1],
        "flip_plus1": rgb.transpose(1, 0, 2),
        "flip_minus1": np.rot90(rgb, 2).transpose(1, 0, 2),
    }
    assert tuple(turned) == DIHEDRAL_NAMES
    hashes = [hash_pixels(image)[0] for image in turned.values()]
    for index, variant in enumerate(variants):
        distances = [hamming_distance(value, variant) for value in hashes]
        assert distances.index(min(distances)) == index
        assert min(distances) <= 10


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((10, 10), dtype=np.uint8), r"shape \(height, width, 3\), got \(10, 10\)"),
        (np.zeros((10, 10, 4), dtype=np.uint8), r"got \(10, 10, 4\)"),
        (np.zeros((10, 10, 3), dtype=np.float32), "uint8 RGB pixels, got dtype float32"),
        (np.zeros((10, 10, 3), dtype=np.int16), "got dtype int16"),
        ([[[0, 0, 0]]], "NumPy array of RGB pixels, got list"),
    ],
)
def test_hash_pixels_rejects_what_is_not_rgb_bytes(bad: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hash_pixels(bad)
    with pytest.raises(ValueError, match=message):
        hash_pixels_dihedral(bad)


# --- the compiled core's own entry points ----------------------------------------------


@settings(max_examples=30, deadline=None)
@given(kind=kinds, height=sides, width=sides, seed=seeds, dihedral=st.booleans())
def test_hash_luma_of_binding_luma_is_hash_rgb(
    kind: str, height: int, width: int, seed: int, dihedral: bool
) -> None:
    rgb = synthetic(kind, height, width, seed)
    luma = binding_luma(rgb)
    before = luma.copy()
    assert _pdq.hash_luma(luma, height, width, dihedral) == _pdq.hash_rgb(
        rgb, height, width, dihedral
    )
    assert np.array_equal(luma, before)  # the caller's plane is left alone


def test_hash_buffer64_is_the_last_step_of_a_64x64_plane() -> None:
    luma = binding_luma(synthetic("gradient", 64, 64, seed=9))
    assert _pdq.hash_buffer64(luma) == _pdq.hash_luma(luma, 64, 64)
    assert len(_pdq.hash_buffer64(luma, dihedral=True)[0]) == 8 * 32


def test_hash_bytes_put_bit_k_where_bytes_fromhex_of_the_reference_hex_puts_it() -> None:
    rgb = photo()
    bits, _ = pdqhash.compute(rgb)
    code, _ = _pdq.hash_rgb(rgb, rgb.shape[0], rgb.shape[1])
    for k in range(256):  # the binding lists bit 255 first
        assert (code[31 - k // 8] >> (k % 8)) & 1 == bits[255 - k]


#: The core without its stub, to make calls the stub rightly forbids.
untyped_core: Any = _pdq


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: untyped_core.hash_rgb(bytes(74), 5, 5),
            ValueError,
            "holds 74 values; 5 x 5 x 3 needs 75",
        ),
        (lambda: untyped_core.hash_rgb(bytes(76), 5, 5), ValueError, "needs 75"),
        (lambda: untyped_core.hash_rgb(bytes(75), -5, -5), ValueError, "non-negative"),
        (lambda: untyped_core.hash_rgb(bytes(75), 2**40, 2**40), ValueError, "too large"),
        (lambda: untyped_core.hash_rgb(np.zeros(75, np.float32), 5, 5), TypeError, "uint8"),
        (lambda: untyped_core.hash_rgb("x" * 75, 5, 5), TypeError, "buffer"),
        (
            lambda: untyped_core.hash_rgb(np.zeros((9, 9, 3), np.uint8)[::2, ::2], 5, 5),
            TypeError,
            "C-c",
        ),
        (lambda: untyped_core.hash_rgb(bytes(75), 5), TypeError, "cols"),
        (lambda: untyped_core.hash_luma(bytes(100), 5, 5), TypeError, "float32"),
        (lambda: untyped_core.hash_luma(np.zeros(24, np.float32), 5, 5), ValueError, "needs 25"),
        (lambda: untyped_core.hash_luma(np.zeros(25, np.float64), 5, 5), TypeError, "float32"),
        (lambda: untyped_core.hash_buffer64(np.zeros(4095, np.float32)), ValueError, "needs 4096"),
        (lambda: untyped_core.hash_buffer64(None), TypeError, "buffer"),
    ],
)
def test_the_core_rejects_bad_input(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_core_rejects_non_finite_luma(bad: float) -> None:
    plane = np.full((80, 70), 100.0, dtype=np.float32)
    plane[50, 3] = bad
    with pytest.raises(ValueError, match="finite"):
        _pdq.hash_luma(plane, 80, 70)
    with pytest.raises(ValueError, match="finite"):
        _pdq.hash_buffer64(plane[:64, :64].copy())


# --- fast path: reduced-resolution luma -------------------------------------------------


def reduce_luma(rgb: NDArray[np.uint8], scale: int) -> NDArray[np.float32]:
    """Block means of the luma, partial blocks at the end (Pillow's ``Image.reduce``)."""
    luma = binding_luma(rgb)
    if scale == 1:
        return luma
    return np.asarray(Image.fromarray(luma, mode="F").reduce(scale), dtype=np.float32)


def reference_axis_operator(n: int) -> NDArray[np.float64]:
    """The reference's two box passes along an axis of length n, as a dense n x n matrix,
    restricted to the 64 sampled outputs: built the slow, obvious way."""
    window = (n + 127) // 128
    half = (window + 2) // 2
    box = np.zeros((n, n))
    for out in range(n):
        lo, hi = max(0, out - (window - half)), min(n - 1, out + half - 1)
        box[out, lo : hi + 1] = 1 / (hi - lo + 1)
    samples = ((np.arange(64) + 0.5) * n / 64).astype(int)
    operator: NDArray[np.float64] = (box @ box)[samples]
    return operator


@settings(max_examples=60, deadline=None)
@given(n=st.integers(5, 700), scale=st.sampled_from([1, 2, 3, 4, 8]), partial_first=st.booleans())
def test_axis_weights_fold_the_reference_operator_onto_blocks(
    n: int, scale: int, partial_first: bool
) -> None:
    reduced = -(-n // scale)
    offset = reduced * scale - n if partial_first else 0
    padded = np.zeros((64, reduced * scale))
    padded[:, offset : offset + n] = reference_axis_operator(n)
    expected = padded.reshape(64, reduced, scale).sum(axis=2)
    weights = pdq._axis_weights(n, scale, reduced, partial_first)
    assert weights.shape == (64, reduced) and weights.dtype == np.float32
    np.testing.assert_allclose(weights, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-5)  # each sample is a mean


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(5, 3000),
    scale=st.sampled_from([1, 2, 3, 4, 8]),
    seed=seeds,
    data=st.data(),
)
def test_both_ways_of_spreading_weights_over_blocks_agree(
    n: int, scale: int, seed: int, data: st.DataObject
) -> None:
    reduced = -(-n // scale)
    offset = data.draw(st.integers(0, reduced * scale - n))
    rng = np.random.default_rng(seed)
    window = (n + 127) // 128
    start = rng.integers(0, n, (64, window))
    stop = np.minimum(start + rng.integers(1, window + 1, (64, window)), n)
    weight = rng.random((64, window))
    sparse = pdq._spread_sparse(weight, start, stop, n, scale, reduced, offset)
    dense = pdq._spread_dense(weight, start, stop, n, scale, reduced, offset)
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=1e-9)


@pytest.mark.parametrize("path", [BRIDGE, VECTORS / "pen-and-coaster.png"])
def test_reduced_luma_at_scale_1_is_the_exact_hash_up_to_rounding(path: Path) -> None:
    rgb = photo(path)
    (value,), quality = hash_reduced_luma(binding_luma(rgb), rgb.shape[0], rgb.shape[1], 1)
    exact, exact_quality = hash_pixels(rgb)
    assert hamming_distance(value, exact) <= 2
    assert abs(quality - exact_quality) <= 1


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_reduced_luma_stays_within_a_few_bits_of_the_exact_hash(scale: int) -> None:
    rgb = photo()
    plane = reduce_luma(rgb, scale)
    (value,), quality = hash_reduced_luma(plane, rgb.shape[0], rgb.shape[1], scale)
    exact, exact_quality = hash_pixels(rgb)
    assert hamming_distance(value, exact) <= 8
    assert quality == exact_quality == 100


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_partial_first_places_the_partial_block_at_the_start(scale: int) -> None:
    # 1001 x 1593 leaves a 1-pixel partial block on both axes; turned 180 degrees, the
    # reduced plane's partial blocks come first. Saying so must matter and must fix it.
    rgb = photo()[:1001, :1593]
    turned = np.ascontiguousarray(rgb[::-1, ::-1])
    plane = np.ascontiguousarray(reduce_luma(rgb, scale)[::-1, ::-1])
    exact, _ = hash_pixels(turned)
    (right,), _ = hash_reduced_luma(plane, 1001, 1593, scale, partial_first=(True, True))
    (wrong,), _ = hash_reduced_luma(plane, 1001, 1593, scale, partial_first=(False, False))
    assert hamming_distance(right, exact) <= 4
    assert hamming_distance(right, exact) < hamming_distance(wrong, exact)


def test_reduced_luma_dihedral_variants_follow_the_exact_ones() -> None:
    rgb = photo()
    variants, _ = hash_reduced_luma(
        reduce_luma(rgb, 4), rgb.shape[0], rgb.shape[1], 4, dihedral=True
    )
    exact, _ = hash_pixels_dihedral(rgb)
    assert len(variants) == len(DIHEDRAL_NAMES)
    assert all(hamming_distance(a, b) <= 8 for a, b in zip(variants, exact, strict=True))


def test_reduced_luma_of_a_tiny_image_is_zero() -> None:
    assert hash_reduced_luma(np.ones((1, 40), np.float32), 4, 320, 8) == ((ZERO,), 0)
    assert hash_reduced_luma(np.ones((1, 1), np.float32), 4, 4, 8, dihedral=True) == (
        (ZERO,) * 8,
        0,
    )


@pytest.mark.parametrize(
    ("plane", "height", "width", "scale", "message"),
    [
        (np.ones((10, 10), np.float32), 80, 81, 8, r"10 x 11 luma plane, got 10 x 10"),
        (np.ones((10, 10), np.float32), 80, 80, 0, "scale"),
        (np.ones((10, 10), np.uint8), 80, 80, 8, "floating-point"),
        (np.ones((10, 10, 1), np.float32), 80, 80, 8, "2-D"),
        (np.ones((10, 10), np.float32), -80, 80, 8, "non-negative"),
    ],
)
def test_reduced_luma_rejects_a_plane_that_does_not_fit(
    plane: Any, height: int, width: int, scale: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        hash_reduced_luma(plane, height, width, scale)


# --- values: parsing, bytes, distance ---------------------------------------------------

HASH = "f8f8f0cce0f4e84d0e370a22028f67f0b36e2ed596623e1d33e6339c4e9c9b22"


def test_normalize_accepts_upper_case_and_surrounding_whitespace() -> None:
    assert PdqSignal().normalize(f"  {HASH.upper()}\n") == HASH


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (HASH[:-1], "64 hex digits, got 63 characters"),
        (HASH + "0", "got 65 characters"),
        ("0x" + HASH, "got 66 characters"),
        ("", "got 0 characters"),
        (HASH[:10] + "g" + HASH[11:], "'g' at position 11"),
        (HASH[:63] + "\u0661", "position 64"),  # a non-ASCII digit is not a hex digit
        (HASH[:20] + " " + HASH[21:], "' ' at position 21"),
    ],
)
def test_normalize_says_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(InvalidSignal, match=message):
        PdqSignal().normalize(value)


@given(st.text(max_size=80))
def test_normalize_returns_canonical_hex_or_raises_invalid_signal(value: str) -> None:
    try:
        canonical = PdqSignal().normalize(value)
    except InvalidSignal:
        return
    assert canonical == value.strip().lower()
    assert len(canonical) == 64 and set(canonical) <= set("0123456789abcdef")


@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64))
def test_every_64_hex_digit_string_is_accepted(value: str) -> None:
    assert PdqSignal().normalize(value) == value.lower()


@given(st.binary(min_size=32, max_size=32))
def test_codes_and_hex_round_trip(code: bytes) -> None:
    assert hex_to_code(code_to_hex(code)) == code
    assert code_to_hex(code) == code.hex()


def test_bad_codes_and_hex_raise_invalid_signal() -> None:
    with pytest.raises(InvalidSignal, match="32 bytes, got 31"):
        code_to_hex(bytes(31))
    with pytest.raises(InvalidSignal, match="position 1"):
        hex_to_code("z" * 64)


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_hamming_distance_counts_differing_bits(a: bytes, b: bytes) -> None:
    expected = sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))
    assert hamming_distance(a.hex(), b.hex()) == expected
    assert hamming_distance(a.hex().upper(), b.hex()) == expected
    assert PdqSignal().distance(a.hex(), b.hex()) == expected


# --- the signal type ------------------------------------------------------------------


def test_pdq_signal_declares_its_contract() -> None:
    signal = PdqSignal()
    assert (signal.name, signal.comparison, signal.bits) == ("pdq", "hamming", 256)
    assert (signal.default_threshold, signal.default_quality_floor) == (31, 50)
    assert signal.description


def decoded(
    rgb: NDArray[np.uint8] | None = None,
    luma: NDArray[np.float32] | None = None,
    *,
    height: int,
    width: int,
    scale: int,
) -> DecodedImage:
    return DecodedImage(
        format="jpeg",
        width=width,
        height=height,
        orientation=1,
        frames=1,
        scale=scale,
        partial_first=(False, False),
        rgb=rgb,
        luma=luma,
    )


def test_from_image_uses_the_exact_path_on_full_resolution_pixels() -> None:
    rgb = photo()
    image = decoded(rgb, height=rgb.shape[0], width=rgb.shape[1], scale=1)
    exact, quality = oracle(rgb)
    assert PdqSignal().from_image(image) == ImageSignal(exact, quality)
    with_variants = PdqSignal().from_image(image, dihedral=True)
    assert with_variants == ImageSignal(exact, quality, oracle_dihedral(rgb)[0])


def test_from_image_uses_the_fast_path_on_a_reduced_plane() -> None:
    rgb = photo()
    plane = reduce_luma(rgb, 8)
    image = decoded(luma=plane, height=rgb.shape[0], width=rgb.shape[1], scale=8)
    signal = PdqSignal().from_image(image, dihedral=True)
    assert signal.dihedral is not None and signal.value == signal.dihedral[0]
    assert hamming_distance(signal.value, oracle(rgb)[0]) <= 8
    assert signal.quality == 100


def test_from_image_keeps_the_single_hash_of_a_64x64_image_with_variants() -> None:
    rgb = quirky_64x64()
    image = decoded(rgb, height=64, width=64, scale=1)
    signal = PdqSignal().from_image(image, dihedral=True)
    assert signal.value == oracle(rgb)[0]
    assert signal.dihedral == oracle_dihedral(rgb)[0]


def test_from_image_without_pixels_is_an_error() -> None:
    with pytest.raises(ValueError, match="neither"):
        PdqSignal().from_image(decoded(height=10, width=10, scale=1))
