"""``lightkeeper scan`` throughput over the photo corpus, against a bank of the corpus's hashes.

Every photo is listed (its PDQ and MD5 in one bank), so every file is hashed, looked up and
matched: the full path of a backlog scan. The scan runs as a user runs it (the command, a
fresh SQLite store, the report written to a file) at --jobs 1 and 2. Three rates are
reported: the scan's own (what its summary prints: files over the time from the end of the
directory walk to the last record, worker start-up and index loading included), the
wall-clock one (the whole command, Python start-up included), and, as the baseline,
``lightkeeper hash`` of the same files at the same --jobs (wall clock): the difference is
the cost of matching and of writing the report.

    python bench/scan_bench.py [--limit N] [--jobs 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import corpus_dir, machine, write_results

LIGHTKEEPER = [sys.executable, "-c", "from lightkeeper.cli.main import main; main()"]
SUMMARY = re.compile(r"this run: ([\d,]+) files in ([\d.]+) s")


#: What ``scan`` sets for its workers (one BLAS thread each), given to ``hash`` too so that
#: the baseline measures hashing, not thread oversubscription.
ONE_BLAS_THREAD = dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **ONE_BLAS_THREAD}
    return subprocess.run(
        [*LIGHTKEEPER, *args], capture_output=True, text=True, check=False, env=env
    )


def build_bank(photos: Path, db: str, work: Path) -> int:
    """Hash the corpus and list every hash in bank "corpus"; returns the entries added."""
    hashed = run("hash", "--json", "--no-progress", str(photos))
    listing = work / "corpus.csv"
    with listing.open("w") as out:
        out.write("signal_type,value,note\n")
        for line in hashed.stdout.splitlines():
            record = json.loads(line)
            if "pdq" in record:
                out.write(f"pdq,{record['pdq']},{Path(record['file']).name}\n")
            if "md5" in record:
                out.write(f"md5,{record['md5']},{Path(record['file']).name}\n")
    run("bank", "create", "corpus", "--db", db, "--quality-floor", "0")
    imported = run("bank", "import", "corpus", str(listing), "--db", db, "--json")
    return int(json.loads(imported.stdout)["added"])


def scan(photos: Path, db: str, work: Path, jobs: int) -> dict[str, Any]:
    report = work / f"scan-j{jobs}.jsonl"
    report.unlink(missing_ok=True)
    started = time.perf_counter()
    done = run("scan", str(photos), "--db", db, "-o", str(report), "-j", str(jobs), "--no-progress")
    wall = time.perf_counter() - started
    found = SUMMARY.search(done.stderr)
    if found is None:
        raise SystemExit(f"scan failed (exit {done.returncode}):\n{done.stderr}")
    files, seconds = int(found[1].replace(",", "")), float(found[2])
    records = [json.loads(line) for line in report.read_text().splitlines()]
    return {
        "jobs": jobs,
        "files": files,
        "matched": sum(bool(r["matched"]) for r in records),
        "errors": sum("error" in r for r in records),
        "scan_seconds": round(seconds, 2),
        "files_per_s": round(files / seconds, 1),
        "wall_seconds": round(wall, 2),
        "wall_files_per_s": round(files / wall, 1),
        "exit_code": done.returncode,
    }


def hash_rate(photos: Path, jobs: int, files: int) -> float:
    started = time.perf_counter()
    run("hash", "--no-progress", "-j", str(jobs), str(photos))
    return round(files / (time.perf_counter() - started), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="scan only the first N photos")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lk-scan-bench-") as tmp:
        work = Path(tmp)
        photos = corpus_dir()
        if args.limit is not None:
            subset = work / "photos"
            subset.mkdir()
            files = sorted(p for p in photos.rglob("*") if p.is_file())[: args.limit]
            for path in files:
                (subset / f"{path.parent.name}__{path.name}").symlink_to(path)
            photos = subset
        db = str(work / "bench.db")
        entries = build_bank(photos, db, work)
        print(f"bank: {entries} entries", flush=True)
        runs = []
        for jobs in args.jobs:
            result = scan(photos, db, work, jobs)
            result["hash_wall_files_per_s"] = hash_rate(photos, jobs, result["files"])
            runs.append(result)
            print(json.dumps(result), flush=True)

    payload = {"machine": machine(), "bank_entries": entries, "runs": runs}
    lines = [
        "## Scan: a directory matched against a bank of its own hashes",
        "",
        f"`python bench/scan_bench.py{'' if args.limit is None else f' --limit {args.limit}'}` "
        f"on {payload['machine']['cpu']} ({payload['machine']['cores']} cores), "
        f"{payload['machine']['date']}: `lightkeeper scan` of the photo corpus against one "
        f"bank of its {entries} PDQ and MD5 hashes (so every file matches), report to a file.",
        "Scan files/s: as the scan's summary prints it (from the end of the directory walk "
        "to the last record, worker start-up and index loading included); wall: the whole "
        "command; hash: `lightkeeper hash` of the same files, same jobs, wall clock "
        "(the baseline without matching).",
        "",
        "| jobs | files | matched | errors | scan files/s | wall s | wall files/s | "
        "hash wall files/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['jobs']} | {r['files']} | {r['matched']} | {r['errors']} | "
            f"{r['files_per_s']} | {r['wall_seconds']} | {r['wall_files_per_s']} | "
            f"{r['hash_wall_files_per_s']} |"
        )
    write_results("scan", payload, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
