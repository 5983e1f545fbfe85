"""PDQ of regions (`lightkeeper.signals.regions`): the window geometry a bank and an upload
agree on, the finder of a photo inside a screenshot, and the methods the evaluation runs.

Photos are Meta's public PDQ test photos and synthetic images made here; screenshots are
drawn here too (flat canvas, bars, lines of text), so every expected box is known exactly.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from conftest import SHARED_DIR, synthetic_photo
from lightkeeper.signals.pdq import hash_pixels, hash_pixels_dihedral, hex_to_code
from lightkeeper.signals.regions import (
    FAMILIES,
    KEEP_STEP,
    MIN_REGION_SIDE,
    MIN_TILE_SIDE,
    QUERY_KEEPS,
    REFERENCE_KEEPS,
    PdqContentMethod,
    PdqRegionsMethod,
    PdqTilesMethod,
    Region,
    RegionHasher,
    compatible,
    content_regions,
    family_of,
    query_windows,
    reference_regions,
    tile_regions,
)

THRESHOLD = 31
VECTORS = SHARED_DIR / "pdq-vectors"
RGB = NDArray[np.uint8]


def _photo(path: Path, side: int = 512) -> RGB:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        return np.asarray(image)


@pytest.fixture(scope="module")
def bridge() -> RGB:
    return _photo(VECTORS / "dih" / "bridge-1-original.jpg")


@pytest.fixture(scope="module")
def coaster() -> RGB:
    return _photo(VECTORS / "pen-and-coaster.png")


def _codes(values: list[bytes]) -> NDArray[np.uint64]:
    return np.frombuffer(b"".join(values), dtype=np.uint64).reshape(-1, 4)


def _distance(references: list[bytes], queries: list[bytes]) -> int:
    """The evaluation's distance of a pair: the closest (reference, query) code pair."""
    a, b = _codes(references), _codes(queries)
    return int(np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(-1).min())


def _paired(method: PdqRegionsMethod, original: RGB, upload: RGB) -> int:
    """The distance of a pair as the matcher counts it: the closest compatible code pair."""
    bank = method.named_reference_codes(Image.fromarray(original))
    looked_up = method.named_query_codes(Image.fromarray(upload))
    return min(_distance([b], [q]) for bn, b in bank for qn, q in looked_up if compatible(bn, qn))


def _pdq(rgb: RGB) -> bytes:
    return hex_to_code(hash_pixels(rgb)[0])


def _cut(rgb: RGB, left: float = 0, right: float = 0, top: float = 0, bottom: float = 0) -> RGB:
    height, width = rgb.shape[:2]
    return rgb[
        round(top * height) : height - round(bottom * height),
        round(left * width) : width - round(right * width),
    ]


# --- geometry ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 4000))
def test_every_window_lies_inside_the_image_and_is_large_enough_to_hash(
    width: int, height: int
) -> None:
    for windows in (reference_regions(width, height), query_windows(width, height)):
        names = [w.name for w in windows]
        assert len(names) == len(set(names))
        for w in windows:
            assert 0 <= w.left < w.right <= width
            assert 0 <= w.top < w.bottom <= height
            assert min(w.width, w.height) >= MIN_REGION_SIDE
            assert (w.width, w.height) != (width, height)
        if min(width, height) < MIN_REGION_SIDE:
            assert windows == []


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 4000))
def test_windows_are_deterministic_and_complete_on_ordinary_images(width: int, height: int) -> None:
    assert reference_regions(width, height) == reference_regions(width, height)
    assert query_windows(width, height) == query_windows(width, height)
    if min(width, height) >= 100:  # every window clears the minimum side
        assert len(reference_regions(width, height)) == len(REFERENCE_KEEPS) * len(FAMILIES)
        assert len(query_windows(width, height)) == len(QUERY_KEEPS) * len(FAMILIES)


