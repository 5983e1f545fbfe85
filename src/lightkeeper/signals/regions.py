"""PDQ of image regions: catching crops, screenshots and overlays with exact lookups only.

Why. PDQ describes the whole frame. On the everyday photos of the corpus
(`bench/regions_bench.py --every 5`: 57 of the 285, threshold 31; results in
bench/results/regions.json and regions.md), cutting 2 % off one edge already loses 23 % of
the copies and 5 % loses all but 0.4 %; a photo inside a
screenshot is never found, as the hash describes the screen, and a sticker over a tenth
of it hides four fifths of the copies (part 3). This module adds PDQ codes
of regions and nothing else: no new distance, no approximate search. A bank stores a few
more 256-bit codes per image, an upload is looked up with a few more, all in the same
exact Hamming index; a match is still one code pair within the threshold.

Three parts, switched separately (`RegionHasher`).

1. Content regions, upload side only (`content_regions`): where a photo sits inside a
   larger canvas (a screenshot, a post between bars and a caption, a border, a letterbox,
   a row of thumbnails), found from the canvas's flat colours and the photo's straight
   edges, and hashed as the photo. The bank is unchanged, so this works against any bank,
   imported hash-only lists included. Recall at 31, PDQ alone 0 %: 96.5 % on our
   screenshots (the photo at 30-80 % of a 1080 x 1920 or 1920 x 1080 screen, bars,
   header, caption, flat, noisy or graded canvas, PNG or JPEG 80-95); on the evaluation
   harness's layouts 93-100 % with the windows of part 2 (phone 93 %, feed 98 %, desktop
   98 %, thumbnails 95 %, letterbox 96.5 %, borders 100 %; content regions alone: 91, 96.5,
   98, 95, 95 and 100 %). Photos as wide or as tall as the screen are offered as the band
   between their two edges: before that, a full-width photo with flat sides was cut down to
   its middle (phone 88 %, letterbox 84 %). Missed: photos whose margins have the canvas's
   own colour (a product shot on a white page, a night scene in a dark theme), which come
   out cropped or not at all; a photo of a screen (perspective); more than four
   candidates. Cost: no extra code per banked image; per upload up to 4 codes and 41 ms
   (median; 90th percentile 69 ms) of finding on one core of the development VM.

2. Crop windows, both sides (`reference_regions`, `query_windows`, `FAMILIES`). An upload
   that lost part of the picture cannot give it back, so the bank must hold windows of the
   original. PDQ moves about 25 of the 31 allowed bits when one edge of the window moves by
   1.5 % of the side (about 34 at 2 %), so a window is needed every 3 % of cut: too many for
   the bank alone. Both sides share them on a geometric grid: kept fractions of a side are
   powers of q = 0.972 (`KEEP_STEP`); the bank stores windows keeping q^4 and q^8 (89 % and
   80 %), the upload is also looked up with windows of itself keeping q, q^2 and q^3 (97, 94,
   92 %), and the ratios q^0 … q^8 meet every cut from 0 to 21 % within half a step (1.4 % of
   the side). Seven families of windows, each a one-parameter set: the cut at one edge (left,
   right, top, bottom), split over two opposite edges (center-x, center-y), or over all four
   (center). Cost: 14 extra codes per banked image (index memory x 15 for a bank with crops
   on); 21 extra PDQs per upload, on a copy at most 512 pixels on a side (59 ms median, 93
   ms at the 90th percentile, with the content regions). Recall at 31, PDQ alone 0-55 % from
   a 5 % cut on: 98-100 % for cuts of 5-20 % at one edge, two opposite edges or all four. Not
   caught: cuts over 21 %; uneven cuts at three or four edges (75 % at 5 %, 42 % at 10 %,
   2-11 % at 15-20 %) and corner crops (two adjacent edges: 91 % at 2 %, 2 % at 5 %, none
   beyond), which would need a grid over four parameters, hundreds of codes; crops of rotated
   or flipped copies (windows are not turned); crops on top of heavy re-encoding have less
   margin, as the grid's worst offset already costs about 25 bits.

3. Tiles, both sides (`tile_regions`): the 4 x 4 grid of sixteenths of the picture. A
   caption or sticker over a tenth of a photo moves its whole PDQ by a median of 26-40 bits,
   but leaves most tiles as they were, and a tile meets only the tile at its own position
   (`compatible`), so an untouched tile of the upload is the bank's tile within a few bits.
   Cost: 16 extra codes per banked image (30 with the windows), 16 small PDQs per upload.
   Recall at 31 on `make eval`'s 285 everyday photos (docs/accuracy.md; the 282 above the
   quality floor, PDQ with its variants, then with the tiles): stickers of 2, 5, 10 and
   20 % 77, 54, 25 and 5 % -> 100, 99.3, 99.6 and 99.6 %; captions of 5, 10 and 20 % 89,
   67 and 23 % -> 99.6, 99.6 and 98.9 %; watermarks 96-99 % -> 99.6-100 %.
   Missed: photos with few textured tiles, whose tiles of sky or wall fall under the quality
   floor (a flat tile would match any other flat tile: with a floor of 45, a one-off scan
   of every photo of both sets, not a kept benchmark, found two unrelated astronomy tiles
   20 bits apart), and any edit that moves the grid (a crop, a border, a rotation: the
   windows' and the content finder's work).

False matches. Every extra code pair is another chance of one, so a matcher should count only
pairs that can line up (`compatible`): a window of the upload is smaller than the upload, so
it can only meet a window of the same family in the bank, never the whole image's code.
Measured over all pairs of distinct photos (every bank code against every upload code of the
other photo, either way round, threshold 31): no false match; the closest pair 88 bits apart
among 1,596 pairs of everyday photos and 78 among 44,688 (original, edited copy) pairs; 52
bits among 5,778 pairs of the astronomy set (40 with the eight rotations and flips).

With the tiles (`make eval`, 2026-11-23, every photo of both sets, the eight rotations and
flips, compatible pairs only): still no false match among the 40,470 pairs of everyday
photos, the closest 80 bits apart (82 with the windows alone); on the astronomy set the
same two pairs within 31 as whole-image PDQ with its eight variants, and no other.

Switching per bank (wired by the store and the matcher; see docs/matching.md): one bank
option, ``regions``, makes the bank keep the 14 window codes and the 16 tile codes of
every entry added from an image (impossible for entries imported as bare hashes) and lets
uploads meet its codes through their windows, tiles and content regions, within the bank's
``region_threshold``. A match through a region says so in its evidence: which code of the
upload (``variant``) met which code of the entry (``entry_code``: "whole", a window or a
tile name), so that a reviewer knows the match is on part of a picture and which part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lightkeeper.signals.pdq import hash_pixels, hex_to_code

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "FAMILIES",
    "KEEP_STEP",
    "MIN_TILE_SIDE",
    "QUERY_KEEPS",
    "REFERENCE_KEEPS",
    "TILE_GRID",
    "PdqContentMethod",
    "PdqRegionsMethod",
    "PdqTilesMethod",
    "Region",
    "RegionCode",
    "RegionHasher",
    "compatible",
    "content_regions",
    "family_of",
    "query_windows",
    "reference_regions",
    "tile_regions",
]

#: Ratio between neighbouring kept fractions of a side. PDQ moves about 25 bits (of the
#: 31 a match allows) when one edge of the window moves by 1.5 % of the side, so
#: neighbouring windows may differ by at most about twice that: 1 - 0.972 = 2.8 %.
KEEP_STEP: Final = 0.972
#: Kept fractions of a side for the windows a bank stores (q^4 ≈ 89 %, q^8 ≈ 80 %).
REFERENCE_KEEPS: Final[tuple[float, ...]] = (KEEP_STEP**4, KEEP_STEP**8)
#: Kept fractions of a side for the windows an upload is looked up with (97, 94, 92 %).
QUERY_KEEPS: Final[tuple[float, ...]] = (KEEP_STEP, KEEP_STEP**2, KEEP_STEP**3)

#: The crop families, each a one-parameter set of windows: which edges give way.
#: "left" is the left part of the image (its right edge cut), "center-x" the middle of
#: the width at full height, "center" the middle of both sides.
FAMILIES: Final[tuple[str, ...]] = (
    "center",
    "center-x",
    "center-y",
    "left",
    "right",
    "top",
    "bottom",
)

#: Windows under this many pixels on a side are not hashed: PDQ samples a 64 x 64 grid.
MIN_REGION_SIDE: Final = 64
#: Tiles per side of the grid of tiles (`tile_regions`): 4 x 4, each a sixteenth of the image.
TILE_GRID: Final = 4
#: Tiles under this many pixels on a side are not hashed. Smaller than for windows: a tile
#: is a sixteenth of the upload, and with 64 an upload of 384 x 241 would get no tiles at all
#: (measured on a stickered photo: tiles 38-46 bits from the original's, whole PDQ alone;
#: with 32, tiles of 96 x 60 pixels, 16-22 bits).
MIN_TILE_SIDE: Final = 32
#: PDQ's default quality floor: region codes below it are dropped (flat crops of sky or
#: wall would otherwise match any other flat crop).
DEFAULT_QUALITY_FLOOR: Final = 50
#: Longest side of the copy regions are hashed on; larger images are scaled down first.
DEFAULT_WORK_SIDE: Final = 512

# Content finder settings (see `content_regions`).
_COARSE_SIDE: Final = 160
_RING_SHARE: Final = 0.04
_PALETTE_TOLERANCE: Final = 12.0
_FLAT_STEP: Final = 6.0
_RUN: Final = 12
_RUN_RANGE: Final = 6.0
_BACKGROUND_PENALTY: Final = 2.0
_MIN_CONTENT_SHARE: Final = 0.02
_MAX_CONTENT_SHARE: Final = 0.97
_MIN_OUTSIDE_BACKGROUND: Final = 0.5
#: A line of the coarse copy crossing a box is canvas, splitting it, when this share of it is.
_SEPARATOR_SHARE: Final = 0.9
#: A box with this share of its coarse pixels close to its median colour is a solid block.
_SOLID_SHARE: Final = 0.9
#: Lines averaged on each side of a boundary, samples taken along it, and the median step
#: (levels of 255) that makes a clear, straight edge or at least a weak one.
_EDGE_DEPTH: Final = 3
_EDGE_SAMPLES: Final = 192
_EDGE_STEP: Final = 6.0
#: Within this many levels of a palette colour a pixel is canvas itself, not a photo margin
#: of nearly the canvas's colour.
_EXACT_TOLERANCE: Final = 3.0
#: Share of canvas-coloured pixels the lines just outside a content edge must have.
_OUTER_CANVAS: Final = 0.8
_WEAK_STEP: Final = 2.0
#: Share of a full-width (or full-height) band's coarse pixels that must not be canvas.
_BAND_CONTENT: Final = 0.6
#: Samples along a whole row (column) when looking for the edges of such bands.
_BAND_SAMPLES: Final = 64
#: Two candidate boxes are one when every edge agrees within this share of the side.
_SAME_EDGE: Final = 0.01


@dataclass(frozen=True, slots=True)
class Region:
    """A named window of an image in pixels: columns [left, right), rows [top, bottom)."""

    name: str
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def crop(self, rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """The window's pixels (a view of `rgb`)."""
        return rgb[self.top : self.bottom, self.left : self.right]


