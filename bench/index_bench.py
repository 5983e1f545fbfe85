"""Exact radius search over PDQ codes: Lightkeeper's HammingIndex beside its peers, in one run.

For each data kind and size (default: uniform and clustered, 1 M and 13.4 M codes) it builds the
data once, computes the exact answers, then measures each competitor in turn and frees it:

- lightkeeper: `HammingIndex` (build, single-query latency on one core, batch throughput with
  batches of --batches queries on every core and on one, save, load, load with mmap, memory);
- lightkeeper-paired: the same with paired tables (`HammingIndex(paired=True)`, the service's
  default), which single queries use and batches do not;
- faiss: `IndexBinaryFlat.range_search` (brute force; fewer queries at large sizes);
- threatexchange: Meta's `PDQIndex` (faiss `IndexBinaryMultiHash`, the multi-hash index behind
  HMA); and `PDQIndex2` (faiss flat float index) where it fits in memory.

Queries: half planted near-duplicates of indexed codes at distance 0..radius, half random codes.
Every competitor's answers are compared with the exact ones (a cache-blocked linear scan, itself
checked against NumPy brute force on a sample): a missed or extra match is reported, never hidden.
Batches are checked on a sample of --check queries each.

    python bench/index_bench.py [--sizes 1000000 13400000] [--kinds uniform clustered]
                                [--queries 1000] [--batches 1000 10000] [--check 200]
                                [--radius 31] [--only lightkeeper faiss ...]

Needs `pip install -e '.[bench]'` for faiss and threatexchange; a missing one is skipped.
Writes bench/results/index.json and its section of docs/benchmarks.md. A run of some sizes,
kinds or competitors replaces only those results: the others are kept from the previous
index.json (each result carries the date it was measured).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np

from common import RESULTS, machine, percentile, write_results
from lightkeeper.index import HammingIndex, _hamming

Results = list[list[tuple[int, int]]]
ALL_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
KINDS = ["uniform", "clustered"]
COMPETITORS = ["lightkeeper", "lightkeeper-paired", "faiss", "PDQIndex", "PDQIndex2"]


# ---------------------------------------------------------------------------------------------
# Data


def uniform_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 32), dtype=np.uint8)


def flip_bits(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> None:
    """Flip about counts[i] random bits of row i, in place (repeated positions flip back)."""
    rows = np.arange(len(codes))
    for j in range(int(counts.max(initial=0))):
        active = rows[counts > j]
        pos = rng.integers(0, 256, len(active), dtype=np.uint16)
        codes[active, pos >> 3] ^= (1 << (pos & 7)).astype(np.uint8)


def clustered_codes(rng: np.random.Generator, n: int, family: int = 1000) -> np.ndarray:
    """Families of near-duplicates: n / family centres, each member 5..20 bits from its centre."""
    centres = uniform_codes(rng, max(1, n // family))
    codes = centres[rng.integers(0, len(centres), n)]
    flip_bits(codes, rng.integers(5, 21, n), rng)
    return codes


def make_queries(
    codes: np.ndarray, count: int, radius: int, rng: np.random.Generator
) -> np.ndarray:
    """Half near-duplicates of indexed codes at exactly d bits (d uniform in 0..radius), half
    random codes; shuffled."""
    planted = codes[rng.integers(0, len(codes), count // 2)].copy()
    for row, d in zip(planted, rng.integers(0, radius + 1, len(planted)), strict=True):
        bits = np.unpackbits(row)
        bits[rng.choice(256, size=int(d), replace=False)] ^= 1
        row[:] = np.packbits(bits)
    queries = np.concatenate([planted, uniform_codes(rng, count - len(planted))])
    return queries[rng.permutation(len(queries))]


def exact_answers(codes: np.ndarray, queries: np.ndarray, radius: int) -> Results:
    """The exact answers (ids are row numbers): a cache-blocked linear scan in C."""
    n = len(codes)
    segment = (codes, np.arange(n, dtype=np.int64), np.ones(n, np.uint8), n, None, None, None)
    out: Results = []
    for lo in range(0, len(queries), 256):
        part = np.ascontiguousarray(queries[lo : lo + 256])
        out += _hamming.search(part, len(part), radius, None, (segment,))
    rng = np.random.default_rng(0)
    for qi in rng.choice(len(queries), size=min(5, len(queries)), replace=False):
        d = np.bitwise_count(codes ^ queries[qi]).sum(axis=1, dtype=np.int64)
        sel = np.nonzero(d <= radius)[0]
        brute = sorted(((int(i), int(d[i])) for i in sel), key=lambda p: (p[1], p[0]))
        assert out[qi] == brute, "the linear scan disagrees with NumPy brute force"
    return out


def compare(got: list[set[tuple[int, int]]], want: Results) -> dict[str, int]:
    """Missed and extra (id, distance) pairs over the queries answered."""
    missed = extra = 0
    for g, w in zip(got, want, strict=False):
        ws = set(w)
        missed += len(ws - g)
        extra += len(g - ws)
    return {"missed": missed, "extra": extra, "checked_queries": len(got)}


# ---------------------------------------------------------------------------------------------
# Measuring


def rss_mb() -> float:
    gc.collect()
    with Path("/proc/self/status").open() as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def one_core() -> None:
    if ALL_CPUS:
        os.sched_setaffinity(0, {ALL_CPUS[0]})


def all_cores() -> None:
    if ALL_CPUS:
        os.sched_setaffinity(0, set(ALL_CPUS))


Answer = set[tuple[int, int]]


def latencies(
    fn: Callable[[int], Answer], count: int, rounds: int = 1
) -> tuple[dict[str, float], list[Answer]]:
    """Time `fn(i)` for queries 0..count-1 on one core: p50, p99, mean in ms of the first round.

    With more rounds, also the p99 of each query's best time: on a shared machine the raw tail
    is mostly other processes taking the core mid-query, which the best of a few runs removes.
    """
    one_core()
    fn(0)  # warm up
    answers: list[Answer] = []
    rows: list[list[float]] = []
    for r in range(rounds):
        times = []
        for i in range(count):
            t = time.perf_counter_ns()
            answer = fn(i)
            times.append((time.perf_counter_ns() - t) / 1e6)
            if r == 0:
                answers.append(answer)
        rows.append(times)
    all_cores()
    first = rows[0]
    stats = {
        "p50_ms": round(percentile(first, 50), 3),
        "p99_ms": round(percentile(first, 99), 3),
        "mean_ms": round(sum(first) / len(first), 3),
        "queries": count,
    }
    if rounds > 1:
        best = [min(col) for col in zip(*rows, strict=True)]
        stats[f"p50_best_of_{rounds}_ms"] = round(percentile(best, 50), 3)
        stats[f"p99_best_of_{rounds}_ms"] = round(percentile(best, 99), 3)
    return stats, answers


class Timer:
    """`with Timer() as t: ...` then `t.s`: seconds, rounded to the millisecond."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = round(time.perf_counter() - self.start, 3)