def test_window_names_say_which_part_of_the_image_they_keep() -> None:
    by_name = {r.name: r for r in reference_regions(1000, 800)}
    assert by_name["region:left-80"] == Region("region:left-80", 0, 0, 797, 800)
    assert by_name["region:right-80"] == Region("region:right-80", 203, 0, 1000, 800)
    assert by_name["region:top-89"] == Region("region:top-89", 0, 0, 1000, 714)
    assert by_name["region:bottom-89"] == Region("region:bottom-89", 0, 86, 1000, 800)
    centre = by_name["region:center-89"]
    assert abs(centre.left - (1000 - centre.right)) <= 1
    assert abs(centre.top - (800 - centre.bottom)) <= 1
    middle = by_name["region:center-x-80"]
    assert (middle.top, middle.bottom) == (0, 800)
    assert abs(middle.left - (1000 - middle.right)) <= 1


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0, 0.21))
def test_bank_and_upload_windows_meet_within_pdq_tolerance_for_any_crop_up_to_21_percent(
    cut: float,
) -> None:
    """The design claim behind the keeps: an upload that lost `cut` of a side at one edge
    (or spread over two opposite edges) has a window of its own whose cut edge lies within
    1.5 % of the side of a window the bank stores (PDQ moves about 25 bits at 1.5 %)."""
    kept = 1.0 - cut
    reference = (1.0, *REFERENCE_KEEPS)
    query = (1.0, *QUERY_KEEPS)
    error = min(abs(kept * q - r) for r in reference for q in query if kept * q <= r + 0.015)
    assert error <= 0.015


def test_the_keeps_are_powers_of_one_step() -> None:
    assert pytest.approx([KEEP_STEP**n for n in (1, 2, 3)]) == QUERY_KEEPS
    assert pytest.approx([KEEP_STEP**n for n in (4, 8)]) == REFERENCE_KEEPS


def test_unknown_families_and_impossible_keeps_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown region family 'diagonal'"):
        reference_regions(500, 500, families=["diagonal"])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        query_windows(500, 500, keeps=[1.2])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 4000))
def test_tiles_cover_the_image_once_in_a_four_by_four_grid(width: int, height: int) -> None:
    tiles = tile_regions(width, height)
    if min(width, height) < 4 * MIN_TILE_SIDE:
        assert tiles == []
        return
    assert [t.name for t in tiles] == [f"region:tile-r{r}c{c}" for r in range(4) for c in range(4)]
    covered = np.zeros((height, width), dtype=np.uint8)
    for tile in tiles:
        assert min(tile.width, tile.height) >= MIN_TILE_SIDE
        covered[tile.top : tile.bottom, tile.left : tile.right] += 1
    assert (covered == 1).all()


def test_region_names_give_their_family() -> None:
    assert family_of("region:left-89") == "left"
    assert family_of("region:center-x-80") == "center-x"
    assert family_of("region:content") == family_of("region:content-2") == "content"
    assert family_of("whole") is None
    assert family_of("rotate90") is None


def test_only_pairs_that_can_line_up_are_compatible() -> None:
    bank = ["whole"] + [r.name for r in reference_regions(800, 600)]
    for query in ["whole", "flipx", "region:content", "region:content-3"]:
        assert all(compatible(reference, query) for reference in bank)
    for window in query_windows(800, 600):
        allowed = [reference for reference in bank if compatible(reference, window.name)]
        assert allowed == [
            r.name
            for r in reference_regions(800, 600)
            if family_of(r.name) == family_of(window.name)
        ]
        assert len(allowed) == len(REFERENCE_KEEPS)


def test_a_tile_meets_only_the_tile_at_its_own_position() -> None:
    tiles = [t.name for t in tile_regions(800, 600)]
    bank = ["whole", *[r.name for r in reference_regions(800, 600)], *tiles]
    for tile in tiles:
        assert [reference for reference in bank if compatible(reference, tile)] == [tile]
    uploads = ["whole", "flipx", "region:content", *[w.name for w in query_windows(800, 600)]]
    for query in uploads:
        assert not any(compatible(tile, query) for tile in tiles)


# --- the content finder ----------------------------------------------------------------------