@dataclass(frozen=True, slots=True)
class RegionCode:
    """The PDQ hash of one region, with the region it came from."""

    region: Region
    value: str
    quality: int

    @property
    def name(self) -> str:
        return self.region.name

    @property
    def code(self) -> bytes:
        """The 32-byte code the Hamming index holds."""
        return hex_to_code(self.value)


def _axis_window(length: int, keep: float, anchor: str) -> tuple[int, int]:
    """[start, stop) keeping `keep` of an axis of `length` pixels, anchored at "start",
    "stop" or "middle" (the cut split evenly, the odd pixel taken from the far edge)."""
    kept = min(length, max(1, round(keep * length)))
    cut = length - kept
    if anchor == "start":
        return 0, kept
    if anchor == "stop":
        return cut, length
    return cut // 2, cut // 2 + kept


#: For each family, the anchor of the x axis and of the y axis ("full" keeps the axis).
_ANCHORS: Final[dict[str, tuple[str, str]]] = {
    "center": ("middle", "middle"),
    "center-x": ("middle", "full"),
    "center-y": ("full", "middle"),
    "left": ("start", "full"),
    "right": ("stop", "full"),
    "top": ("full", "start"),
    "bottom": ("full", "stop"),
}


def _family_windows(
    width: int, height: int, keeps: Sequence[float], families: Sequence[str]
) -> list[Region]:
    if min(width, height) < MIN_REGION_SIDE:
        return []
    regions = []
    for keep in keeps:
        if not 0.0 < keep < 1.0:
            raise ValueError(f"a kept fraction lies strictly between 0 and 1, got {keep}")
        for family in families:
            try:
                x_anchor, y_anchor = _ANCHORS[family]
            except KeyError:
                raise ValueError(
                    f"unknown region family {family!r}; known: {', '.join(FAMILIES)}"
                ) from None
            x0, x1 = (0, width) if x_anchor == "full" else _axis_window(width, keep, x_anchor)
            y0, y1 = (0, height) if y_anchor == "full" else _axis_window(height, keep, y_anchor)
            if min(x1 - x0, y1 - y0) < MIN_REGION_SIDE:
                continue
            regions.append(Region(f"region:{family}-{round(keep * 100)}", x0, y0, x1, y1))
    return regions