# ---------------------------------------------------------------------------------------------
# Competitors


def batch_throughput(
    index: HammingIndex, codes: np.ndarray, size: int, radius: int, check: int, seed: int
) -> dict[str, Any]:
    """Queries per second for batches of `size` fresh queries, on one core and on every core
    (best of 3 runs each), with the answers of `check` of them compared to the exact ones."""
    rng = np.random.default_rng(seed)
    queries = make_queries(codes, size, radius, rng)
    sample = np.sort(rng.choice(size, size=min(check, size), replace=False))
    want = exact_answers(codes, queries[sample], radius)
    out: dict[str, Any] = {"queries": size}
    checks = []
    for label, workers in (("1_core", 1), (f"{len(ALL_CPUS)}_cores", None)):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            got = index.search(queries, radius, workers=workers)
            best = min(best, time.perf_counter() - start)
            checks.append(compare([set(got[i]) for i in sample], want))
        out[f"qps_{label}"] = round(size / best)
    # every run is checked: "checked_queries" counts the sample once per run
    out["exactness"] = {key: sum(c[key] for c in checks) for key in checks[0]}
    return out


def bench_lightkeeper(
    codes: np.ndarray,
    queries: np.ndarray,
    radius: int,
    want: Results,
    batches: list[int],
    check: int,
    *,
    paired: bool = False,
) -> dict[str, Any]:
    """`HammingIndex`, compact or with paired tables (which queries and batches use; files
    do not hold them)."""
    n = len(codes)
    before = rss_mb()
    index = HammingIndex(paired=paired)
    with Timer() as build:
        index.add(np.arange(n, dtype=np.int64), codes)
    after = rss_mb()
    main = index._state[0]
    arrays = [main.codes, main.ids, main.alive]
    for tables in (main.tables, main.paired):
        if tables is not None:
            arrays += [tables.dirs, tables.lows, tables.slots]
    index_mb = sum(a.nbytes for a in arrays) / 2**20

    def one(i: int) -> Answer:
        return set(index.search(queries[i : i + 1], radius)[0])

    single, answers = latencies(one, len(queries), rounds=3)
    out: dict[str, Any] = {
        "build_s": build.s,
        "rss_delta_mb": round(after - before, 1),
        "index_mb": round(index_mb, 1),
        "memory_x_raw": round(index_mb * 2**20 / (n * 32), 2),
        "single_query": single,
        "exactness": compare(answers, want),
        "batches": {
            str(size): batch_throughput(index, codes, size, radius, check, seed=size)
            for size in batches
        },
    }
    with tempfile.TemporaryDirectory(dir=os.environ.get("LK_BENCH_TMP")) as tmp:
        path = Path(tmp) / "index.lkh"
        with Timer() as save:
            index.save(path)
        out["save_s"] = save.s
        out["file_mb"] = round(path.stat().st_size / 2**20, 1)
        index = HammingIndex()  # drop the built one before loading
        gc.collect()
        with Timer() as load:
            index = HammingIndex.load(path, paired=paired)
        out["load_s"] = load.s
        loaded = [set(r) for r in index.search(queries[:100], radius)]
        out["exactness_after_load"] = compare(loaded, want[:100])
        index = HammingIndex()
        gc.collect()
        with Timer() as mapped:
            index = HammingIndex.load(path, mmap=True, verify=False)
        out["load_mmap_s"] = mapped.s
    return out