def _screen(
    photo: RGB,
    *,
    size: tuple[int, int] = (720, 1280),
    at: tuple[int, int] = (60, 240),
    dark: bool = False,
) -> RGB:
    """`photo` pasted at `at` into a phone-like screen: status and navigation bars, a header
    line above the photo and lines of caption text below it."""
    width, height = size
    canvas = (20, 20, 22) if dark else (250, 250, 250)
    ink = (200, 200, 205) if dark else (60, 60, 64)
    screen = Image.new("RGB", size, canvas)
    draw = ImageDraw.Draw(screen)
    draw.rectangle((0, 0, width, 40), fill=(0, 0, 0))
    draw.rectangle((0, height - 90, width, height), fill=(230, 230, 235))
    for i in range(4):
        draw.ellipse((40 + i * 170, height - 70, 90 + i * 170, height - 20), fill=ink)
    x, y = at
    draw.text((x, y - 50), "someone posted this", fill=ink, font_size=28)
    screen.paste(Image.fromarray(photo), (x, y))
    below = y + photo.shape[0] + 24
    for line in range(3):
        if below + 40 * line + 30 < height - 100:
            draw.text((30, below + 40 * line), "a caption line " * 3, fill=ink, font_size=26)
    return np.asarray(screen)


def _assert_close(region: Region, box: tuple[int, int, int, int], slack: int = 3) -> None:
    found = (region.left, region.top, region.right, region.bottom)
    assert max(abs(a - b) for a, b in zip(found, box, strict=True)) <= slack, (found, box)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_finds_a_photo_pasted_into_a_screen_within_a_few_pixels(bridge: RGB, dark: bool) -> None:
    photo = bridge[:300, :400]
    found = content_regions(_screen(photo, at=(60, 240), dark=dark))
    assert found, "no content region"
    assert found[0].name == "region:content"
    _assert_close(found[0], (60, 240, 460, 540))


@settings(max_examples=12, deadline=None)
@given(
    st.integers(0, 250),
    st.integers(120, 600),
    st.floats(0.35, 0.8),
    st.booleans(),
)
def test_finds_the_photo_wherever_it_sits_on_the_screen(
    x: int, y: int, scale: float, dark: bool
) -> None:
    photo = np.asarray(synthetic_photo(round(600 * scale), round(450 * scale), seed=x + y))
    height, width = photo.shape[:2]
    x = min(x, 720 - width)
    found = content_regions(_screen(photo, at=(x, y), dark=dark))
    assert any(
        max(abs(a - b) for a, b in zip((r.left, r.top, r.right, r.bottom), box, strict=True)) <= 3
        for r in found
        for box in [(x, y, x + width, y + height)]
    ), found


def test_a_full_width_letterboxed_photo_reaches_both_sides(bridge: RGB) -> None:
    height, width = bridge.shape[:2]
    square = np.zeros((width, width, 3), dtype=np.uint8)
    top = (width - height) // 2
    square[top : top + height] = bridge
    found = content_regions(square)
    assert found
    _assert_close(found[0], (0, top, width, top + height))


def test_a_full_width_photo_with_flat_side_margins_is_found_whole(bridge: RGB) -> None:
    """A photo as wide as a phone screen whose left and right margins are flat (a product on
    grey paper): the margins reach the screen's border, steady as a bar, so their colour
    counts as canvas and the rectangle search keeps only the middle. The photo's top and
    bottom edges still run from side to side, and the full-width band between them is
    offered, exactly."""
    photo = np.asarray(Image.fromarray(bridge).resize((720, 480), Image.Resampling.LANCZOS))
    photo = photo.copy()
    photo[:, :110] = photo[:, -110:] = (128, 124, 116)
    screen = _screen(photo, at=(0, 200), dark=True)
    found = content_regions(screen)
    assert any(r.left == 0 and r.right == 720 for r in found), found
    band = next(r for r in found if r.left == 0 and r.right == 720)
    _assert_close(band, (0, 200, 720, 680))
    assert _distance([_pdq(photo)], [_pdq(np.ascontiguousarray(band.crop(screen)))]) <= 31


