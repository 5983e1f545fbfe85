"""Crops and screenshot embeddings: PDQ alone against PDQ with regions, on the real photos.

For every everyday photo (scaled to at most 1024 px first) it makes seeded copies:

- crops of 2, 5, 10, 15, 20, 30 and 40 % of the side, in five shapes:
  ``edge`` (all of it at one edge; left, right, top and bottom each), ``opposite`` (half at
  each of two opposite edges; both axes), ``centre`` (half at each of the four edges: the
  centred window keeping 1 - p of each side), ``uneven`` (p of each side, split at a random
  point between its two edges: an arbitrary user crop) and ``corner`` (p at two adjacent
  edges; top-left and bottom-right);
- a ``sweep``: per photo, one edge, one opposite, one centre and one uneven crop of a
  random p in [2 %, 20 %], so that recall is not judged only at the listed strengths;
- two ``screenshot`` embeddings: the photo scaled to 30-80 % of a 1080 x 1920 or
  1920 x 1080 canvas, with status and navigation bars, a header, a caption, noise or a
  gradient in the canvas, saved as PNG or re-encoded as JPEG (quality 80-95).

It reports recall at threshold 31 for PDQ alone (whole image against whole image) and
for the region methods of `lightkeeper.signals.regions` (min distance over every
reference code x every query code), the false matches and the minimum distance over all
pairs of distinct photos (everyday set, then the astronomy stress set, never pooled), the
codes per banked image and the extra time per upload.

    nice -n 19 python bench/regions_bench.py [--every K] [--work-side 1024]

Writes bench/results/regions.json and prints a markdown summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, corpus_dir, machine, percentile, pin_one_core

pin_one_core()

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from PIL import Image, ImageDraw, ImageFont, ImageOps  # noqa: E402

from lightkeeper.signals.pdq import hash_pixels, hash_pixels_dihedral, hex_to_code  # noqa: E402
from lightkeeper.signals.regions import (  # noqa: E402
    DEFAULT_WORK_SIDE,
    FAMILIES,
    RegionHasher,
    compatible,
    content_regions,
    family_of,
)

THRESHOLD = 31
#: The evaluation harness's own screenshot and border copies, where it is installed, so that
#: this script and `lightkeeper eval` measure the same layouts.
try:
    from lightkeeper.evaluation.transforms import standard_suite

    HARNESS = tuple(t for t in standard_suite() if t.family in ("screenshot", "border"))
except ImportError:  # the harness is not there yet
    HARNESS = ()
QUALITY_FLOOR = 50
#: The crop shapes the default regions are built for (up to 20 %); the others are measured
#: to show what they do not catch.
TARGETED = ("crop-edge", "crop-opposite", "crop-centre")
STRENGTHS = (0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.40)
MAX_SIDE = 1024
RGB = NDArray[np.uint8]
Box = tuple[float, float, float, float]  # cut fractions: left, right, top, bottom


# --- corpus -------------------------------------------------------------------------------


def load_set(root: Path, every: int) -> dict[str, RGB]:
    photos = {}
    for path in sorted(root.iterdir())[::every]:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            photos[path.name] = np.asarray(image)
    return photos


# --- transforms ---------------------------------------------------------------------------


def cut(rgb: RGB, box: Box) -> RGB:
    left, right, top, bottom = box
    height, width = rgb.shape[:2]
    return rgb[
        round(top * height) : height - round(bottom * height),
        round(left * width) : width - round(right * width),
    ]


def crop_boxes(p: float, rng: np.random.Generator) -> dict[str, list[tuple[str, Box]]]:
    u, v = rng.uniform(0.2, 0.8, size=2)
    return {
        "edge": [
            ("left", (p, 0, 0, 0)),
            ("right", (0, p, 0, 0)),
            ("top", (0, 0, p, 0)),
            ("bottom", (0, 0, 0, p)),
        ],
        "opposite": [("x", (p / 2, p / 2, 0, 0)), ("y", (0, 0, p / 2, p / 2))],
        "centre": [("all", (p / 2, p / 2, p / 2, p / 2))],
        "uneven": [("all", (p * u, p * (1 - u), p * v, p * (1 - v)))],
        "corner": [("top-left", (p, 0, p, 0)), ("bottom-right", (0, p, 0, p))],
    }


_FONTS: dict[int, Any] = {}


def font(size: int) -> Any:
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def _words(rng: np.random.Generator, n: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(
        "".join(letters[i] for i in rng.integers(0, 26, size=int(rng.integers(2, 9))))
        for _ in range(n)
    )


@dataclass
class Screenshot:
    pixels: RGB
    box: tuple[int, int, int, int]  # where the photo lies: left, top, right, bottom
    style: dict[str, Any] = field(default_factory=dict)


def screenshot(photo: RGB, rng: np.random.Generator, portrait: bool) -> Screenshot:
    """The photo in a phone or desktop screenshot: bars, a header, a caption, a canvas that
    is flat, noisy or a gradient, then PNG (as is) or JPEG re-encoding."""
    width, height = (1080, 1920) if portrait else (1920, 1080)
    theme = str(rng.choice(["light", "dark", "tinted"]))
    base = {
        "light": np.array([250, 250, 250]),
        "dark": np.array([18, 18, 22]),
        "tinted": rng.integers(150, 240, size=3),
    }[theme]
    texture = str(rng.choice(["flat", "noise", "gradient"]))
    canvas = np.broadcast_to(base.astype(np.float32), (height, width, 3)).copy()
    if texture == "gradient":
        canvas += np.linspace(-18, 18, height, dtype=np.float32)[:, None, None]
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    ink = (20, 20, 20) if theme != "dark" else (230, 230, 230)
    bar = tuple(int(c) for c in rng.integers(0, 256, size=3))
    status_h, nav_h = round(0.035 * height), round(0.06 * height)
    draw.rectangle((0, 0, width, status_h), fill=bar)
    draw.text((20, status_h // 4), "12:34", fill=(255, 255, 255), font=font(status_h // 2))
    for i in range(3):
        x = width - 40 - 40 * i
        draw.rectangle((x, status_h // 3, x + 24, 2 * status_h // 3), fill=(255, 255, 255))
    draw.rectangle((0, height - nav_h, width, height), fill=bar)
    for i in range(5):
        cx = (i + 0.5) * width / 5
        draw.ellipse((cx - 18, height - nav_h / 2 - 18, cx + 18, height - nav_h / 2 + 18), fill=ink)
    # The photo, scaled to `scale` of the space between the bars, placed at random.
    scale = float(rng.uniform(0.3, 0.8))
    free_h = height - status_h - nav_h - 200
    ph, pw = photo.shape[:2]
    factor = scale * min(width / pw, free_h / ph)
    new_w, new_h = max(8, round(pw * factor)), max(8, round(ph * factor))
    left = int(rng.integers(0, width - new_w + 1))
    top = status_h + 100 + int(rng.integers(0, free_h - new_h + 1))
    resized = Image.fromarray(photo).resize((new_w, new_h), Image.Resampling.LANCZOS)
    image.paste(resized, (left, top))
    # A header above and a caption below, clear of the photo by 16 px.
    draw.ellipse((max(0, left), top - 90, max(0, left) + 64, top - 26), fill=bar)
    draw.text((max(0, left) + 80, top - 78), _words(rng, 2), fill=ink, font=font(32))
    for line in range(3):
        y = top + new_h + 16 + 44 * line
        if y + 40 < height - nav_h:
            draw.text((20, y), _words(rng, 6), fill=ink, font=font(34))
    pixels = np.asarray(image)
    if texture == "noise":
        noise = rng.normal(0, 3, size=pixels.shape)
        pixels = np.clip(pixels + noise, 0, 255).astype(np.uint8)
    encoding = "png" if rng.random() < 0.5 else f"jpeg{int(rng.integers(80, 96))}"
    if encoding.startswith("jpeg"):
        import io

        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=int(encoding[4:]))
        pixels = np.asarray(Image.open(buffer).convert("RGB"))
    style = {"theme": theme, "texture": texture, "scale": round(scale, 3), "encoding": encoding}
    return Screenshot(pixels, (left, top, left + new_w, top + new_h), style)


# --- codes and distances ------------------------------------------------------------------

#: Each code carries a tag: 0 the whole image (or a rotation or flip of it), 1.. a window
#: family (`FAMILIES` order), 99 a content region. `ALLOWED[reference tag, query tag]` is
#: `compatible()` of the library, for the "paired" reading of a method: a matcher that
#: counts only (bank code, upload code) pairs that can meet, instead of all of them.
TAG_NAMES = {0: "whole", 99: "region:content"} | {
    k + 1: f"region:{family}-50" for k, family in enumerate(FAMILIES)
}
ALLOWED = np.zeros((100, 100), dtype=bool)
for _r, _rn in TAG_NAMES.items():
    for _q, _qn in TAG_NAMES.items():
        ALLOWED[_r, _q] = compatible(_rn, _qn)
FAR = 10_000


def tag_of(name: str) -> int:
    family = family_of(name)
    if family is None:
        return 0
    return 99 if family == "content" else FAMILIES.index(family) + 1


@dataclass
class Codes:
    words: NDArray[np.uint64]  # (n, 4)
    tags: NDArray[np.int16]  # (n,)

    @classmethod
    def of(cls, named: Iterable[tuple[int, bytes]]) -> Codes:
        unique = list(dict.fromkeys(named))
        words = np.frombuffer(b"".join(c for _, c in unique), dtype=np.uint64).reshape(-1, 4)
        return cls(words, np.array([t for t, _ in unique], dtype=np.int16))

    def __len__(self) -> int:
        return len(self.tags)


def _distances(a: Codes, b: Codes, paired: bool) -> NDArray[np.int32]:
    d = np.bitwise_count(a.words[:, None, :] ^ b.words[None, :, :]).sum(-1, dtype=np.int32)
    if paired:
        d = np.where(ALLOWED[a.tags[:, None], b.tags[None, :]], d, FAR)
    return d


def min_distance(a: Codes, b: Codes, paired: bool = False) -> int:
    return int(_distances(a, b, paired).min())


def pair_minima(refs: list[Codes], queries: list[Codes], paired: bool = False) -> NDArray[np.int32]:
    """M[i, j] = min distance between any reference code of photo i and any query code of
    photo j (only compatible pairs when `paired`)."""
    q_all = Codes(
        np.concatenate([q.words for q in queries]), np.concatenate([q.tags for q in queries])
    )
    q_starts = np.cumsum([0] + [len(q) for q in queries[:-1]])
    out = np.empty((len(refs), len(queries)), dtype=np.int32)
    for i, ref in enumerate(refs):
        out[i] = np.minimum.reduceat(_distances(ref, q_all, paired).min(axis=0), q_starts)
    return out


def whole_code(rgb: RGB) -> bytes:
    return hex_to_code(hash_pixels(rgb)[0])


@dataclass
class Method:
    """Reference and query codes of one configuration, timed. With `paired`, its distances
    are also reported the paired way, under the name `paired`."""

    name: str
    hasher: RegionHasher | None
    dihedral: bool = False
    paired: str | None = None
    query_seconds: list[float] = field(default_factory=list)
    content_seconds: list[float] = field(default_factory=list)
    reference_seconds: list[float] = field(default_factory=list)

    def readings(self) -> list[tuple[str, bool]]:
        return [(self.name, False)] + ([(self.paired, True)] if self.paired else [])

    def reference(self, rgb: RGB) -> Codes:
        codes = [(0, whole_code(rgb))]
        if self.hasher is not None:
            start = time.perf_counter()
            codes += [(tag_of(c.name), c.code) for c in self.hasher.reference(rgb)]
            self.reference_seconds.append(time.perf_counter() - start)
        return Codes.of(codes)

    def query(self, rgb: RGB, timed: bool = False) -> Codes:
        if self.dihedral:
            codes = [(0, hex_to_code(v)) for v in hash_pixels_dihedral(rgb)[0]]
        else:
            codes = [(0, whole_code(rgb))]
        whole_done = time.perf_counter()
        if self.hasher is not None:
            codes += [(tag_of(c.name), c.code) for c in self.hasher.query(rgb)]
        if timed:
            self.query_seconds.append(time.perf_counter() - whole_done)
            if self.hasher is not None and self.hasher.content:
                t = time.perf_counter()
                content_regions(rgb)
                self.content_seconds.append(time.perf_counter() - t)
        return Codes.of(codes)


# --- the run ------------------------------------------------------------------------------


def recall_table(
    photos: dict[str, RGB], methods: list[Method], seed: int, timed_every: int
) -> tuple[dict[str, Any], dict[str, list[NDArray[np.uint64]]], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    refs: dict[str, list[Codes]] = {m.name: [] for m in methods}
    rows: list[dict[str, Any]] = []
    transformed: dict[str, list[Codes]] = {m.name: [] for m in methods}
    owners: list[int] = []
    finder: list[dict[str, Any]] = []
    for index, (name, rgb) in enumerate(photos.items()):
        quality = hash_pixels(rgb)[1]
        mine = {m.name: m.reference(rgb) for m in methods}
        for m in methods:
            refs[m.name].append(mine[m.name])
        queries: list[tuple[str, str, float, RGB]] = []
        for p in STRENGTHS:
            for kind, boxes in crop_boxes(p, rng).items():
                queries += [(f"crop-{kind}", where, p, cut(rgb, box)) for where, box in boxes]
        sweep = float(rng.uniform(0.02, 0.20))
        for kind in ("edge", "opposite", "centre", "uneven"):
            choices = crop_boxes(sweep, rng)[kind]
            where, box = choices[int(rng.integers(0, len(choices)))]
            queries.append((f"sweep-{kind}", where, sweep, cut(rgb, box)))
        for portrait in (True, False):
            shot = screenshot(rgb, rng, portrait)
            found = content_regions(shot.pixels)
            error = None
            if found:
                r = found[0]
                edges = (r.left, r.top, r.right, r.bottom)
                error = max(abs(a - b) for a, b in zip(edges, shot.box, strict=True))
            finder.append({"photo": name, **shot.style, "edge_error_px": error})
            label = "portrait" if portrait else "landscape"
            queries.append(("screenshot", label, shot.style["scale"], shot.pixels))
        for harness in HARNESS:
            copy = harness.apply(Image.fromarray(rgb), rng)
            queries.append((f"harness-{harness.family}", harness.strength, 0.0, np.asarray(copy)))
        for q_index, (transform, where, strength, pixels) in enumerate(queries):
            row: dict[str, Any] = {
                "photo": name,
                "quality": quality,
                "transform": transform,
                "where": where,
                "strength": strength,
            }
            for m in methods:
                timed = index % timed_every == 0 and (
                    q_index % 7 == 0 or transform.endswith("screenshot")
                )
                codes = m.query(pixels, timed=timed)
                for reading, paired in m.readings():
                    row[reading] = min_distance(mine[m.name], codes, paired)
                if transform.startswith(("sweep", "screenshot", "harness")):
                    transformed[m.name].append(codes)
                    if m is methods[0]:
                        owners.append(index)
            rows.append(row)
        print(f"  {index + 1}/{len(photos)} {name}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    # Transformed uploads (sweep crops and screenshots) against every other photo's codes.
    unrelated_transformed: dict[str, Any] = {}
    owner = np.array(owners)
    for m in methods:
        for reading, paired in m.readings():
            minima = pair_minima(refs[m.name], transformed[m.name], paired)
            minima[owner, np.arange(len(owner))] = FAR
            unrelated_transformed[reading] = {
                "pairs": int(minima.size - len(owner)),
                "min_distance": int(minima.min()),
                "false_matches": int((minima <= THRESHOLD).sum()),
            }
    return (
        {"rows": rows, "finder": finder, "unrelated_transformed": unrelated_transformed},
        refs,
        [],
    )


def unrelated(photos: dict[str, RGB], methods: list[Method]) -> dict[str, Any]:
    """Every reference code of each photo against every query code of every other photo."""
    out: dict[str, Any] = {}
    for m in methods:
        refs = [m.reference(rgb) for rgb in photos.values()]
        queries = [m.query(rgb) for rgb in photos.values()]
        for reading, paired in m.readings():
            minima = pair_minima(refs, queries, paired)
            np.fill_diagonal(minima, FAR)
            # A pair is one unordered pair of distinct photos, matched either way round.
            sym = np.minimum(minima, minima.T)[np.triu_indices(len(refs), k=1)]
            counts = np.bincount(np.minimum(sym, 256), minlength=257)
            out[reading] = {
                "pairs": int(sym.size),
                "min_distance": int(sym.min()),
                "false_matches": int((sym <= THRESHOLD).sum()),
                "within_40": int((sym <= 40).sum()),
                "within_60": int((sym <= 60).sum()),
                "histogram": counts[:129].tolist(),
                "codes_per_reference": statistics.mean(len(r) for r in refs),
                "codes_per_query": statistics.mean(len(q) for q in queries),
            }
    return out


def summarise(rows: list[dict[str, Any]], names: list[str], min_quality: int = 0) -> dict[str, Any]:
    groups: dict[str, dict[str, list[int]]] = {}
    for row in rows:
        if row["quality"] < min_quality:
            continue
        if row["transform"].startswith("crop"):
            key = f"{row['transform']} {round(row['strength'] * 100)}%"
        elif row["transform"].startswith("harness"):
            key = f"{row['transform']} {row['where']}"
        else:
            key = row["transform"]
        for n in names:
            groups.setdefault(key, {}).setdefault(n, []).append(row[n])
    return {
        key: {
            n: {
                "n": len(d),
                "recall": sum(x <= THRESHOLD for x in d) / len(d),
                "recall_at": {t: sum(x <= t for x in d) / len(d) for t in (16, 24, 31, 40)},
                "median_distance": statistics.median(d),
            }
            for n, d in per.items()
        }
        for key, per in groups.items()
    }


def timing(method: Method) -> dict[str, float]:
    q = [s * 1e3 for s in method.query_seconds]
    c = [s * 1e3 for s in method.content_seconds]
    r = [s * 1e3 for s in method.reference_seconds]
    return {
        "reference_ms_p50": round(statistics.median(r), 2) if r else 0.0,
        "queries_timed": len(q),
        "extra_query_ms_p50": round(statistics.median(q), 2) if q else 0.0,
        "extra_query_ms_p90": round(percentile(q, 90), 2) if q else 0.0,
        "extra_query_ms_p99": round(percentile(q, 99), 2) if q else 0.0,
        "content_finder_ms_p50": round(statistics.median(c), 2) if c else 0.0,
        "content_finder_ms_p90": round(percentile(c, 90), 2) if c else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--every", type=int, default=1, help="use every k-th photo (speed)")
    parser.add_argument("--work-side", type=int, default=DEFAULT_WORK_SIDE)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--skip-astro", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "regions.json")
    args = parser.parse_args(argv)

    corpus = corpus_dir()
    started = time.perf_counter()
    everyday = load_set(corpus / "A_deb_terrestrial", args.every)
    hasher = RegionHasher(work_side=args.work_side)
    methods = [
        Method("pdq", None),
        Method("pdq+content", RegionHasher(crops=False, tiles=False, work_side=args.work_side)),
        Method("pdq+regions", hasher, paired="pdq+regions/paired"),
    ]
    names = [reading for m in methods for reading, _ in m.readings()]
    print(f"{len(everyday)} everyday photos; recall …", file=sys.stderr)
    recall, _, _ = recall_table(everyday, methods, args.seed, timed_every=3)
    table = summarise(recall["rows"], names)
    table_floor = summarise(recall["rows"], names, min_quality=QUALITY_FLOOR)
    misses = [
        row
        for row in recall["rows"]
        if row["pdq+regions/paired"] > THRESHOLD
        and (
            row["transform"] in ("sweep-edge", "sweep-opposite", "sweep-centre", "screenshot")
            or row["transform"].startswith("harness")
            or (row["transform"] in TARGETED and row["strength"] <= 0.2)
        )
    ]
    print("false matches, everyday …", file=sys.stderr)
    with_variants = [
        *methods,
        Method("pdq+regions+dihedral", hasher, dihedral=True, paired="pdq+regions+dihedral/paired"),
    ]
    fm_everyday = unrelated(everyday, with_variants)
    fm_astro: dict[str, Any] = {}
    if not args.skip_astro:
        astro = load_set(corpus / "A_deb_astro", args.every)
        print(f"false matches, {len(astro)} astro photos …", file=sys.stderr)
        fm_astro = unrelated(astro, with_variants)
    payload = {
        "machine": machine(),
        "settings": {
            "threshold": THRESHOLD,
            "every": args.every,
            "work_side": args.work_side,
            "reference_keeps": [round(k, 4) for k in hasher.reference_keeps],
            "query_keeps": [round(k, 4) for k in hasher.query_keeps],
            "families": list(hasher.families),
            "seed": args.seed,
        },
        "recall": table,
        "recall_quality_50_or_more": table_floor,
        "photos_under_quality_floor": sorted(
            {r["photo"] for r in recall["rows"] if r["quality"] < QUALITY_FLOOR}
        ),
        "misses_targeted": misses,
        "content_finder": recall["finder"],
        "unrelated_transformed_everyday": recall["unrelated_transformed"],
        "false_matches_everyday": fm_everyday,
        "false_matches_astro": fm_astro,
        "timing": {m.name: timing(m) for m in methods if m.hasher is not None},
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(markdown(payload, names))
    return 0


def markdown(payload: dict[str, Any], names: list[str]) -> str:
    lines = ["| transform | n | " + " | ".join(f"{n} recall" for n in names) + " |"]
    lines.append("|---|---:|" + "---:|" * len(names))
    for key, per in payload["recall"].items():
        n = per[names[0]]["n"]
        cells = " | ".join(f"{per[m]['recall'] * 100:.1f} %" for m in names)
        lines.append(f"| {key} | {n} | {cells} |")
    lines.append("")
    lines.append(
        "| unrelated pairs | method | pairs | min distance | false matches ≤ 31 "
        "| codes/ref | codes/query |"
    )
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for label in ("everyday", "astro"):
        for n, fm in payload[f"false_matches_{label}"].items():
            lines.append(
                f"| {label} | {n} | {fm['pairs']} | {fm['min_distance']} | {fm['false_matches']} "
                f"| {fm['codes_per_reference']:.1f} | {fm['codes_per_query']:.1f} |"
            )
    for n, fm in payload["unrelated_transformed_everyday"].items():
        lines.append(
            f"| everyday, transformed uploads | {n} | {fm['pairs']} | {fm['min_distance']} "
            f"| {fm['false_matches']} | | |"
        )
    lines.append("")
    for n, t in payload["timing"].items():
        lines.append(f"- {n}: {t}")
    errors = [f["edge_error_px"] for f in payload["content_finder"]]
    found = [e for e in errors if e is not None]
    if found:
        lines.append(
            f"- content finder: found {len(found)}/{len(errors)} embedded photos; "
            f"every edge within 3 px in {sum(e <= 3 for e in found)}, "
            f"median worst-edge error {statistics.median(found)} px"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
