"""What the transparency figures cost: `compute_figures` over a year of recorded matches.

A store is filled with the rows a platform's year would leave (the actioner's cases and
recorded matches, the reviewers' review states and decisions, appeals), written in bulk
straight into the tables, then `lightkeeper.reporting.transparency.compute_figures` is run
for the whole year and for its last month, ``--repeat`` times each, on a fresh connection
pool each time. Reported: the median and range of the wall time, and the peak resident
memory of this process over the computations (the figures stream evidence; a list of every
match held in memory would show here).

The year (seeded, the same at every run): ``--matches`` recorded matches (default 200,000)
spread evenly over 365 days, one case per 4 matches; every case asks for review; each case
matches one or two of 3 banks × 3 lists and one or two of md5/pdq; 70 % of the cases are
confirmed and approved, 20 % judged false positives, the rest left open; one case in 50 is
appealed, half of those upheld. Reports are not written: their figures are four SQL
aggregates over a small table, and their rows change with the reporting schema.

    python bench/transparency_bench.py [--backend sqlite|postgresql] [--matches 200000]
                                       [--repeat 3] [--quick] [--report]

Writes bench/results/transparency.json and its section of docs/benchmarks.md (the other
backend's results are kept); ``--quick`` (10,000 matches, one run) writes nothing;
``--report`` rewrites the docs section from the results file. The store is made afresh in
bench/.work/transparency/ (SQLite), or on a throwaway PostgreSQL server started as the tests
start theirs.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sqlalchemy import Table, insert, text

from common import RESULTS, ROOT, machine, postgres_database, write_results
from lightkeeper.banks import BankStore
from lightkeeper.banks.models import (
    AppealRow,
    CaseMatchRow,
    CaseReviewRow,
    CaseRow,
    ReviewDecisionRow,
    ReviewerRow,
)
from lightkeeper.reporting.transparency import compute_figures

NAME = "transparency"
BACKENDS = ("sqlite", "postgresql")
DATABASE = "lightkeeper_transparency_bench"
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_END = YEAR_START + timedelta(days=365)
BANKS = ("ncmec", "iwf", "local")
LISTS = ("list-a", "list-b", "list-c")
MATCHES_PER_CASE = 4
BATCH = 5000


def table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


# ---------------------------------------------------------------------------------------------
# The store


@contextmanager
def store_url(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        work = ROOT / "bench" / ".work" / NAME
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        yield f"sqlite:///{work / 'lightkeeper.db'}"
        return
    with postgres_database(DATABASE) as (_, url):
        yield url


def fill(store: BankStore, matches: int, seed: int = 7) -> dict[str, int]:
    """Write the year's rows (see the module docstring); how many of each."""
    rng = random.Random(seed)
    cases = max(1, matches // MATCHES_PER_CASE)
    step = (YEAR_END - YEAR_START) / matches
    with store.engine.begin() as conn:
        reviewers = [
            conn.execute(
                insert(table(ReviewerRow)),
                {
                    "username": name,
                    "display_name": name,
                    "role": "senior" if name == "sam" else "reviewer",
                    "password_hash": None,
                    "disabled": False,
                    "daily_reveal_cap": None,
                    "created_at": YEAR_START - timedelta(days=30),
                    "created_by": "bench",
                },
            ).inserted_primary_key[0]
            for name in ("alice", "bob", "sam")
        ]
    counts = {"cases": 0, "matches": 0, "decisions": 0, "appeals": 0}
    for first in range(0, cases, BATCH):
        ids = range(first, min(cases, first + BATCH))
        case_rows, match_rows, review_rows, decision_rows, appeal_rows = [], [], [], [], []
        for i in ids:
            seen = YEAR_START + step * (i * MATCHES_PER_CASE)
            case_rows.append(
                {
                    "id": i + 1,
                    "sha256": f"{i:064x}",
                    "status": "open",
                    "priority": 5,
                    "actions": "block quarantine review",
                    "match_count": MATCHES_PER_CASE,
                    "first_seen_at": seen,
                    "last_seen_at": seen,
                    "updated_at": seen,
                }
            )
            evidence = [
                {
                    "bank": rng.choice(BANKS),
                    "bank_kind": "block",
                    "entry_id": rng.randrange(1, 1_000_000),
                    "signal_type": signal_type,
                    "value": f"{rng.getrandbits(256):064x}",
                    "distance": 0 if signal_type == "md5" else rng.randrange(0, 32),
                    "threshold": 0 if signal_type == "md5" else 31,
                    "quality": None if signal_type == "md5" else 90,
                    "variant": "original",
                    "list_name": rng.choice(LISTS),
                    "list_version": "2025-01",
                    "external_id": None,
                    "classification": "A1",
                }
                for signal_type in rng.sample(("md5", "pdq"), rng.choice((1, 2)))
            ]
            for n in range(MATCHES_PER_CASE):
                match_rows.append(
                    {
                        "request_id": f"req-{i}-{n}",
                        "case_id": i + 1,
                        "at": seen + step * n,
                        "uploader": f"user-{rng.randrange(10_000)}",
                        "sha256": f"{i:064x}",
                        "media_type": "image/jpeg",
                        "policy_version": None,
                        "actions": "block quarantine review",
                        "priority": 5,
                        "reject": True,
                        "evidence": json.dumps(evidence),
                        "decision": "{}",
                        "vault_object_id": None,
                    }
                )
            roll = rng.random()
            decided = seen + timedelta(hours=rng.uniform(1, 72))
            if roll < 0.9:
                confirmed = roll < 0.7
                state = "confirmed" if confirmed else "false_positive"
                review_rows.append(
                    {
                        "case_id": i + 1,
                        "state": state,
                        "classification": "A1" if confirmed else None,
                        "annotations": "[]",
                        "confirmed_by": reviewers[0] if confirmed else None,
                        "confirmed_at": decided if confirmed else None,
                        "approved_by": reviewers[1] if confirmed else None,
                        "approved_at": decided if confirmed else None,
                        "updated_at": decided,
                    }
                )
                kinds = ("confirm", "approve") if confirmed else ("false_positive",)
                for k, kind in enumerate(kinds):
                    decision_rows.append(
                        {
                            "case_id": i + 1,
                            "reviewer_id": reviewers[k],
                            "at": decided + timedelta(minutes=k),
                            "kind": kind,
                            "classification": "A1" if kind == "confirm" else None,
                            "annotations": "[]",
                            "note": "",
                        }
                    )
            if i % 50 == 0:
                upheld = i % 100 == 0
                answered = decided + timedelta(days=2)
                appeal_rows.append(
                    {
                        "case_id": i + 1,
                        "uploader": None,
                        "statement": "mine",
                        "received_at": decided + timedelta(days=1),
                        "status": "upheld" if upheld else "denied",
                        "decided_by": reviewers[2],
                        "decided_at": answered,
                        "reason": "checked",
                    }
                )
                decision_rows.append(
                    {
                        "case_id": i + 1,
                        "reviewer_id": reviewers[2],
                        "at": answered,
                        "kind": "appeal_upheld" if upheld else "appeal_denied",
                        "classification": None,
                        "annotations": "[]",
                        "note": "",
                    }
                )
        with store.engine.begin() as conn:
            conn.execute(insert(table(CaseRow)), case_rows)
            conn.execute(insert(table(CaseMatchRow)), match_rows)
            if review_rows:
                conn.execute(insert(table(CaseReviewRow)), review_rows)
            if decision_rows:
                conn.execute(insert(table(ReviewDecisionRow)), decision_rows)
            if appeal_rows:
                conn.execute(insert(table(AppealRow)), appeal_rows)
        counts["cases"] += len(case_rows)
        counts["matches"] += len(match_rows)
        counts["decisions"] += len(decision_rows)
        counts["appeals"] += len(appeal_rows)
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('cases', 'id'), :n)"), {"n": cases}
            )
            conn.execute(text("ANALYZE"))
    return counts