def bench_faiss(
    codes: np.ndarray, queries: np.ndarray, radius: int, want: Results, limit: int
) -> dict[str, Any]:
    import faiss

    before = rss_mb()
    index = faiss.IndexBinaryFlat(256)
    with Timer() as build:
        index.add(codes)
    after = rss_mb()
    faiss.omp_set_num_threads(1)

    def one(i: int) -> Answer:
        _, dist, ids = index.range_search(queries[i : i + 1], radius + 1)
        return {(int(a), int(b)) for a, b in zip(ids, dist, strict=True)}

    count = min(limit, len(queries))
    single, answers = latencies(one, count)
    faiss.omp_set_num_threads(len(ALL_CPUS) or 1)
    with Timer() as batch:
        index.range_search(queries[:count], radius + 1)
    return {
        "build_s": build.s,
        "rss_delta_mb": round(after - before, 1),
        "index_mb": round(index.ntotal * index.code_size / 2**20, 1),
        "single_query": single,
        f"batch_qps_{len(ALL_CPUS)}_cores": round(count / batch.s),
        "exactness": compare(answers, want),
    }


def bench_threatexchange(
    codes: np.ndarray, queries: np.ndarray, radius: int, want: Results, limit: int, flavour: str
) -> dict[str, Any]:
    from threatexchange.signal_type.pdq import pdq_index, pdq_index2

    kind = pdq_index.PDQIndex if flavour == "PDQIndex" else pdq_index2.PDQIndex2
    qhex = [row.tobytes().hex() for row in queries]
    before = rss_mb()
    with Timer() as build:
        entries = zip((r.tobytes().hex() for r in codes), range(len(codes)), strict=True)
        index = kind(entries=entries)
    after = rss_mb()
    if hasattr(index, "threshold"):
        index.threshold = radius
    elif radius != 31:
        return {"skipped": "threatexchange's PDQIndex searches at radius 31 only"}

    def one(i: int) -> Answer:
        return {(int(m.metadata), int(m.similarity_info.distance)) for m in index.query(qhex[i])}

    single, answers = latencies(one, min(limit, len(queries)))
    return {
        "build_s": build.s,
        "rss_delta_mb": round(after - before, 1),
        "single_query": single,
        "exactness": compare(answers, want),
    }


