"""Loading a national-size hash list: a 13.4-million-line PDQ file into an SQLite bank.

Generates the file (random PDQ hashes, fixed seed, written as a stream), imports it with
`import_list` into a fresh store, then imports it again (the idempotent re-run after a crash).
Reports wall time, hashes per second, the process's peak resident memory and the size of
the database. DESIGN §6: "loading a 13.4 M-hash list — minutes, streaming, bounded memory".

    python bench/import_bench.py [--lines 13400000] [--batch-size 50000] [--no-rerun]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results
from lightkeeper.banks import BankStore
from lightkeeper.exchange import import_list


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def generate(path: Path, lines: int, seed: int = 13) -> None:
    rng = random.Random(seed)
    with path.open("wb") as f:
        f.write(b"# signal_type: pdq\n")
        for start in range(0, lines, 100_000):
            count = min(100_000, lines - start)
            f.write("".join(f"{rng.getrandbits(256):064x}\n" for _ in range(count)).encode())


def timed_import(store: BankStore, path: Path, batch_size: int) -> tuple[float, Any]:
    started = time.perf_counter()
    with path.open("rb") as f:
        report = import_list(store, "bench", f, list_name="bench", batch_size=batch_size)
    return time.perf_counter() - started, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=13_400_000)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--no-rerun", action="store_true", help="skip the second import")
    parser.add_argument("--dir", type=Path, help="where to put the list and the store")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        list_file = work / "list.txt"
        started = time.perf_counter()
        generate(list_file, args.lines)
        print(f"generated {args.lines:,} lines in {time.perf_counter() - started:.1f} s")
        rss_before = peak_rss_mib()

        db = work / "bench.db"
        with BankStore.open(str(db)) as store:
            store.create_bank("bench")
            seconds, report = timed_import(store, list_file, args.batch_size)
            assert report.added == args.lines and report.invalid == 0, report
            print(f"import: {seconds:.1f} s, {args.lines / seconds:,.0f} hashes/s")
            rss_after = peak_rss_mib()
            rerun_seconds = None
            if not args.no_rerun:
                rerun_seconds, again = timed_import(store, list_file, args.batch_size)
                assert again.added == 0 and again.unchanged == args.lines, again
                print(f"re-import (nothing new): {rerun_seconds:.1f} s")
        db_mib = sum(p.stat().st_size for p in work.glob("bench.db*")) / 2**20
        list_mib = list_file.stat().st_size / 2**20

    payload = {
        "machine": machine(),
        "lines": args.lines,
        "batch_size": args.batch_size,
        "import_seconds": round(seconds, 1),
        "hashes_per_second": round(args.lines / seconds),
        "reimport_seconds": None if rerun_seconds is None else round(rerun_seconds, 1),
        "peak_rss_mib_before_import": round(rss_before, 1),
        "peak_rss_mib": round(max(rss_before, rss_after, peak_rss_mib()), 1),
        "list_mib": round(list_mib, 1),
        "database_mib": round(db_mib, 1),
    }
    rerun = "—" if rerun_seconds is None else f"{rerun_seconds:.0f} s"
    markdown = f"""## Loading a hash list (`bench/import_bench.py`)

{args.lines:,} random PDQ hashes in the `lines` format ({list_mib:,.0f} MiB) imported into a
fresh SQLite bank in batches of {args.batch_size:,}, on {payload["machine"]["cpu"]}.

| import | hashes/s | re-import (all unchanged) | peak RSS | database |
|---|---|---|---|---|
| {seconds:.0f} s | {args.lines / seconds:,.0f} | {rerun} | {payload["peak_rss_mib"]:.0f} MiB \
| {db_mib:,.0f} MiB |
"""
    print(markdown)
    if args.lines >= 1_000_000:
        write_results("import", payload, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