def reference_regions(
    width: int,
    height: int,
    keeps: Sequence[float] = REFERENCE_KEEPS,
    families: Sequence[str] = FAMILIES,
) -> list[Region]:
    """The windows of a banked image whose PDQ codes the bank stores beside the whole image's.

    One window per kept fraction and family, in that order, e.g. "region:left-89" (the left
    89 % of the width, full height) or "region:center-80". None for images under
    `MIN_REGION_SIDE` pixels on a side, and none that would be narrower than that.
    """
    return _family_windows(width, height, keeps, families)


def query_windows(
    width: int,
    height: int,
    keeps: Sequence[float] = QUERY_KEEPS,
    families: Sequence[str] = FAMILIES,
) -> list[Region]:
    """The windows of an upload that it is also looked up with: the same families, with the
    finer kept fractions, so that (query window) x (reference window) meet on a grid."""
    return _family_windows(width, height, keeps, families)


def tile_regions(width: int, height: int, grid: int = TILE_GRID) -> list[Region]:
    """The `grid` x `grid` tiles of an image, row by row, named "region:tile-r{row}c{col}".
    Both sides hash the same tiles, so an overlay that hides some of them leaves the others
    as they were. None when a tile would be under `MIN_TILE_SIDE` pixels on a side."""
    if min(width, height) < grid * MIN_TILE_SIDE:
        return []
    xs = [round(i * width / grid) for i in range(grid + 1)]
    ys = [round(i * height / grid) for i in range(grid + 1)]
    return [
        Region(f"region:tile-r{row}c{col}", xs[col], ys[row], xs[col + 1], ys[row + 1])
        for row in range(grid)
        for col in range(grid)
    ]


def family_of(name: str) -> str | None:
    """The family of a region name ("region:left-89" -> "left", "region:content-2" ->
    "content"); None for anything else (the whole image, a rotation or flip of it)."""
    if not name.startswith("region:"):
        return None
    stem = name.removeprefix("region:")
    head, _, tail = stem.rpartition("-")
    return head if head and tail.isdigit() else stem


def compatible(reference: str, query: str) -> bool:
    """Whether a bank code named `reference` and an upload code named `query` can meet at
    all, so that a matcher need not count the pair (each pair counted is one more chance
    of a false match, and these can only match by accident):

    - the upload's whole code (or a rotation or flip of it) and its content regions meet
      every bank code: the whole image's and every region's;
    - a window of the upload meets only the bank's windows of the same family: a window
      is smaller than the upload, itself at most the original, so it can only line up
      with a window of the original cut the same way ("right-97" of an upload whose left
      edge was cut with "right-89" of the original), never with the whole image.

    - a tile of the bank (`tile_regions`) meets only the tile of the upload at the same
      position, which an overlay elsewhere leaves as it was; every other pair with a tile
      would be a tile's worth of picture against a code of something else.

    Names are "whole" (or anything not a region name) and `Region.name` values."""
    family = family_of(query)
    banked = family_of(reference)
    if banked is not None and banked.startswith("tile-"):
        return family == banked
    if family is None or family == "content":
        return True
    return banked == family


# --- content regions: the photo inside a screenshot -------------------------------------