# ---------------------------------------------------------------------------------------------
# Timing


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_period(url: str, start: datetime, end: datetime, repeat: int) -> dict[str, Any]:
    times: list[float] = []
    figures = None
    for _ in range(repeat):
        with BankStore.open(url) as store:
            began = time.perf_counter()
            figures = compute_figures(store, start=start, end=end)
            times.append(time.perf_counter() - began)
    assert figures is not None
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "runs_s": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3),
        "uploads_counted": figures.matches.uploads,
        "verdicts": figures.errors.overall.judged,
    }


def run(backend: str, matches: int, repeat: int) -> dict[str, Any]:
    with store_url(backend) as url:
        with BankStore.open(url) as store:
            began = time.perf_counter()
            counts = fill(store, matches)
            filled_s = time.perf_counter() - began
        print(f"  {backend}: filled {counts} in {filled_s:.1f} s", flush=True)
        rss_before = peak_rss_mib()
        year = time_period(url, YEAR_START, YEAR_END, repeat)
        month = time_period(url, YEAR_END - timedelta(days=31), YEAR_END, repeat)
    return {
        "backend": backend,
        "rows": counts,
        "fill_s": round(filled_s, 1),
        "year": year,
        "last_month": month,
        "peak_rss_mib_before": round(rss_before, 1),
        "peak_rss_mib_after": round(peak_rss_mib(), 1),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "## Transparency figures",
        "",
        "`python bench/transparency_bench.py` (see its docstring): `compute_figures` over a "
        "synthetic year of recorded matches, median of the runs.",
        "",
        "| backend | recorded matches | cases | year: median (runs) | last month: median | "
        "peak RSS before → after |",
        "|---|---|---|---|---|---|",
    ]
    for backend in BACKENDS:
        r = results.get("runs", {}).get(backend)
        if r is None:
            continue
        year, month = r["year"], r["last_month"]
        lines.append(
            f"| {backend} | {r['rows']['matches']:,} | {r['rows']['cases']:,} | "
            f"{year['median_s']} s ({', '.join(str(t) for t in year['runs_s'])}) | "
            f"{month['median_s']} s | {r['peak_rss_mib_before']} → "
            f"{r['peak_rss_mib_after']} MiB |"
        )
    info = results.get("machine", {})
    lines += ["", f"Machine: {info.get('cpu', '?')}, {info.get('cores', '?')} cores."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--matches", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    path = RESULTS / f"{NAME}.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    if args.report:
        write_results(NAME, results, markdown(results))
        return 0
    if args.quick:
        print(json.dumps(run(args.backend, 10_000, 1), indent=2))
        return 0
    results["runs"][args.backend] = run(args.backend, args.matches, args.repeat)
    results["machine"] = machine()
    results["measured_at"] = datetime.now(UTC).isoformat()
    write_results(NAME, results, markdown(results))
    print(json.dumps(results["runs"][args.backend], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
