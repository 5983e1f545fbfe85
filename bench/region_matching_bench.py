"""What region matching costs per upload and per banked image, end to end through `Matcher`.

For `--photos` everyday photos of the corpus, each scaled to about 1 megapixel and saved as
JPEG (quality 90), and each also pasted at half size into a 1 MP screenshot-like PNG (flat
canvas, bars), it times `Matcher.match_bytes` (hashing, lookups, evidence) with every photo
banked in a bank with regions off, then again with the bank's regions on and every photo
banked with its region codes. The index is tiny, so the difference is the extra decoding and
hashing (full-resolution decode, 21 window PDQs, the content finder) plus the extra lookups.

    nice -n 19 python bench/region_matching_bench.py [--photos 20] [--repeat 5]

Prints a JSON summary (milliseconds of CPU time, which other load on the machine does not
inflate as it does wall time; median and 90th percentile over photos of each photo's median
over repeats) and writes bench/results/region_matching.json.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, corpus_dir, machine, percentile, pin_one_core

pin_one_core()

from PIL import Image, ImageDraw  # noqa: E402

from lightkeeper.banks import BankStore  # noqa: E402
from lightkeeper.hashing import hash_bytes  # noqa: E402
from lightkeeper.matching import Matcher  # noqa: E402
from lightkeeper.matching.region_codes import banked_image  # noqa: E402

MEGAPIXEL = 1_000_000


def _one_megapixel(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = (MEGAPIXEL / (image.width * image.height)) ** 0.5
        return image.resize((round(image.width * scale), round(image.height * scale)))


def _screenshot(photo: Image.Image) -> Image.Image:
    screen = Image.new("RGB", photo.size, (248, 248, 250))
    draw = ImageDraw.Draw(screen)
    draw.rectangle((0, 0, photo.width, 30), fill=(0, 0, 0))
    draw.rectangle((0, photo.height - 60, photo.width, photo.height), fill=(230, 230, 235))
    half = photo.resize((photo.width // 2, photo.height // 2))
    screen.paste(half, (photo.width // 4, photo.height // 4))
    return screen


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, quality=90)
    return out.getvalue()


def _per_item_ms(items: list[bytes], work: Callable[[bytes], object], repeat: int) -> list[float]:
    times = []
    for data in items:
        work(data)  # warm
        runs = []
        for _ in range(repeat):
            start = time.process_time()
            work(data)
            runs.append((time.process_time() - start) * 1000)
        times.append(statistics.median(runs))
    return times


def _summary(times: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(times), 1),
        "p90_ms": round(percentile(times, 90), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    paths = sorted((corpus_dir() / "A_deb_terrestrial").rglob("*.jpg"))[: args.photos]
    photos = [_one_megapixel(p) for p in paths]
    uploads = {
        "photo_jpeg": [_encode(p, "JPEG") for p in photos],
        "screenshot_png": [_encode(_screenshot(p), "PNG") for p in photos],
    }
    result: dict[str, Any] = {"machine": machine(), "photos": len(photos), "repeat": args.repeat}

    with BankStore.open("sqlite://") as store:
        store.create_bank("b")
        for data in uploads["photo_jpeg"]:
            store.add_entry("b", "pdq", str(hash_bytes(data)["pdq"]))
        matcher = Matcher(store, refresh_on_call=False)
        off = {k: _per_item_ms(v, matcher.match_bytes, args.repeat) for k, v in uploads.items()}

        banking_plain = _per_item_ms(uploads["photo_jpeg"], hash_bytes, args.repeat)
        banking_regions = _per_item_ms(
            uploads["photo_jpeg"], lambda d: banked_image(d, quality_floor=50), args.repeat
        )
        store.update_bank("b", regions=True)
        codes = []
        for data in uploads["photo_jpeg"]:
            signals, regions = banked_image(data, quality_floor=50)
            store.add_entry("b", "pdq", str(signals["pdq"]), regions=regions)
            codes.append(len(regions))
        matcher.refresh()
        on = {k: _per_item_ms(v, matcher.match_bytes, args.repeat) for k, v in uploads.items()}
        found = {
            k: sum(bool(matcher.match_bytes(d).matches) for d in v) for k, v in uploads.items()
        }

    result["upload"] = {
        kind: {"regions_off": _summary(off[kind]), "regions_on": _summary(on[kind])}
        for kind in uploads
    }
    result["matched_with_regions_on"] = found
    result["banking"] = {
        "plain": _summary(banking_plain),
        "with_regions": _summary(banking_regions),
        "region_codes_per_image": statistics.mean(codes),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "region_matching.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