def _reduced(rgb: NDArray[np.uint8], factor: int) -> NDArray[np.float32]:
    """A copy `factor` times smaller on each side, each pixel the mean of up to 4 x 4 samples
    spread over its factor x factor block (a partial last block is dropped): cheaper than a
    full box filter on a 2-megapixel screenshot, and enough to average canvas noise away."""
    rows, cols = rgb.shape[0] // factor, rgb.shape[1] // factor
    offsets = sorted({(2 * k + 1) * factor // 8 for k in range(4)})
    total = np.zeros((rows, cols, 3), dtype=np.float32)
    for dy in offsets:
        for dx in offsets:
            total += rgb[dy::factor, dx::factor][:rows, :cols]
    total /= len(offsets) ** 2
    return total


def _flat(coarse: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Pixels of the coarse copy that differ from none of their four neighbours by more than
    `_FLAT_STEP` on any channel: canvas is flat, a photo mostly is not."""
    padded = np.pad(coarse, ((1, 1), (1, 1), (0, 0)), mode="edge")
    centre = padded[1:-1, 1:-1]
    step = np.zeros(coarse.shape[:2], dtype=np.float32)
    for neighbour in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
        np.maximum(step, np.abs(centre - neighbour).max(axis=-1), out=step)
    flat: NDArray[np.bool_] = step <= _FLAT_STEP
    return flat


def _ring(values: NDArray[np.generic]) -> NDArray[np.generic]:
    """The outermost ring of a 2-D (or 2-D by channel) array, as one run of values."""
    return np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])


def _ring_palette(coarse: NDArray[np.float32], usable: NDArray[np.bool_]) -> NDArray[np.float32]:
    """The canvas colours: those of the `usable` pixels of the image's outermost ring that
    cover at least `_RING_SHARE` of the whole ring (the canvas, bars and padding around an
    embedded photo)."""
    ring = _ring(coarse)[_ring(usable)]
    total = 2 * (coarse.shape[0] + coarse.shape[1]) - 4
    bins = (ring // 16).astype(np.int32)
    keys = (bins[:, 0] << 8 | bins[:, 1]) << 8 | bins[:, 2]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    colours = [
        ring[inverse == index].mean(axis=0)
        for index in np.flatnonzero(counts >= _RING_SHARE * total)
    ]
    if not colours:
        return np.zeros((0, 3), dtype=np.float32)
    return np.asarray(colours, dtype=np.float32)


def _steady(side: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Pixels of one side of the ring (a run of colours) inside a stretch of `_RUN` pixels
    whose colours stay within `_RUN_RANGE` levels on every channel."""
    if len(side) < _RUN:
        return np.zeros(len(side), dtype=bool)
    windows = np.lib.stride_tricks.sliding_window_view(side, _RUN, axis=0)
    calm = (windows.max(axis=-1) - windows.min(axis=-1)).max(axis=-1) <= _RUN_RANGE
    steady = np.zeros(len(side), dtype=bool)
    for offset in range(_RUN):
        steady[offset : offset + len(calm)] |= calm
    return steady


def _canvas(coarse: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The palette of canvas colours and the background-like pixels of the coarse copy.

    Only ring pixels that lie in a steady stretch of the ring count: a canvas, a bar or
    padding keeps one colour along the border, while a photo that reaches the border (full
    width on a phone, letterboxed) drifts even where it is smooth, and must not lend its
    colours to the canvas."""
    usable = np.zeros(coarse.shape[:2], dtype=bool)
    usable[0] = _steady(coarse[0])
    usable[-1] = _steady(coarse[-1])
    usable[:, 0] |= _steady(coarse[:, 0])
    usable[:, -1] |= _steady(coarse[:, -1])
    palette = _ring_palette(coarse, usable & _flat(coarse))
    return palette, _background_mask(coarse, palette)


def _background_mask(
    pixels: NDArray[np.float32], palette: NDArray[np.float32]
) -> NDArray[np.bool_]:
    """Pixels within `_PALETTE_TOLERANCE` (on every channel) of a palette colour."""
    mask = np.zeros(pixels.shape[:-1], dtype=bool)
    for colour in palette:
        mask |= (np.abs(pixels - colour) <= _PALETTE_TOLERANCE).all(axis=-1)
    return mask


def _best_run(values: NDArray[np.float32]) -> tuple[float, int, int]:
    """The contiguous run [start, stop) of greatest sum: (sum, start, stop)."""
    prefix = np.zeros(len(values) + 1, dtype=np.float64)
    np.cumsum(values, out=prefix[1:])
    rise = prefix[1:] - np.minimum.accumulate(prefix[:-1])
    stop = int(np.argmax(rise)) + 1
    start = int(np.argmin(prefix[:stop]))
    return float(rise[stop - 1]), start, stop


def _best_rectangle(weight: NDArray[np.float32]) -> tuple[float, tuple[int, int, int, int]]:
    """The axis-aligned rectangle of greatest total weight: (score, (x0, y0, x1, y1)).

    For every pair of column bounds at once, the best run of rows is the largest rise of
    the running row sum (its value minus its lowest earlier value): one pass down the
    rows over a vector of all column pairs, about 4,000 of them at 160 x 90, the shorter
    axis being the paired one. The winning pair's run of rows is then found on its own.
    """
    transposed = weight.shape[1] > weight.shape[0]
    grid = np.ascontiguousarray(weight.T if transposed else weight, dtype=np.float32)
    rows, cols = grid.shape
    across = np.zeros((rows, cols + 1), dtype=np.float32)
    np.cumsum(grid, axis=1, out=across[:, 1:])
    lo, hi = np.triu_indices(cols + 1, k=1)
    spans = across[:, hi]
    spans -= across[:, lo]
    running = np.zeros(len(lo), dtype=np.float32)
    lowest = np.zeros(len(lo), dtype=np.float32)
    best = np.full(len(lo), -np.inf, dtype=np.float32)
    rise = np.empty(len(lo), dtype=np.float32)
    for row in range(rows):
        running += spans[row]
        np.subtract(running, lowest, out=rise)
        np.maximum(best, rise, out=best)
        np.minimum(lowest, running, out=lowest)
    pair = int(np.argmax(best))
    c0, c1 = int(lo[pair]), int(hi[pair])
    score, r0, r1 = _best_run(across[:, c1] - across[:, c0])
    box = (r0, c0, r1, c1) if transposed else (c0, r0, c1, r1)
    return score, box


def _step_profile(
    rgb: NDArray[np.uint8],
    axis: int,
    first: int,
    last: int,
    span: tuple[int, int],
    canvas: tuple[NDArray[np.float32], int] | None = None,
) -> NDArray[np.float32]:
    """For each boundary b in [first, last] between lines b - 1 and b (rows when `axis` is 0,
    columns when 1), how consistently the image steps there along `span` of the other axis:
    the median over the span of (mean of lines b..b+2) - (mean of lines b-3..b-1), its
    largest absolute value over the three channels. A photo's straight edge against a
    canvas scores its contrast; noise, text and the photo's own content score near zero,
    as they do not step the same way all along the line.

    With `canvas` (palette, outward), a boundary scores only where the three lines on its
    outer side (before it when `outward` is -1, after it when +1) are mostly canvas
    colours: the near edge of the next tile in a row of thumbnails does not count."""
    profile, lines, _ = _steps(rgb, axis, first, last, span, _EDGE_SAMPLES)
    if canvas is not None and len(profile):
        palette, outward = canvas
        _keep_beyond_canvas(profile, _canvas_shares(lines, palette), outward)
    return profile


def _steps(
    rgb: NDArray[np.uint8],
    axis: int,
    first: int,
    last: int,
    span: tuple[int, int],
    samples: int,
) -> tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.float32]]:
    """`_step_profile` without the canvas condition, from `samples` points along the span;
    the lines it was measured on (`_EDGE_DEPTH` more on either side); and the steps it is
    the median of (boundary x sample x channel)."""
    length = rgb.shape[axis]
    first, last = max(first, _EDGE_DEPTH), min(last, length - _EDGE_DEPTH)
    lo, hi = max(span[0], 0), min(span[1], rgb.shape[1 - axis])
    if first > last or hi - lo < 8:
        nothing = np.zeros(0, dtype=np.float32)
        return nothing, np.zeros((0, 0, 3), dtype=np.uint8), nothing.reshape(0, 0, 3)
    stride = max(1, (hi - lo) // samples)
    start, stop = first - _EDGE_DEPTH, last + _EDGE_DEPTH
    if axis == 0:
        lines = rgb[start:stop, lo:hi:stride]
    else:
        lines = rgb[lo:hi:stride, start:stop].transpose(1, 0, 2)
    running = np.zeros((stop - start + 1, *lines.shape[1:]), dtype=np.float32)
    np.cumsum(lines, axis=0, dtype=np.float32, out=running[1:])
    means = running[_EDGE_DEPTH:] - running[:-_EDGE_DEPTH]
    steps = (means[_EDGE_DEPTH:] - means[:-_EDGE_DEPTH]) / _EDGE_DEPTH
    profile: NDArray[np.float32] = np.abs(np.median(steps, axis=1)).max(axis=-1)
    return profile, lines, steps


def _canvas_shares(lines: NDArray[np.uint8], palette: NDArray[np.float32]) -> NDArray[np.float64]:
    """For each run of `_EDGE_DEPTH` lines of `_steps`, the share of its pixels that are
    canvas colours: entry i covers lines i .. i + 2."""
    share = _background_mask(lines.astype(np.float32), palette).mean(axis=1)
    counted = np.zeros(len(share) + 1)
    np.cumsum(share, out=counted[1:])
    shares: NDArray[np.float64] = (counted[_EDGE_DEPTH:] - counted[:-_EDGE_DEPTH]) / _EDGE_DEPTH
    return shares


def _keep_beyond_canvas(
    profile: NDArray[np.float32], shares: NDArray[np.float64], outward: int
) -> None:
    """Zero the boundaries of `profile` whose three outer lines are not mostly canvas."""
    outer = shares[:-_EDGE_DEPTH] if outward < 0 else shares[_EDGE_DEPTH:]
    profile[outer < _OUTER_CANVAS] = 0.0


def _inside_differs(
    rgb: NDArray[np.uint8],
    palette: NDArray[np.float32],
    axis: int,
    position: int,
    outward: int,
    span: tuple[int, int],
) -> bool:
    """Whether the lines just inside a boundary found at `position` are not themselves canvas
    (within `_EXACT_TOLERANCE` of a palette colour): the edge between a bar and the page
    beside it is a straight step with canvas outside too, but canvas inside as well."""
    lo, hi = span
    stride = max(1, (hi - lo) // _EDGE_SAMPLES)
    inner = (
        slice(position, position + _EDGE_DEPTH)
        if outward < 0
        else slice(position - _EDGE_DEPTH, position)
    )
    lines = rgb[inner, lo:hi:stride] if axis == 0 else rgb[lo:hi:stride, inner]
    pixels = np.asarray(lines, dtype=np.float32).reshape(-1, 3)
    exact = np.zeros(len(pixels), dtype=bool)
    for colour in palette:
        exact |= (np.abs(pixels - colour) <= _EXACT_TOLERANCE).all(axis=-1)
    return bool(exact.mean() < 0.5)


def _place_edge(
    rgb: NDArray[np.uint8],
    palette: NDArray[np.float32],
    axis: int,
    guess: int,
    outward: int,
    reach: int,
    extent: int,
    across: tuple[int, int],
    border: int,
) -> tuple[int, bool]:
    """The exact boundary of the content near `guess` on `axis`, and whether it is a
    straight edge. `outward` is -1 for a top or left edge, +1 for a bottom or right one.

    First the strongest step within `reach` of the guess. If none is a clear edge, the
    photo may have a margin of canvas colour (a white sky on a white page) that the
    coarse pass left out: the nearest clear edge outward within `extent` with something
    other than canvas on its inner side is taken. Failing both, the best weak step
    nearby, or the guess itself. Without a clear edge nearby, a guess within `border` of
    the image's border (the coarse box touches it) is the border itself."""
    length = rgb.shape[axis]
    inset = (across[1] - across[0]) // 10
    span = (across[0] + inset, across[1] - inset)  # clear of the corners
    canvas = (palette, outward)
    local = _step_profile(rgb, axis, guess - reach, guess + reach, span, canvas)
    first = max(guess - reach, _EDGE_DEPTH)
    if len(local) and local.max() >= _EDGE_STEP:
        return first + int(np.argmax(local)), True
    if guess <= border or guess >= length - border:
        return (0 if guess <= border else length), False  # the content reaches the border
    if outward < 0:
        lo, hi = guess - extent, guess - reach - 1
    else:
        lo, hi = guess + reach + 1, guess + extent
    far = _step_profile(rgb, axis, lo, hi, span, canvas)
    far_first = max(lo, _EDGE_DEPTH)
    order = range(len(far) - 1, -1, -1) if outward < 0 else range(len(far))
    for index in order:
        if far[index] >= _EDGE_STEP:
            near = slice(max(0, index - _EDGE_DEPTH), index + _EDGE_DEPTH + 1)
            position = far_first + near.start + int(np.argmax(far[near]))
            if _inside_differs(rgb, palette, axis, position, outward, span):
                return position, True
            break
    if len(local) and local.max() >= _WEAK_STEP:
        return first + int(np.argmax(local)), False
    return min(max(guess, 0), length), False


def content_regions(rgb: NDArray[np.uint8], *, max_candidates: int = 4) -> list[Region]:
    """Where photos sit inside a larger canvas (a screenshot, a post between bars and a
    caption, a border, a letterbox, a row of thumbnails): at most `max_candidates` boxes,
    largest first, named "region:content", "region:content-2" …; none when nothing stands
    out from a canvas.

    1. On a copy at most 160 pixels on a side, the canvas colours are those that fill at
       least 4 % of the outermost ring of pixels in flat, steady stretches (a photo that
       reaches the border drifts in colour and lends none); a pixel within 12 levels of
       one of them on every channel is background-like.
    2. The rectangle maximising (other pixels) - 2 x (background-like pixels) holds the
       content: text, icons and bars are too sparse or thin to pay for the canvas between
       them. It is cut along canvas that crosses it (the gap before a caption block, the
       gaps of a row of thumbnails); solid blocks (buttons, placeholders) are dropped.
    3. Each edge is put on the exact pixel boundary of the full image: the strongest
       step nearby that is consistent all along the line with canvas beyond it, or,
       past a photo margin of the canvas's own colour, such a step further out; an edge
       the copy saw at the image's border stays there.
    4. Photos as wide (or as tall) as the image, which have no side edges to find, are
       offered too as the bands between two such edges running from side to side
       (`_bands`), unless one of the boxes above is the same: where a full-width photo's
       side margins are flat, they reach the border as steadily as a bar does, lend
       their colour to the palette, and step 2 keeps only the photo's middle.

    A box is kept when it covers at least 2 % of the image, is not the whole image, at
    least half of what lies outside it (boxes already taken count as explained) is
    background-like, and at least two of its edges are straight steps against the canvas:
    a part of a plain photo that differs from its surroundings is rarely taken for an
    embedded one (3 % of the everyday photos, 1.5 % of the astronomy set, get a box).

    It cannot see an edge that is not there: a photo whose margins have the canvas's exact
    colour on three sides or more (a product shot on a white page, a night scene in a dark
    theme) comes out cropped or not at all. Deterministic; 10-40 ms on a 1920 x 1080
    screenshot on one core of this machine (see bench/results/regions.json).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an array of shape (height, width, 3), got {rgb.shape}")
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_REGION_SIDE:
        return []
    factor = max(1, math.ceil(max(height, width) / _COARSE_SIDE))
    coarse = _reduced(rgb, factor)
    palette, background = _canvas(coarse)
    if len(palette) == 0:
        return []
    weight = np.where(background, -_BACKGROUND_PENALTY, 1.0).astype(np.float32)
    unclaimed = weight.copy()
    rows, cols = weight.shape
    min_side = max(1, MIN_REGION_SIDE // factor - 1)
    boxes: list[tuple[int, int, int, int]] = []
    explained = background.copy()  # canvas, and boxes already taken
    while len(boxes) < max_candidates:
        score, (x0, y0, x1, y1) = _best_rectangle(unclaimed)
        area = (x1 - x0) * (y1 - y0)
        if score <= 0 or area < _MIN_CONTENT_SHARE * rows * cols:
            break
        if x1 - x0 >= _MAX_CONTENT_SHARE * cols and y1 - y0 >= _MAX_CONTENT_SHARE * rows:
            break
        inside = np.zeros_like(background)
        inside[y0:y1, x0:x1] = True
        if explained[~inside].mean() < _MIN_OUTSIDE_BACKGROUND:
            break
        unclaimed[y0:y1, x0:x1] = -_BACKGROUND_PENALTY  # the next search looks elsewhere
        explained[y0:y1, x0:x1] = True
        for piece in _split(background, weight, (x0, y0, x1, y1), min_side):
            left, top, right, bottom = piece
            if (right - left) * (bottom - top) < _MIN_CONTENT_SHARE * rows * cols:
                continue
            if _solid(coarse[top:bottom, left:right], inner=True):
                continue  # a solid block (a button, the next post's placeholder): no photo
            box = _placed(rgb, palette, piece, factor)
            if box is not None and box != (0, 0, width, height):
                boxes.append(box)
    for band in _bands(rgb, coarse, palette, background, factor):
        if not any(_same_box(band, box, width, height) for box in boxes):
            boxes.append(band)
    return [
        Region("region:content" if k == 0 else f"region:content-{k + 1}", *box)
        for k, box in enumerate(boxes[:max_candidates])
    ]


def _solid(block: NDArray[np.float32], *, inner: bool) -> bool:
    """Whether a coarse block is one flat colour (a button, the next post's placeholder)
    rather than a photo: `_SOLID_SHARE` of its pixels (clear of its mixed edge pixels when
    `inner`) lie within `_PALETTE_TOLERANCE` of their median colour."""
    if inner and min(block.shape[:2]) > 2:
        block = block[1:-1, 1:-1]
    pixels = block.reshape(-1, 3)
    if not len(pixels):
        return True
    typical = np.median(pixels, axis=0)
    near = (np.abs(pixels - typical).max(axis=1) <= _PALETTE_TOLERANCE).mean()
    return bool(near >= _SOLID_SHARE)


def _same_box(a: tuple[int, int, int, int], b: tuple[int, int, int, int], w: int, h: int) -> bool:
    """Whether two boxes agree on every edge within `_SAME_EDGE` of the image's side."""
    sides = (w, h, w, h)
    return all(abs(p - q) <= _SAME_EDGE * side for p, q, side in zip(a, b, sides, strict=True))


def _span_edges(profile: NDArray[np.float32], first: int) -> list[int]:
    """Boundaries where `profile` (from `_step_profile`, its first entry at `first`) is a
    clear edge and the strongest within `_EDGE_DEPTH` either side."""
    edges = []
    for index in np.flatnonzero(profile >= _EDGE_STEP):
        near = profile[max(0, index - _EDGE_DEPTH) : index + _EDGE_DEPTH + 1]
        if profile[index] >= near.max():
            edges.append(first + int(index))
    return edges


def _steps_at_both_ends(steps: NDArray[np.float32]) -> bool:
    """Whether a boundary's steps (sample x channel) are clear edges at both ends of the
    line, not only along its middle: content that reaches both sides of the image."""
    strong = np.abs(steps).max(axis=-1) >= _EDGE_STEP
    end = max(2, len(strong) // 16)
    return bool(strong[:end].mean() >= 0.5 and strong[-end:].mean() >= 0.5)


def _bands(
    rgb: NDArray[np.uint8],
    coarse: NDArray[np.float32],
    palette: NDArray[np.float32],
    background: NDArray[np.bool_],
    factor: int,
) -> list[tuple[int, int, int, int]]:
    """Photos as wide as the image (or as tall): bands between two straight edges that run
    the whole width (height) with canvas beyond them, something other than canvas just
    inside, and a photo between them, not text lines or a solid block.

    A photo shown at the full width of a phone has no left or right edge to find, and
    where its margins share a colour with the bars beside it (which lend their colours to
    the canvas palette), the rectangle search cuts it down to its middle; its top and
    bottom edges still run from side to side."""
    found = []
    for axis in (0, 1):
        length, across = rgb.shape[axis], rgb.shape[1 - axis]
        span = (0, across)
        profile, lines, steps = _steps(rgb, axis, 0, length, span, _BAND_SAMPLES)
        if not len(profile):
            continue
        shares = _canvas_shares(lines, palette)
        edges = []
        for outward in (-1, 1):
            beyond = profile.copy()
            _keep_beyond_canvas(beyond, shares, outward)
            edges.append(_span_edges(beyond, _EDGE_DEPTH))
        starts, stops = edges
        starts = [p for p in starts if _inside_differs(rgb, palette, axis, p, -1, span)]
        stops = [p for p in stops if _inside_differs(rgb, palette, axis, p, 1, span)]
        for start in starts:
            stop = next((p for p in stops if p - start >= MIN_REGION_SIDE), None)
            if stop is None or stop - start >= _MAX_CONTENT_SHARE * length:
                continue
            lo, hi = start // factor + 1, stop // factor - 1  # clear of mixed edge pixels
            if hi <= lo:
                continue
            within = (slice(lo, hi), slice(None)) if axis == 0 else (slice(None), slice(lo, hi))
            canvas = background[within]
            if canvas.mean() > 1.0 - _BAND_CONTENT:
                continue  # mostly canvas: lines of text, or the gaps between pictures
            along = np.flatnonzero(canvas.mean(axis=1 - axis) < _SEPARATOR_SHARE)
            if not len(along) or len(along) != along[-1] - along[0] + 1:
                continue  # canvas runs across it between contents: lines of text …
            if not any(_steps_at_both_ends(steps[p - _EDGE_DEPTH]) for p in (start, stop)):
                continue  # canvas goes on past its ends: narrower content, or a row of it
            if _solid(coarse[within][~canvas], inner=False):
                continue  # a placeholder or a coloured block with canvas margins
            found.append((0, start, across, stop) if axis == 0 else (start, 0, stop, across))
    return found


def _runs(keep: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """The [start, stop) runs of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], keep, [False]]).astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _split(
    background: NDArray[np.bool_],
    weight: NDArray[np.float32],
    box: tuple[int, int, int, int],
    min_side: int,
    depth: int = 0,
) -> list[tuple[int, int, int, int]]:
    """A coarse box cut along the canvas that crosses it from side to side (the gap between
    a photo and the next post, the gaps of a row of thumbnails), largest piece first; the
    box itself when nothing does.

    A box cut across only may have been narrowed by what lay below the photo (a caption
    block narrower than a full-width photo): each piece then takes the widest run of
    columns that pays on its own rows, and is cut again (twice at most), as a row of
    thumbnails above a text block is only cut down once the text is cut off. Pieces under
    `min_side` on a side (lines of text) are dropped.
    """
    x0, y0, x1, y1 = box
    within = background[y0:y1, x0:x1]
    column_runs = _runs(within.mean(axis=0) < _SEPARATOR_SHARE)
    pieces = []
    for c0, c1 in column_runs:
        row_runs = _runs(within[:, c0:c1].mean(axis=1) < _SEPARATOR_SHARE)
        for r0, r1 in row_runs:
            left, top, right, bottom = x0 + c0, y0 + r0, x0 + c1, y0 + r1
            if min(right - left, bottom - top) < min_side:
                continue
            if len(column_runs) == 1 and len(row_runs) > 1:
                _, (wide_left, _, wide_right, _) = _best_rectangle(weight[top:bottom])
                if wide_left <= left and wide_right >= right:
                    left, right = wide_left, wide_right
            pieces.append((left, top, right, bottom))
    if depth < 2 and pieces != [box]:
        pieces = [
            part
            for piece in pieces
            for part in _split(background, weight, piece, min_side, depth + 1)
        ]
    pieces.sort(key=lambda p: (-(p[2] - p[0]) * (p[3] - p[1]), p[1], p[0]))
    return pieces


def _placed(
    rgb: NDArray[np.uint8],
    palette: NDArray[np.float32],
    coarse_box: tuple[int, int, int, int],
    factor: int,
) -> tuple[int, int, int, int] | None:
    """A coarse box put onto exact pixel edges (`_place_edge`), or None when fewer than two
    of its edges are straight steps against the canvas, or it is too small to hash."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = coarse_box
    reach = factor + factor // 2 + 2
    left, right = x0 * factor, min(width, x1 * factor)
    top, bottom = y0 * factor, min(height, y1 * factor)
    tall, wide = bottom - top, right - left
    columns, lines = (left, right), (top, bottom)
    top, straight_top = _place_edge(rgb, palette, 0, top, -1, reach, tall, columns, factor)
    bottom, straight_bottom = _place_edge(rgb, palette, 0, bottom, 1, reach, tall, columns, factor)
    left, straight_left = _place_edge(rgb, palette, 1, left, -1, reach, wide, lines, factor)
    right, straight_right = _place_edge(rgb, palette, 1, right, 1, reach, wide, lines, factor)
    straight = straight_top + straight_bottom + straight_left + straight_right
    if straight < 2 or min(right - left, bottom - top) < MIN_REGION_SIDE:
        return None
    return left, top, right, bottom


# --- hashing ------------------------------------------------------------------------------


def _work_copy(rgb: NDArray[np.uint8], work_side: int) -> NDArray[np.uint8]:
    height, width = rgb.shape[:2]
    longest = max(height, width)
    if longest <= work_side:
        return rgb
    size = (max(1, round(width * work_side / longest)), max(1, round(height * work_side / longest)))
    image = Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.BOX)
    return np.asarray(image)


class RegionHasher:
    """Turns an image into the PDQ codes of its regions, for a bank or for a lookup.

    `crops` turns the window families on (both sides: the bank must hold its windows for
    a crop to be caught), `tiles` the grid of tiles (both sides: for overlays), `content`
    the content regions of an upload (lookup side only).
    Windows are cut from, and every region hashed on, a copy at most `work_side` pixels
    on a side (box filter): the same at banking and at lookup, 21 PDQs of a 512-pixel
    image cost far less than of a 12-megapixel one, and recall measured the same at 512
    as at 1024. Codes under `quality_floor` are dropped, as the matcher drops whole-image
    hashes under a bank's floor: a flat region would match any other flat region.
    """

    def __init__(
        self,
        *,
        reference_keeps: Sequence[float] = REFERENCE_KEEPS,
        query_keeps: Sequence[float] = QUERY_KEEPS,
        families: Sequence[str] = FAMILIES,
        crops: bool = True,
        tiles: bool = True,
        content: bool = True,
        work_side: int = DEFAULT_WORK_SIDE,
        quality_floor: int = DEFAULT_QUALITY_FLOOR,
    ) -> None:
        self.reference_keeps = tuple(reference_keeps)
        self.query_keeps = tuple(query_keeps)
        self.families = tuple(families)
        self.crops = crops
        self.tiles = tiles
        self.content = content
        self.work_side = work_side
        self.quality_floor = quality_floor

    def _hash(self, rgb: NDArray[np.uint8], regions: Sequence[Region]) -> Iterator[RegionCode]:
        for region in regions:
            value, quality = hash_pixels(_work_copy(region.crop(rgb), self.work_side))
            if quality >= self.quality_floor:
                yield RegionCode(region, value, quality)

    def reference(self, rgb: NDArray[np.uint8]) -> list[RegionCode]:
        """The region codes a bank stores for a banked image (not its whole-image code)."""
        return self._windows_and_tiles(rgb, self.reference_keeps)

    def query(self, rgb: NDArray[np.uint8]) -> list[RegionCode]:
        """The region codes an upload is also looked up with (not its whole-image code)."""
        found = self._windows_and_tiles(rgb, self.query_keeps)
        if self.content:
            found += self._hash(rgb, content_regions(rgb))
        return found

    def _windows_and_tiles(
        self, rgb: NDArray[np.uint8], keeps: Sequence[float]
    ) -> list[RegionCode]:
        """The crop windows keeping `keeps` of a side, then the tiles, as switched on."""
        if not (self.crops or self.tiles):
            return []
        work = _work_copy(rgb, self.work_side)
        height, width = work.shape[:2]
        regions = _family_windows(width, height, keeps, self.families) if self.crops else []
        if self.tiles:
            regions += tile_regions(width, height)
        return list(self._hash(work, regions))


# --- methods for the evaluation harness ----------------------------------------------------


def _rgb(image: Image.Image) -> NDArray[np.uint8]:
    return np.asarray(image.convert("RGB"))


def _unique(codes: Iterable[bytes]) -> list[bytes]:
    return list(dict.fromkeys(codes))


def _unique_named(codes: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Each (name, code) once: a code found under two names (a content region that is also
    a window) keeps both, as the two names meet different bank codes."""
    return list(dict.fromkeys(codes))


class PdqRegionsMethod:
    """For `lightkeeper.evaluation`: a bank with regions on holds the whole image's PDQ and
    the codes of `reference_regions`; an upload is looked up with its whole PDQ (or, with
    `dihedral`, its eight rotations and flips), `query_windows` and `content_regions`.

    It is a paired method (`lightkeeper.evaluation.methods.PairedMethod`): its codes carry
    names ("whole", "whole:1" … for the rotations and flips, region names) and the harness
    counts only the pairs `compatible` allows, as the matcher does."""

    signal_type = "pdq"

    def __init__(self, *, dihedral: bool = False, hasher: RegionHasher | None = None) -> None:
        self.name = "pdq+regions+dihedral" if dihedral else "pdq+regions"
        self.dihedral = dihedral
        self.hasher = hasher or RegionHasher()

    # The whole image's codes come from the harness's `pdq_of`, which keeps the PDQ of the
    # last images it hashed: the harness has just hashed this copy for its quality and for
    # plain PDQ, and one PDQ of a 1024-pixel copy costs as much as all its tiles.

    def named_reference_codes(self, image: Image.Image) -> list[tuple[str, bytes]]:
        from lightkeeper.evaluation.methods import pdq_of

        regions = [(code.name, code.code) for code in self.hasher.reference(_rgb(image))]
        return _unique_named([("whole", pdq_of(image).code), *regions])

    def named_query_codes(self, image: Image.Image) -> list[tuple[str, bytes]]:
        from lightkeeper.evaluation.methods import pdq_of

        whole = pdq_of(image)
        wholes = [whole.code, *whole.variants[1:]] if self.dihedral else [whole.code]
        named = [("whole" if i == 0 else f"whole:{i}", code) for i, code in enumerate(wholes)]
        named += [(code.name, code.code) for code in self.hasher.query(_rgb(image))]
        return _unique_named(named)

    def reference_codes(self, image: Image.Image) -> list[bytes]:
        return _unique(code for _, code in self.named_reference_codes(image))

    def query_codes(self, image: Image.Image) -> list[bytes]:
        return _unique(code for _, code in self.named_query_codes(image))

    def compatible(self, reference: str, query: str) -> bool:
        """`compatible`: the pairs the matcher counts."""
        return compatible(reference, query)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class PdqTilesMethod(PdqRegionsMethod):
    """PDQ plus the grid of tiles on both sides (`tile_regions`), each tile meeting only the
    tile at its position: what catches a caption or sticker over part of the picture."""

    def __init__(self, *, dihedral: bool = False) -> None:
        hasher = RegionHasher(crops=False, tiles=True, content=False)
        super().__init__(dihedral=dihedral, hasher=hasher)
        self.name = "pdq+tiles+dihedral" if dihedral else "pdq+tiles"


class PdqContentMethod(PdqRegionsMethod):
    """PDQ plus the upload's content regions only: what a bank that holds nothing but
    whole-image hashes (an imported hash list) gains. It catches embeddings, not crops."""

    def __init__(self, *, dihedral: bool = False) -> None:
        hasher = RegionHasher(crops=False, tiles=False, content=True)
        super().__init__(dihedral=dihedral, hasher=hasher)
        self.name = "pdq+content+dihedral" if dihedral else "pdq+content"