def test_a_row_of_thumbnails_gives_the_photo_among_its_pieces(bridge: RGB) -> None:
    """One photo beside three solid placeholders: the row is cut at the gaps, and the solid
    tiles are not offered as photos."""
    screen = Image.new("RGB", (1440, 900), (250, 250, 250))
    draw = ImageDraw.Draw(screen)
    thumb = Image.fromarray(bridge).resize((255, 160), Image.Resampling.LANCZOS)
    for i, colour in enumerate([(200, 40, 40), None, (40, 160, 60), (30, 60, 200)]):
        x = 300 + 275 * i
        if colour is None:
            screen.paste(thumb, (x, 120))
        else:
            draw.rectangle((x, 120, x + 254, 279), fill=colour)
    found = content_regions(np.asarray(screen))
    assert len(found) == 1
    _assert_close(found[0], (575, 120, 830, 280))


def test_a_plain_photo_or_an_empty_screen_has_no_content_region(bridge: RGB) -> None:
    assert content_regions(bridge) == []
    assert content_regions(np.asarray(synthetic_photo(640, 480, seed=3))) == []
    assert content_regions(np.full((1280, 720, 3), 250, dtype=np.uint8)) == []
    assert content_regions(np.zeros((40, 40, 3), dtype=np.uint8)) == []


def test_the_finder_is_deterministic_and_checks_its_input(bridge: RGB) -> None:
    screen = _screen(bridge[:300, :400])
    assert content_regions(screen) == content_regions(screen.copy())
    with pytest.raises(ValueError, match="height, width, 3"):
        content_regions(np.zeros((100, 100), dtype=np.uint8))


# --- hashing and the methods -------------------------------------------------------------------


def test_reference_codes_are_the_named_windows_at_or_above_the_quality_floor(bridge: RGB) -> None:
    hasher = RegionHasher()
    codes = hasher.reference(bridge)
    height, width = bridge.shape[:2]
    names = {r.name for r in [*reference_regions(width, height), *tile_regions(width, height)]}
    assert codes and {c.name for c in codes} <= names
    assert all(c.quality >= 50 and len(c.code) == 32 for c in codes)
    region = codes[0].region
    assert codes[0].value == hash_pixels(region.crop(bridge))[0]


def test_flat_images_give_no_region_codes() -> None:
    flat = np.full((400, 600, 3), 128, dtype=np.uint8)
    assert RegionHasher().reference(flat) == []
    assert RegionHasher().query(flat) == []


def test_switches_turn_crops_tiles_and_content_off(bridge: RGB) -> None:
    screen = _screen(bridge[:300, :400])
    assert RegionHasher(crops=False, tiles=False).reference(bridge) == []
    content_only = RegionHasher(crops=False, tiles=False).query(screen)
    assert [c.name for c in content_only] == ["region:content"]
    assert not any(c.name == "region:content" for c in RegionHasher(content=False).query(screen))
    tiles_only = RegionHasher(crops=False).reference(bridge)
    assert tiles_only and all(family_of(c.name).startswith("tile-") for c in tiles_only)
    no_tiles = RegionHasher(tiles=False).reference(bridge)
    assert no_tiles and not any("tile" in c.name for c in no_tiles)


@pytest.mark.parametrize(
    ("name", "cut"),
    [
        ("left 10 %", {"left": 0.10}),
        ("bottom 17 %", {"bottom": 0.17}),
        ("centre 12 %", {"left": 0.06, "right": 0.06, "top": 0.06, "bottom": 0.06}),
        ("sides 20 %", {"left": 0.10, "right": 0.10}),
    ],
)
def test_regions_catch_crops_that_plain_pdq_misses(
    bridge: RGB, name: str, cut: dict[str, float]
) -> None:
    upload = np.ascontiguousarray(_cut(bridge, **cut))
    cropped, original = Image.fromarray(upload), Image.fromarray(bridge)
    method = PdqRegionsMethod()
    assert _distance([_pdq(bridge)], [_pdq(upload)]) > THRESHOLD
    assert _distance(method.reference_codes(original), method.query_codes(cropped)) <= THRESHOLD
    # Also when only compatible pairs count, as the matcher is meant to count them.
    hasher = RegionHasher()
    bank = [("whole", _pdq(bridge))] + [(c.name, c.code) for c in hasher.reference(bridge)]
    looked_up = [("whole", _pdq(upload))] + [(c.name, c.code) for c in hasher.query(upload)]
    paired = min(_distance([b], [q]) for bn, b in bank for qn, q in looked_up if compatible(bn, qn))
    assert paired <= THRESHOLD


