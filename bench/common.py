"""Shared plumbing for the benchmarks: one-core pinning, the photo corpus, results files.

Benchmarks run on demand (`make bench`), never in the test suite. Each writes
`bench/results/<name>.json` and replaces its own section of `docs/benchmarks.md`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lightkeeper.banks.pgserver import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"


def pin_one_core() -> None:
    """Run on one core with single-threaded BLAS, as the targets in DESIGN §6 are stated."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def corpus_dir() -> Path:
    """The 824-photo corpus of shared/corpus, rebuilt from Debian packages on first use."""
    target = Path(os.environ.get("LIGHTKEEPER_CORPUS", ROOT / "bench" / ".corpus"))
    if not (target / "A_deb_terrestrial").is_dir():
        script = SHARED / "corpus" / "build_from_manifest.py"
        manifest = SHARED / "corpus" / "manifest.csv"
        print(f"building the photo corpus into {target} (first run only) …", file=sys.stderr)
        subprocess.run([sys.executable, str(script), str(manifest), str(target)], check=True)
    return target


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_results(name: str, payload: dict[str, Any], markdown: str) -> None:
    """Write the JSON results and replace this benchmark's section of docs/benchmarks.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@contextmanager
def postgres_database(name: str) -> Iterator[tuple[PostgresServer, str]]:
    """A throwaway PostgreSQL server started as the tests start theirs (its own temporary
    directory, fsync off, removed afterwards), and the URL of a new database `name` on it."""
    with PostgresServer.start() as server:
        admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        url = make_url(server.admin_url).set(database=name)
        print(f"  PostgreSQL server in {server.base_dir}, port {server.port}", flush=True)
        yield server, url.render_as_string(hide_password=False)