def bench(
    name: str,
    codes: np.ndarray,
    queries: np.ndarray,
    radius: int,
    want: Results,
    limit: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    if name.startswith("lightkeeper"):
        paired = name == "lightkeeper-paired"
        return bench_lightkeeper(
            codes, queries, radius, want, args.batches, args.check, paired=paired
        )
    if name == "faiss":
        return bench_faiss(codes, queries, radius, want, limit)
    return bench_threatexchange(codes, queries, radius, want, limit, name)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e6, 13.4e6])
    ap.add_argument("--kinds", nargs="+", default=["uniform", "clustered"], choices=KINDS)
    ap.add_argument("--queries", type=int, default=1000, help="single queries (latency)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1000, 10000], help="batch sizes")
    ap.add_argument("--check", type=int, default=200, help="queries of each batch checked")
    ap.add_argument("--radius", type=int, default=31)
    ap.add_argument("--only", nargs="+", default=COMPETITORS, choices=COMPETITORS)
    ap.add_argument("--peer-queries", type=int, default=200, help="peers' queries above 2 M")
    ap.add_argument("--pdqindex2-max", type=float, default=2e6, help="it needs 1 KB per code")
    ap.add_argument("--pdqindex-max", type=float, default=14e6)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    runs: list[dict[str, Any]] = []
    for kind in args.kinds:
        for size in args.sizes:
            runs.append(run_one(kind, int(size), args))
            gc.collect()
    runs = merge_runs(previous_runs(), runs)
    payload = {"machine": machine(), "runs": runs}
    markdown = table(runs)
    print(markdown)
    write_results("index", payload, markdown)
    return 0


def previous_runs() -> list[dict[str, Any]]:
    path = RESULTS / "index.json"
    if not path.exists():
        return []
    runs: list[dict[str, Any]] = json.loads(path.read_text()).get("runs", [])
    return runs


def merge_runs(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The previous runs with this run's results put in (by data kind, size and radius, then by
    competitor); results and runs not measured this time stay as they were."""
    merged = [dict(run, results=dict(run["results"])) for run in old]
    for run in new:
        key = (run["kind"], run["codes"], run["radius"])
        same = [m for m in merged if (m["kind"], m["codes"], m["radius"]) == key]
        if same:
            same[0]["results"].update(run["results"])
        else:
            merged.append(run)
    order = {kind: i for i, kind in enumerate(KINDS)}
    merged.sort(key=lambda r: (order.get(r["kind"], len(order)), r["codes"], r["radius"]))
    return merged


def run_one(kind: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    with Timer() as prep:
        codes = uniform_codes(rng, n) if kind == "uniform" else clustered_codes(rng, n)
        queries = make_queries(codes, args.queries, args.radius, rng)
        want = exact_answers(codes, queries, args.radius)
    matches = sum(map(len, want))
    print(
        f"== {kind} {n:,} codes, {len(queries)} queries, radius {args.radius}: "
        f"{matches:,} matches (data and exact answers in {prep.s:.0f} s)",
        flush=True,
    )
    limits = {"PDQIndex": args.pdqindex_max, "PDQIndex2": args.pdqindex2_max}
    peer_limit = len(queries) if n <= 2_000_000 else args.peer_queries
    results: dict[str, Any] = {}
    for name in args.only:
        if n > limits.get(name, n):
            results[name] = {"skipped": f"above --{name.lower()}-max"}
            continue
        try:
            results[name] = bench(name, codes, queries, args.radius, want, peer_limit, args)
        except ImportError as exc:
            results[name] = {"skipped": f"not installed: {exc.name}"}
        results[name]["date"] = time.strftime("%Y-%m-%d")
        print(f"  {name}: {results[name]}", flush=True)
        gc.collect()
    return {
        "kind": kind,
        "codes": n,
        "queries": len(queries),
        "radius": args.radius,
        "matches": matches,
        "results": results,
    }


def batch_qps(res: dict[str, Any], size: int, *, one_core: bool = False) -> str:
    """A result's queries per second for batches of `size`, as the table shows it ("" if none).
    Results from before batches of several sizes (and peers) hold one batch of the query set."""
    batch = res.get("batches", {}).get(str(size))
    found = batch if batch is not None else (res if size == 1000 else {})
    prefix = "qps_" if batch is not None else "batch_qps_"
    for key, value in found.items():
        if key.startswith(prefix) and ("_1_core" in key) == one_core:
            return f"{value:,}"
    return ""


def table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "## Exact radius search (`bench/index_bench.py`)",
        "",
        "| data | codes | index | p50 ms | p99 ms | batch q/s: 1,000 | 10,000 | 10,000 on 1 core "
        "| build s | memory | missed/extra |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        head = f"| {run['kind']} | {run['codes']:,} "
        for name, res in run["results"].items():
            if "skipped" in res:
                lines.append(f"{head}| {name} | skipped: {res['skipped']} ||||||||")
                continue
            single, ex = res["single_query"], res["exactness"]
            batches = res.get("batches", {})
            checked = [ex] + [b["exactness"] for b in batches.values()]
            missed = sum(c["missed"] for c in checked)
            extra = sum(c["extra"] for c in checked)
            count = sum(c["checked_queries"] for c in checked)

            mem = res.get("index_mb", res["rss_delta_mb"])
            ratio = mem * 2**20 / (run["codes"] * 32)
            lines.append(
                f"{head}| {name} | {single['p50_ms']} | {single['p99_ms']} "
                f"| {batch_qps(res, 1000)} | {batch_qps(res, 10000)} "
                f"| {batch_qps(res, 10000, one_core=True)} "
                f"| {res['build_s']} | {mem:,.0f} MB ({ratio:.1f}x) "
                f"| {missed}/{extra} in {count:,} queries |"
            )
    lines += [
        "",
        "Single queries on one core; batches of 1,000 and 10,000 fresh queries on every core",
        "(and on one), best of 3 runs, 200 queries of each batch checked in every run. faiss,",
        "and rows without a 10,000 figure (measured before batches of several sizes), show one",
        "batch of the single-query set in the 1,000 column (200 queries for faiss at 13.4 M).",
        "Memory: the index's arrays where known (Lightkeeper, faiss), else growth in resident",
        "memory while building (approximate). Every answer checked is compared with the exact",
        "one. Lightkeeper's p99 over each query's best of 3 runs (other processes removed from",
        "the tail) and each result's date are in the JSON. lightkeeper-paired: the same index",
        "with paired tables (`HammingIndex(paired=True)`, the service's default,",
        "`LIGHTKEEPER_PAIRED_TABLES`), which single queries and batches both use; build and",
        "memory include them. Its rows and the compact index's were taken one after the",
        "other (2026-11-23, uniform at 13:15 UTC, clustered at 13:40, nothing stolen):",
        "compare those. The VM had moved to a faster host a little before (its kernel build",
        "and CPU name changed): the peers' rows, taken earlier, ran on the old one (there the",
        "compact index's single query at 13.4 M took 0.50 ms at p50, here 0.38 ms).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