def test_content_regions_catch_a_screenshot_against_a_plain_hash(bridge: RGB) -> None:
    """A bank that holds only the whole image's hash (an imported list) still matches the
    photo inside a screenshot: the upload is looked up with its content region too."""
    photo = np.asarray(Image.fromarray(bridge).resize((420, 263), Image.Resampling.LANCZOS))
    screen = Image.fromarray(_screen(photo, at=(150, 300)))
    method = PdqContentMethod()
    assert method.reference_codes(Image.fromarray(bridge)) == [_pdq(bridge)]
    assert _distance([_pdq(bridge)], [_pdq(np.asarray(screen))]) > THRESHOLD
    assert _distance([_pdq(bridge)], method.query_codes(screen)) <= THRESHOLD


def _sticker(rgb: RGB, share: float, at: tuple[float, float]) -> RGB:
    """`rgb` with an opaque disc covering `share` of it, centred at (x, y) as fractions."""
    image = Image.fromarray(rgb)
    radius = (share * image.width * image.height / np.pi) ** 0.5
    x, y = at[0] * image.width, at[1] * image.height
    ImageDraw.Draw(image).ellipse(
        (x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255)
    )
    return np.asarray(image)


@pytest.mark.parametrize("at", [(0.5, 0.5), (0.3, 0.7), (0.8, 0.2)])
def test_tiles_catch_a_sticker_that_plain_pdq_misses(bridge: RGB, at: tuple[float, float]) -> None:
    upload = _sticker(bridge, 0.10, at)
    assert _distance([_pdq(bridge)], [_pdq(upload)]) > THRESHOLD
    # A tile the sticker leaves alone is the tile of the original, bit for bit.
    assert _paired(PdqTilesMethod(), bridge, upload) == 0
    assert _paired(PdqRegionsMethod(), bridge, upload) == 0  # a bank with regions on
    windows_only = PdqRegionsMethod(hasher=RegionHasher(tiles=False))
    assert _paired(windows_only, bridge, upload) > THRESHOLD
    # Scaled down and re-encoded as well, the untouched tiles still match.
    out = io.BytesIO()
    small = Image.fromarray(upload).resize((384, 241), Image.Resampling.LANCZOS)
    small.save(out, "JPEG", quality=75)
    copy = np.asarray(Image.open(out).convert("RGB"))
    assert _paired(PdqTilesMethod(), bridge, copy) <= THRESHOLD


def test_regions_do_not_make_unrelated_photos_match(bridge: RGB, coaster: RGB) -> None:
    for method in (PdqRegionsMethod(dihedral=True), PdqTilesMethod(dihedral=True)):
        assert _paired(method, bridge, coaster) > THRESHOLD, method.name
        assert _paired(method, coaster, bridge) > THRESHOLD, method.name


def test_methods_follow_the_evaluation_contract(bridge: RGB) -> None:
    from lightkeeper.evaluation.methods import Method

    image = Image.fromarray(bridge)
    plain, turned = PdqRegionsMethod(), PdqRegionsMethod(dihedral=True)
    content = PdqContentMethod()
    assert [m.name for m in (plain, turned, content)] == [
        "pdq+regions",
        "pdq+regions+dihedral",
        "pdq+content",
    ]
    for method in (plain, turned, content):
        assert isinstance(method, Method)
        assert method.signal_type == "pdq"
        copy = pickle.loads(pickle.dumps(method))  # methods run in worker processes
        assert copy.query_codes(image) == method.query_codes(image)
        for codes in (method.reference_codes(image), method.query_codes(image)):
            assert codes and all(len(c) == 32 for c in codes)
            assert len(codes) == len(set(codes))
    assert plain.reference_codes(image)[0] == _pdq(bridge)
    assert len(plain.reference_codes(image)) == 1 + len(RegionHasher().reference(bridge))
    variants = [hex_to_code(v) for v in hash_pixels_dihedral(bridge)[0]]
    assert turned.query_codes(image)[:8] == variants
