"""PDQ file-to-hash speed and agreement, Lightkeeper beside the reference pipeline, in one run.

Reference pipeline: Pillow full decode -> RGB array -> `pdqhash.compute` (Meta's C++ via its
PyPI binding). Lightkeeper: `decode_image` (format sniffing, limits, EXIF orientation, DCT-domain
reduced decoding for large JPEGs) -> `PdqSignal.from_image`. Both run on one core, each image
timed `--repeat` times (median kept), from the file path (page cache warm).

    python bench/hashing_bench.py [--repeat 5] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, corpus_dir, machine, percentile, pin_one_core, write_results

pin_one_core()

import numpy as np  # noqa: E402
import pdqhash  # noqa: E402
import pillow_heif  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from lightkeeper.media.decode import decode_image  # noqa: E402
from lightkeeper.signals.pdq import PdqSignal  # noqa: E402

pillow_heif.register_heif_opener()
PDQ = PdqSignal()


def bits_to_hex(bits: Any) -> str:
    return f"{int(''.join('1' if b else '0' for b in bits), 2):064x}"


def reference_pdq(path: Path) -> tuple[str, int]:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    bits, quality = pdqhash.compute(rgb)
    return bits_to_hex(bits), int(quality)


def lightkeeper_pdq(path: Path) -> tuple[str, int]:
    signal = PDQ.from_image(decode_image(path.read_bytes()))
    # The reference ignores EXIF orientation; compare like with like: Lightkeeper's hash of
    # the pixels as stored (given beside the displayed one when a file is rotated).
    return signal.as_stored or signal.value, int(signal.quality or 0)


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def timed(fn: Callable[[Path], tuple[str, int]], path: Path, repeat: int) -> tuple[float, str, int]:
    times = []
    result: tuple[str, int] = ("", 0)
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(path)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result[0], result[1]


def megapixels(path: Path) -> float:
    with Image.open(path) as im:
        return im.size[0] * im.size[1] / 1e6


def progressive(path: Path) -> bool:
    with Image.open(path) as im:
        return bool(im.info.get("progressive") or im.info.get("progression"))


def build_sets(tmp: Path, quick: bool) -> dict[str, list[Path]]:
    corpus = corpus_dir()
    photos = sorted(corpus.glob("A_deb_terrestrial/*"))
    phones = sorted((SHARED / "pdq-vectors" / "exif-rotn").glob("*.jpg"))
    jpegs = [p for p in photos if p.suffix.lower() in (".jpg", ".jpeg")]
    big = phones + [p for p in jpegs if 9 <= megapixels(p) <= 20]
    small = [p for p in jpegs if 0.8 <= megapixels(p) <= 1.3]
    # 1 MP re-encodes of the 12 MP phone photos: what a platform's resize pipeline produces.
    for p in phones:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im)
            im.thumbnail((1200, 1200))
            out = tmp / f"{p.stem}-1mp.jpg"
            im.save(out, quality=90)
            small.append(out)
    pngs = [p for p in photos if p.suffix.lower() == ".png" and 0.5 <= megapixels(p) <= 14][:16]
    heics = []
    for p in phones[:2] + small[:4]:
        with Image.open(p) as im:
            out = tmp / f"{p.stem}.heic"
            ImageOps.exif_transpose(im).save(out, quality=90)
            heics.append(out)
    webps = [p for p in photos if p.suffix.lower() == ".webp"][:12]
    # Progressive JPEGs (common on the web; phones write baseline) decode several times slower
    # in libjpeg whatever the scale, so they are reported apart.
    sets = {
        "jpeg-12mp baseline": [p for p in big if not progressive(p)],
        "jpeg-12mp progressive": [p for p in big if progressive(p)],
        "jpeg-1mp baseline": [p for p in small if not progressive(p)],
        "jpeg-1mp progressive": [p for p in small if progressive(p)],
        "png": pngs,
        "heic": heics,
        "webp": webps,
    }
    if quick:
        sets = {k: v[:3] for k, v in sets.items()}
    return sets


def conformance() -> dict[str, Any]:
    """Lightkeeper's file-level hashes against the reference hasher's published outputs."""
    vectors = SHARED / "pdq-vectors"
    rows = []
    with (vectors / "expected.csv").open() as fh:
        for row in csv.DictReader(fh):
            path = vectors / row["file"]
            # The reference hasher ignores EXIF orientation; compare its hash with
            # Lightkeeper's hash of the pixels as stored.
            signal = PDQ.from_image(decode_image(path.read_bytes()))
            ours = signal.as_stored or signal.value
            rows.append(
                {
                    "file": row["file"],
                    "quality": signal.quality,
                    "distance": distance(ours, row["pdq"]),
                }
            )
    good = [r["distance"] for r in rows if (r["quality"] or 0) >= 80]
    return {
        "files": rows,
        "quality_ge_80": {"n": len(good), "median": statistics.median(good), "max": max(good)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 files per set")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmpdir:
        sets = build_sets(Path(tmpdir), args.quick)
        per_image: list[dict[str, Any]] = []
        summary: dict[str, dict[str, Any]] = {}
        for name, files in sets.items():
            rows = []
            for path in files:
                ref_ms, ref_hash, ref_q = timed(reference_pdq, path, args.repeat)
                our_ms, our_hash, our_q = timed(lightkeeper_pdq, path, args.repeat)
                row = {
                    "set": name,
                    "file": path.name,
                    "megapixels": round(megapixels(path), 2),
                    "bytes": path.stat().st_size,
                    "reference_ms": round(ref_ms, 2),
                    "lightkeeper_ms": round(our_ms, 2),
                    "speedup": round(ref_ms / our_ms, 1),
                    "distance": distance(our_hash, ref_hash),
                    "reference_quality": ref_q,
                    "lightkeeper_quality": our_q,
                }
                rows.append(row)
                print(
                    f"{name:22} {row['file'][:36]:36} {row['megapixels']:6.2f} MP "
                    f"ref {ref_ms:8.1f} ms  lk {our_ms:7.2f} ms  x{row['speedup']:<6} "
                    f"d={row['distance']}",
                    flush=True,
                )
            per_image += rows
            ours = [r["lightkeeper_ms"] for r in rows]
            refs = [r["reference_ms"] for r in rows]
            dists = [r["distance"] for r in rows if r["reference_quality"] >= 80]
            summary[name] = {
                "n": len(rows),
                "lightkeeper_ms_p50": round(percentile(ours, 50), 2),
                "lightkeeper_ms_p90": round(percentile(ours, 90), 2),
                "reference_ms_p50": round(percentile(refs, 50), 2),
                "speedup_p50": round(percentile([r["speedup"] for r in rows], 50), 1),
                "speedup_min": min(r["speedup"] for r in rows),
                "distance_p50": statistics.median(dists) if dists else None,
                "distance_max": max(dists) if dists else None,
            }
    conf = conformance()
    payload = {"machine": machine(), "summary": summary, "conformance": conf, "images": per_image}
    lines = [
        "## PDQ hashing: file to hash, one core",
        "",
        f"`python bench/hashing_bench.py --repeat {args.repeat}` on {payload['machine']['cpu']}, "
        f"{payload['machine']['date']}. Reference = Pillow full decode + `pdqhash` (Meta's C++).",
        "Times are medians per image; the table gives the median (p50) and p90 over the images "
        "of each set. Distance = bits between Lightkeeper's and the reference pipeline's hash "
        "(images of quality ≥ 80).",
        "",
        "| set | images | Lightkeeper p50 | p90 | reference p50 | speed-up p50 (min) | "
        "distance p50 / max |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['n']} | {s['lightkeeper_ms_p50']} ms | {s['lightkeeper_ms_p90']} ms | "
            f"{s['reference_ms_p50']} ms | {s['speedup_p50']}× ({s['speedup_min']}×) | "
            f"{s['distance_p50']} / {s['distance_max']} |"
        )
    q = conf["quality_ge_80"]
    lines += [
        "",
        f"Conformance with `shared/pdq-vectors/expected.csv` (the reference hasher's output, "
        f"{q['n']} files of quality ≥ 80): median {q['median']} bits, max {q['max']} bits.",
    ]
    write_results("hashing", payload, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
