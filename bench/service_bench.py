"""Load on the HTTP service: `lightkeeper serve --workers 2` on loopback, driven by wrk.

What a platform sees: requests/s and p50/p99 latency for the four calls it makes, against a
block bank of N random PDQ hashes (default 1 M and 13.4 M, a national list's size):

- ``single``: ``GET /v1/lookup?signal_type=pdq&value=…``, one hash per request;
- ``batch`` and ``batch10k``: ``POST /v1/lookup`` with 1,000 and 10,000 (the API's most)
  hashes per request (hashes/s reported too);
- ``match``: ``POST /v1/match`` of a 1-megapixel baseline JPEG (raw body, image/jpeg): decode,
  PDQ, MD5/SHA-1/SHA-256, lookups, decision;
- ``hma``: ``GET /m/raw_lookup?signal_type=pdq&signal=…``, HMA 2.0's route, for the
  comparison with HMA on this machine (DESIGN §6: ~290 req/s, p99 ~45 ms at 1 M).

Lookups cycle through a few thousand hashes: 99 % random ones that match nothing (the
common case: almost every upload is benign) and 1 % near-duplicates of bank entries (0-8 bits
flipped), which do match and so also pay for reading the entry back from the store. Before the
load, one batched lookup of every prepared hash checks that exactly the planted ones match.

Set-up, per size N, in ``--dir`` (default ``bench/.work``, reused across runs):

1. A fresh SQLite store with bank ``bench`` (created through `BankStore`, which logs its one
   "bank" change), then N random PDQ hashes (seeded) written straight into the ``entries``
   table with sqlite3 ``executemany`` in one transaction: `BankStore.write_batch` runs at
   ~19 k hashes/s (12 minutes for 13.4 M) and this is what `bench/import_bench.py` measures;
   here only the served index matters. No change-log row per entry: an index follower loads
   entries from the table. A store with the right count is reused.
2. The index snapshot, built once (`IndexFollower` with a snapshot directory), so that each
   worker starts by memory-mapping it, as a deployed service does after its first start.
3. An API key with the matching scopes only (``lookup``, ``match``: it never sees bank
   values) and a rate limit of 1,000,000 requests/s.

Then `lightkeeper serve` (the installed command) runs as a subprocess; once ``/readyz``
answers and every worker has started, each workload runs under ``wrk -t1 -c<C> -d<D>s
--latency`` (one load-generator thread: the machine has 2 cores and the server needs them)
for each connection count C, after a short warm-up. wrk is closed-loop (each connection sends
its next request when the last is answered), so latency includes queueing in the server but
not a backlog the load generator would have built. Reported per run: requests/s, hashes/s,
p50/p90/p99, non-2xx responses and socket errors, and the CPU (in cores) that the server, wrk
and every other process used meanwhile: the machine is shared, and a run that other work
slowed down says so. Per workload: the best throughput whose p99 stays within the target
(20 ms for lookups, 100 ms for uploads). The workers' memory
(RSS, and PSS, which counts pages shared between them, the snapshot's, once) is read from
``/proc/PID/smaps_rollup`` after start-up and after the load.

    python bench/service_bench.py [--sizes 1000000,13400000] [--duration 20]
                                  [--workloads single,batch,batch10k,match,hma] [--quick] [--report]

Needs wrk (Debian: ``apt-get install wrk``). Writes bench/results/service.json and its
section of docs/benchmarks.md; results of sizes not run this time are kept from the last run.
``--quick`` (100,000 hashes, 5 s per run) is a smoke test and writes nothing; ``--report``
rewrites the docs section from the results file without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx
import numpy as np
from PIL import Image
from sqlalchemy import Table
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import SQLAlchemyError

from common import RESULTS, ROOT, corpus_dir, machine, write_results
from lightkeeper.banks import BankStore
from lightkeeper.banks.models import EntryRow
from lightkeeper.errors import LightkeeperError
from lightkeeper.matching.follower import IndexFollower
from lightkeeper.service.keys import create_key
from lightkeeper.service.settings import ServiceSettings

HERE = Path(__file__).resolve().parent
LUA = HERE / "wrk" / "requests.lua"
NAME = "service"
BANK = "bench"
SEED = 4
#: Share of looked-up hashes that are near-duplicates of bank entries (they match).
PLANTED_SHARE = 0.01
#: Bits flipped in a planted hash: well inside PDQ's threshold of 31.
PLANTED_MAX_BITS = 8
SINGLE_QUERIES = 4000
#: Batched-lookup workloads: hashes per request, and how many different bodies to cycle
#: through (list file ``<name>.txt``, bodies ``<name>NN.json``). 10,000 is the API's most.
BATCHES = {"batch": (1_000, 20), "batch10k": (10_000, 4)}
PHOTOS = 20
PHOTO_PIXELS = 1_000_000
KEY_SCOPES = ("lookup", "match")
INSERT_CHUNK = 500_000
READY_TIMEOUT_S = 900.0
WARMUP_S = 3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    #: "get": the list file holds paths to GET; "post": it names files, each one body.
    mode: str
    list_file: str
    hashes_per_request: int
    connections: tuple[int, ...]
    #: DESIGN §6: the least throughput (requests/s, or hashes/s for batches) and the
    #: largest p99 latency that meet the target.
    min_per_s: float
    p99_target_ms: float
    target: str
    path: str = ""
    content_type: str = ""

    def lua_args(self, load: Path) -> tuple[str, ...]:
        """Arguments after wrk's ``--`` (see bench/wrk/requests.lua)."""
        if self.mode == "get":
            return ("get", str(load / self.list_file))
        return ("post", str(load / self.list_file), self.content_type, self.path)

    def per_s(self, run: dict[str, Any]) -> float:
        """The throughput the target is stated in."""
        rate = run["hashes_per_s"] if self.hashes_per_request > 1 else run["requests_per_s"]
        return float(rate)


WORKLOADS = (
    Workload(
        "single",
        "single lookup `GET /v1/lookup`",
        "get",
        "single.txt",
        1,
        (8, 16, 32),
        2000,
        20.0,
        "≥ 2,000 req/s, p99 ≤ 20 ms",
    ),
    *(
        Workload(
            name,
            f"batched lookup `POST /v1/lookup`, {size:,} hashes",
            "post",
            f"{name}.txt",
            size,
            (1, 2, 4),
            20_000,
            float("inf"),
            "≥ 20,000 hashes/s",
            path="/v1/lookup",
            content_type="application/json",
        )
        for name, (size, _) in BATCHES.items()
    ),
    Workload(
        "match",
        "upload and match `POST /v1/match`, 1 MP JPEG",
        "post",
        "photos.txt",
        0,
        (2, 4, 8, 16),
        130,
        100.0,
        "≥ 130 req/s, p99 ≤ 100 ms (HMA: ~20 req/s, p99 ~420 ms)",
        path="/v1/match",
        content_type="image/jpeg",
    ),
    Workload(
        "hma",
        "HMA single lookup `GET /m/raw_lookup`",
        "get",
        "hma.txt",
        1,
        (8, 16, 32),
        2000,
        20.0,
        "≥ 2,000 req/s, p99 ≤ 20 ms (HMA 2.0 at 1 M: ~290 req/s, p99 ~45 ms)",
    ),
)
BY_NAME = {w.name: w for w in WORKLOADS}


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    url: str
    workers: list[int]
    startup_s: float
    log: Path


# ---------------------------------------------------------------------------------------------
# Set-up: the store, the snapshot, the key, the request data


def store_dir(work: Path, size: int) -> Path:
    return work / f"n{size}"


def seed_store(work: Path, size: int) -> dict[str, Any]:
    """The store of `size` random PDQ hashes in bank "bench", made once and then reused."""
    where = store_dir(work, size)
    marker = where / "seeded.json"
    db = where / "lightkeeper.db"
    if marker.exists() and db.exists():
        info = cast(dict[str, Any], json.loads(marker.read_text()))
        if info.get("entries") == size and info.get("seed") == SEED and opens(db):
            info["reused"] = True
            return info
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    started = time.perf_counter()
    with BankStore.open(str(db)) as store:
        bank = store.create_bank(BANK, description="service_bench: random PDQ hashes")
    bulk_insert(db, bank.id, size)
    seconds = time.perf_counter() - started
    info = {
        "entries": size,
        "seed": SEED,
        "method": "sqlite3 executemany into entries, one transaction",
        "seconds": round(seconds, 1),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    marker.write_text(json.dumps(info, indent=2) + "\n")
    print(f"  seeded {size:,} hashes in {seconds:.0f} s", flush=True)
    return {**info, "reused": False}


def opens(db: Path) -> bool:
    """Whether the store opens (and migrates to this version's head); a store left by a
    development version whose migrations were renumbered since does not, and is rebuilt."""
    try:
        with BankStore.open(str(db)):
            return True
    except (LightkeeperError, SQLAlchemyError) as exc:
        print(f"  {db} does not open ({type(exc).__name__}): made again", flush=True)
        return False


def random_values(size: int) -> Iterator[list[str]]:
    """`size` random 64-hex-digit PDQ values (fixed seed), a chunk at a time."""
    rng = np.random.default_rng(SEED)
    for start in range(0, size, INSERT_CHUNK):
        count = min(INSERT_CHUNK, size - start)
        text = rng.integers(0, 256, (count, 32), dtype=np.uint8).tobytes().hex()
        yield [text[i : i + 64] for i in range(0, len(text), 64)]


def bulk_insert(db: Path, bank_id: int, size: int) -> None:
    """Write the entries with sqlite3 directly, in one transaction, as `_bulk` would lay
    them out (timestamps in SQLAlchemy's SQLite format), with no change-log row per entry."""
    dialect = sqlite_dialect.dialect()
    added_at = cast(Table, EntryRow.__table__).c.added_at.type
    to_db = added_at.dialect_impl(dialect).bind_processor(dialect)
    now = datetime.now(UTC)
    stamp = to_db(now) if to_db is not None else now
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        # A rollback journal for the one big transaction: WAL would copy every page into
        # a multi-gigabyte log first. The store is WAL again before anyone else opens it.
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1000000")
        conn.execute("BEGIN")
        for values in random_values(size):
            conn.executemany(
                "INSERT INTO entries (bank_id, signal_type, value, list_name, list_version, "
                "external_id, classification, note, added_at, updated_at, enabled) "
                "VALUES (?, 'pdq', ?, 'service_bench', NULL, NULL, NULL, NULL, ?, ?, 1)",
                ((bank_id, value, stamp, stamp) for value in values),
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def build_snapshot(db: Path, index_dir: Path) -> dict[str, Any]:
    """Make sure the index snapshot exists (built from the store when it does not); returns
    what building it took, remembered beside the store for later runs."""
    started = time.perf_counter()
    with BankStore.open(str(db)) as store:
        follower = IndexFollower(store, snapshot_dir=index_dir)
        status = follower.status()
        del follower
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file())
    print(
        f"  index snapshot: {status.loaded_from} in {seconds:.1f} s, "
        f"{size / 2**20:,.0f} MiB, sizes {status.sizes}",
        flush=True,
    )
    record = db.parent / "snapshot.json"
    info: dict[str, Any] = {"mib": round(size / 2**20, 1), "indexed": status.sizes}
    if status.loaded_from == "store" or not record.exists():
        info["built_from_store_s"] = round(seconds, 1) if status.loaded_from == "store" else None
        record.write_text(json.dumps(info, indent=2) + "\n")
    else:
        info["built_from_store_s"] = json.loads(record.read_text()).get("built_from_store_s")
    return {**info, "loaded_from": status.loaded_from, "seconds": round(seconds, 1)}


def planted(values: Sequence[str], rng: random.Random) -> list[str]:
    """Near-duplicates of `values`: each with 0..PLANTED_MAX_BITS random bits flipped."""
    out = []
    for value in values:
        code = int(value, 16)
        for bit in rng.sample(range(256), rng.randint(0, PLANTED_MAX_BITS)):
            code ^= 1 << bit
        out.append(f"{code:064x}")
    return out


def lookup_hashes(
    db: Path, size: int, count: int, rng: random.Random
) -> tuple[list[str], set[str]]:
    """`count` hashes to look up, shuffled: 1 % near-duplicates of bank entries (read from
    the store, entry ids 1..size), the rest random; returns them and the planted ones."""
    wanted = max(1, round(count * PLANTED_SHARE))
    ids = rng.sample(range(1, size + 1), wanted)
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT value FROM entries WHERE id IN ({marks})", ids).fetchall()
    if len(rows) != wanted:
        raise SystemExit(f"expected entry ids 1..{size} in {db}; delete it and run again")
    near = planted([row[0] for row in rows], rng)
    hashes = near + [f"{rng.getrandbits(256):064x}" for _ in range(count - wanted)]
    rng.shuffle(hashes)
    return hashes, set(near)


def prepare_photos(work: Path) -> tuple[list[Path], str]:
    """~1 MP baseline JPEGs (quality 90): real photos from the corpus, else synthetic ones."""
    out = work / "photos"
    made = sorted(out.glob("*.jpg"))
    source_note = (out / "SOURCE").read_text().strip() if (out / "SOURCE").exists() else ""
    if len(made) >= PHOTOS and source_note:
        return made[:PHOTOS], source_note
    out.mkdir(parents=True, exist_ok=True)
    for old in made:
        old.unlink()
    try:
        corpus = corpus_dir()
        candidates = [
            p
            for p in sorted(corpus.rglob("*"))
            if p.suffix.lower() in (".jpg", ".jpeg") and _pixels(p) >= PHOTO_PIXELS
        ]
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"  photo corpus unavailable ({exc}); using synthetic photos", file=sys.stderr)
        candidates = []
    if len(candidates) >= PHOTOS:
        step = len(candidates) / PHOTOS
        for i in range(PHOTOS):
            with Image.open(candidates[int(i * step)]) as im:
                _save_1mp(im.convert("RGB"), out / f"photo{i:02d}.jpg")
        source_note = f"{PHOTOS} corpus photos (bench/common.corpus_dir), resized to ~1 MP"
    else:
        rng = np.random.default_rng(SEED)
        for i in range(PHOTOS):
            _save_1mp(_synthetic_photo(rng), out / f"photo{i:02d}.jpg")
        source_note = f"{PHOTOS} synthetic photos (corpus missing), ~1 MP"
    (out / "SOURCE").write_text(source_note + "\n")
    return sorted(out.glob("*.jpg")), source_note


def _pixels(path: Path) -> int:
    try:
        with Image.open(path) as im:
            return im.width * im.height
    except OSError:
        return 0


def _save_1mp(im: Image.Image, path: Path) -> None:
    scale = (PHOTO_PIXELS / (im.width * im.height)) ** 0.5
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    im.resize(size, Image.Resampling.LANCZOS).save(path, "JPEG", quality=90, progressive=False)


def _synthetic_photo(rng: np.random.Generator) -> Image.Image:
    """Smooth colour fields with texture: decodes and hashes like a photo, not a flat test card."""
    y, x = np.mgrid[0:1000, 0:1000].astype(np.float32) / 1000
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(1, 6, 3)
        wave = np.sin(2 * np.pi * (fx * x + phase)) * np.cos(2 * np.pi * fy * y)
        channels.append(128 + 90 * wave + rng.normal(0, 12, wave.shape))
    pixels = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def write_requests(load: Path, hashes: list[str], batches: dict[str, list[list[str]]]) -> None:
    """The files the wrk script reads: paths to GET, bodies to POST."""
    load.mkdir(parents=True, exist_ok=True)
    (load / "single.txt").write_text(
        "".join(f"/v1/lookup?signal_type=pdq&value={h}\n" for h in hashes)
    )
    (load / "hma.txt").write_text(
        "".join(f"/m/raw_lookup?signal_type=pdq&signal={h}\n" for h in hashes)
    )
    for name, bodies in batches.items():
        names = []
        for i, batch in enumerate(bodies):
            body = load / f"{name}{i:02d}.json"
            items = [{"signal_type": "pdq", "value": h} for h in batch]
            body.write_text(json.dumps({"hashes": items}))
            names.append(str(body))
        (load / f"{name}.txt").write_text("\n".join(names) + "\n")


# ---------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lightkeeper_command() -> list[str]:
    """The installed `lightkeeper` beside this Python (the real CLI), else the module."""
    script = Path(sys.executable).with_name("lightkeeper")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from lightkeeper.cli.main import main; main()"]


def worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes: children of the supervisor started by multiprocessing."""
    found = []
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return sorted(found)


@contextmanager
def running_server(
    db: Path | str,
    index_dir: Path,
    workers: int,
    log: Path,
    *,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """`lightkeeper serve` on a free loopback port over `db` (an SQLite path or a URL), with
    extra `options` and the environment `env` (None: this process's), until the block ends."""
    port = free_port()
    command = [
        *lightkeeper_command(),
        "serve",
        "--workers",
        str(workers),
        "--db",
        str(db),
        "--index-dir",
        str(index_dir),
        "--port",
        str(port),
        "--log-level",
        "info",  # uvicorn's "Application startup complete." tells when each worker is up
        *options,
    ]
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    workers_seen: list[int] = []
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise SystemExit(f"lightkeeper serve exited ({process.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"lightkeeper serve not ready after {READY_TIMEOUT_S} s")
            up = log.read_text(errors="replace").count("Application startup complete.")
            if up >= workers and _ready(url):
                break
            time.sleep(0.2)
        workers_seen = worker_pids(process.pid)
        if len(workers_seen) != workers:
            raise SystemExit(f"expected {workers} worker processes, found {workers_seen}")
        yield Server(process, url, workers_seen, time.perf_counter() - started, log)
    finally:
        stop(process, workers_seen)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop(process: subprocess.Popen[bytes], workers: list[int]) -> None:
    """SIGTERM (uvicorn stops its workers gracefully), then SIGKILL what is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in workers:  # normally gone with their supervisor; a stuck one is killed
        with suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def memory(pids: Sequence[int]) -> dict[str, Any]:
    """RSS and PSS of each process, in MiB (PSS splits shared pages between their users)."""
    rows = []
    for pid in pids:
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if parts and parts[0] in ("Rss:", "Pss:"):
                fields[parts[0][:-1].lower()] = round(int(parts[1]) / 1024, 1)
        rows.append({"pid": pid, **fields})
    return {
        "workers": rows,
        "rss_mib_total": round(sum(r.get("rss", 0.0) for r in rows), 1),
        "pss_mib_total": round(sum(r.get("pss", 0.0) for r in rows), 1),
    }


# ---------------------------------------------------------------------------------------------
# Checks and load


def check(
    server: Server, key: str, size: int, hashes: list[str], near: set[str], photo: Path
) -> dict[str, Any]:
    """One of each request, answered as expected, before any load: the index holds `size`
    hashes; exactly the planted hashes match; an upload is hashed and accepted; the HMA route
    finds a planted hash (or answers 404 where it does not exist yet: skipped)."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
        indexed = client.get("/v1/index/status").json()["signal_types"].get("pdq", {}).get("size")
        if indexed != size:
            raise SystemExit(f"the service indexes {indexed} PDQ hashes, not {size}")
        r = client.post(
            "/v1/lookup", json={"hashes": [{"signal_type": "pdq", "value": h} for h in hashes]}
        )
        r.raise_for_status()
        matched = {result["value"] for result in r.json()["results"] if result["matched"]}
        if matched != near:
            raise SystemExit(
                f"{len(matched)} lookups matched, {len(near)} were planted, "
                f"{len(matched & near)} of them matched: wrong answers"
            )
        single = client.get("/v1/lookup", params={"signal_type": "pdq", "value": hashes[0]})
        single.raise_for_status()
        upload = client.post(
            "/v1/match", content=photo.read_bytes(), headers={"Content-Type": "image/jpeg"}
        )
        upload.raise_for_status()
        if upload.json()["decision"] != "accept" or "pdq" not in upload.json()["signals"]:
            raise SystemExit(f"unexpected /v1/match answer: {upload.text[:300]}")
        probe = min(near)
        hma = client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": probe})
        if hma.status_code == 200 and not hma.json().get("matches"):
            raise SystemExit(f"/m/raw_lookup missed a planted hash: {hma.text[:300]}")
        if hma.status_code not in (200, 404):
            raise SystemExit(f"/m/raw_lookup answered {hma.status_code}: {hma.text[:300]}")
    return {
        "index_pdq_entries": indexed,
        "lookups_checked": len(hashes),
        "planted": len(near),
        "planted_matched": len(matched & near),
        "others_matched": len(matched - near),
        "hma_raw_lookup_status": hma.status_code,
    }


def machine_busy_s() -> tuple[float, float]:
    """CPU seconds since boot (all cores) that this machine spent busy, and that its
    hypervisor took for other guests ("steal": time this VM wanted a core and had none)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


def process_cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) these processes have used."""
    total = 0
    for pid in pids:
        with suppress(OSError):
            after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(after_name[11]) + int(after_name[12])  # utime, stime
    return total / CLOCK_TICKS


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    server: Server,
    key: str,
    lua_args: Sequence[str],
    workload: Workload,
    connections: int,
    seconds: int,
) -> dict[str, Any]:
    """One wrk run; with where the machine's CPU went meanwhile (the server, wrk, others, and
    what the hypervisor took), since on a shared machine other load is what makes a run slow."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        server.url,
        "--",
        *lua_args,
    ]
    env = {**os.environ, "LK_BENCH_KEY": key}
    ours = [server.process.pid, *server.workers]
    (busy, stolen), served, wrk_cpu = machine_busy_s(), process_cpu_s(ours), children_cpu_s()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    busy_after, stolen_after = machine_busy_s()
    busy, stolen = busy_after - busy, stolen_after - stolen
    served = process_cpu_s(ours) - served
    wrk_cpu = children_cpu_s() - wrk_cpu
    line = next((s for s in done.stdout.splitlines() if s.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    rps = raw["requests"] / (raw["duration_us"] / 1e6)
    return {
        "workload": workload.name,
        "connections": connections,
        "seconds": seconds,
        "requests": raw["requests"],
        "requests_per_s": round(rps, 1),
        "hashes_per_s": round(rps * workload.hashes_per_request)
        if workload.hashes_per_request
        else None,
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 1),
        "non_2xx": raw["non_2xx_3xx"],
        "socket_errors": raw["connect_errors"]
        + raw["read_errors"]
        + raw["write_errors"]
        + raw["timeouts"],
        "cpu_cores": {
            "server": round(served / elapsed, 2),
            "wrk": round(wrk_cpu / elapsed, 2),
            "others": round(max(0.0, busy - served - wrk_cpu) / elapsed, 2),
            "stolen": round(stolen / elapsed, 2),
        },
    }


def best(runs: list[dict[str, Any]], workload: Workload) -> dict[str, Any] | None:
    """The highest throughput among error-free runs within the p99 target."""
    fine = [
        r
        for r in runs
        if r["p99_ms"] <= workload.p99_target_ms and not r["non_2xx"] and not r["socket_errors"]
    ]
    return max(fine, key=workload.per_s) if fine else None


def run_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    where = store_dir(args.dir, size)
    print(f"== {size:,} hashes", flush=True)
    seeded = seed_store(args.dir, size)
    db, index_dir = where / "lightkeeper.db", where / "index"
    snapshot = build_snapshot(db, index_dir)
    with BankStore.open(str(db)) as store:
        _, key = create_key(store, "service_bench", KEY_SCOPES, rate_limit=1e6)

    rng = random.Random(SEED)
    singles, near = lookup_hashes(db, size, SINGLE_QUERIES, rng)
    batches: dict[str, list[list[str]]] = {}
    for name, (batch_size, bodies) in BATCHES.items():
        found, _ = lookup_hashes(db, size, batch_size * bodies, rng)
        batches[name] = [found[i : i + batch_size] for i in range(0, len(found), batch_size)]
    load = where / "load"
    write_requests(load, singles, batches)
    photos, photo_source = prepare_photos(args.dir)
    photo_list = load / "photos.txt"
    photo_list.write_text("".join(f"{p}\n" for p in photos))

    load_average = os.getloadavg()[0]
    with running_server(db, index_dir, args.workers, where / "serve.log") as server:
        print(f"  serving at {server.url}, ready in {server.startup_s:.1f} s", flush=True)
        try:
            checked = check(server, key, size, singles, near, photos[0])
        except httpx.HTTPError as exc:
            raise SystemExit(f"the service failed a check: {exc!r}; see {server.log}") from exc
        print(f"  checked: {checked}", flush=True)
        memory_ready = memory(server.workers)
        runs: list[dict[str, Any]] = []
        chosen: dict[str, Any] = {}
        hma_ok = checked["hma_raw_lookup_status"] == 200
        for workload in WORKLOADS:
            if workload.name not in args.workloads or (workload.name == "hma" and not hma_ok):
                continue
            lua_args = workload.lua_args(load)
            run_wrk(server, key, lua_args, workload, workload.connections[0], WARMUP_S)
            found = []
            for connections in workload.connections:
                result = run_wrk(server, key, lua_args, workload, connections, args.duration)
                print(f"  {json.dumps(result)}", flush=True)
                found.append(result)
            runs += found
            pick = best(found, workload)
            chosen[workload.name] = None if pick is None else pick["connections"]
        memory_loaded = memory(server.workers)
        startup = round(server.startup_s, 1)
    load_after = os.getloadavg()[0]
    return {
        "size": size,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "workers": args.workers,
        # what the server read from this process's environment (LIGHTKEEPER_PAIRED_TABLES)
        "paired_tables": ServiceSettings.from_env().paired_tables,
        "seeded": seeded,
        "snapshot": snapshot,
        "server_ready_s": startup,
        "load_average_before": round(load_average, 2),
        "load_average_after": round(load_after, 2),
        "check": checked,
        "photos": photo_source,
        "planted_share": PLANTED_SHARE,
        "memory_after_start": memory_ready,
        "memory_after_load": memory_loaded,
        "runs": runs,
        "chosen_connections": chosen,
        "skipped": {}
        if checked["hma_raw_lookup_status"] == 200
        else {"hma": f"/m/raw_lookup answered {checked['hma_raw_lookup_status']}"},
    }


# ---------------------------------------------------------------------------------------------
# Report


def markdown(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = [
        "## HTTP service under load (`bench/service_bench.py`)",
        "",
        f"`lightkeeper serve --workers 2` on loopback over an SQLite store, driven by "
        f"`wrk -t1 --latency` (one load-generator thread, on the same {m['cores']}-core "
        f"{m['cpu']}; wrk is closed-loop: each connection waits for its answer). "
        "Lookups: 99 % random hashes (no match: the common case), 1 % near-duplicates of "
        "bank entries, 0-8 bits away (they match; checked before each load). Uploads: 20 "
        "~1 MP baseline JPEGs, quality 90, none in the bank. The bank of N random PDQ hashes "
        "was seeded by bulk SQL (sqlite3 executemany into `entries`, one transaction), not "
        "through the import path (`bench/import_bench.py` measures that); each worker "
        "reads the index snapshot built beforehand into memory of its own, in huge pages "
        "where the kernel offers them (runs dated before 2026-11-22 19:00 UTC memory-mapped "
        "it instead, shared between the workers), and, where `LIGHTKEEPER_PAIRED_TABLES` "
        "is on (the default from 2026-11-23 11:40 UTC on; the last table says which runs "
        "had it), builds the paired tables of the PDQ index there, which single lookups "
        "use, and batches too in runs from 2026-11-23 13:00 UTC on. The machine is shared "
        "with other work: see the CPU column below for how much of it each run had. It is "
        "also a VM whose host's speed varies, most of all how long memory takes to "
        "answer, which a lookup at 13.4 M mostly waits on, and which moved to another host "
        "on 2026-11-23 between 11:46 and 13:27 UTC (its kernel build and CPU name changed; "
        "the machine line above is the newest run's). Before the move, five runs at 13.4 M "
        "with the compact index between 02:27 and 04:29 UTC gave 1,288 to 2,004 single "
        "lookups/s and 16,991 to 23,775 hashes/s in batches of 10,000; at 11:46, with "
        "paired tables (single lookups only), 3,384 and 17,923. After it, the 13.4 M run "
        "below (13:27, paired tables in both) gave 7,743 and 91,396, and a run with the "
        "compact index right after it (13:32, `--workloads single,batch10k`, "
        "LIGHTKEEPER_PAIRED_TABLES=0; workers' RSS 2,687 MiB against 3,946) gave 2,880 "
        "(p99 9.9 ms) and 47,969. Compare runs taken together. "
        "HMA's `GET /m/raw_lookup` is answered on the same "
        "hot path as `GET /v1/lookup` from commit e513dde on (before, through "
        "FastAPI's routing: 1,043 req/s at 13.4 M against 1,623 for `/v1/lookup` in the "
        "03:22 run).",
        "",
        "Best throughput per workload within its p99 target (DESIGN §6), or, where no run "
        "kept within it, the fastest run:",
        "",
        "| hashes | workload | conns | req/s | hashes/s | p50 ms | p99 ms | target | met |",
        "|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for run in payload["runs"]:
        for name in run["chosen_connections"]:
            workload = BY_NAME[name]
            mine = [r for r in run["runs"] if r["workload"] == name]
            within = best(mine, workload)
            pick = within or max(mine, key=workload.per_s)
            met = within is not None and workload.per_s(within) >= workload.min_per_s
            lines.append(
                f"| {run['size']:,} | {workload.title} | {_cells(pick)} | {workload.target} "
                f"| {'yes' if met else 'no'} |"
            )
    lines += [
        "",
        "Every run (★: the one above). CPU: "
        "cores used during the run by the server (supervisor and workers), by wrk, by "
        "other processes on this shared machine (/proc/stat minus the first two), and "
        "taken by the hypervisor for other guests while this VM had work (/proc/stat "
        "steal; runs before 2026-11-23 count it with others and show -); a run with "
        "others at work, or with cores stolen, is slower than the service is.",
        "",
        "| hashes | workload | conns | req/s | hashes/s | p50 ms | p99 ms "
        "| non-2xx / socket errors "
        "| CPU server / wrk / others / stolen |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in payload["runs"]:
        for r in run["runs"]:
            chosen = run["chosen_connections"].get(r["workload"]) == r["connections"]
            cells = _cells(r).replace(" |", " ★ |", 1) if chosen else _cells(r)
            cpu = r.get("cpu_cores")  # absent from results of older versions of this script
            usage = "" if cpu is None else _usage(cpu)
            lines.append(
                f"| {run['size']:,} | {BY_NAME[r['workload']].title} | {cells} "
                f"| {r['non_2xx']} / {r['socket_errors']} | {usage} |"
            )
    lines += [
        "",
        "| hashes | bulk seeding (once) | index from store (once) | snapshot "
        "| PDQ index | workers ready | workers RSS (sum) | workers PSS (sum) | run |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for run in payload["runs"]:
        mem, snap = run["memory_after_load"], run["snapshot"]
        built = snap.get("built_from_store_s")
        lines.append(
            f"| {run['size']:,} | {run['seeded']['seconds']} s "
            f"| {'' if built is None else f'{built} s'} | {snap['mib']:,.0f} MiB "
            f"| {'paired tables' if run.get('paired_tables') else 'compact'} "
            f"| {run['server_ready_s']} s | {mem['rss_mib_total']:,.0f} MiB "
            f"| {mem['pss_mib_total']:,.0f} MiB | {run['date']}: `{run['command']}` |"
        )
    lines += [
        "",
        "Set-up times were taken once, on a shared machine. Workers ready: from starting "
        "`lightkeeper serve` to /readyz answering with both workers up (each loads the "
        "snapshot). Memory of the two workers after the load (/proc/PID/smaps_rollup): PSS "
        "counts pages they share once (a mapped snapshot's, in the older runs); the rest is "
        "each worker's own index, Python, libraries and buffers.",
    ]
    skipped = {f"{run['size']:,}: {v}" for run in payload["runs"] for v in run["skipped"].values()}
    if skipped:
        lines.append(f"Not measured: the HMA route ({'; '.join(sorted(skipped))}).")
    return "\n".join(lines)


def _cells(r: dict[str, Any]) -> str:
    per_request = BY_NAME[r["workload"]].hashes_per_request
    rps = round(r["requests_per_s"])
    # One hash per request: the same number as req/s, not a rounding of another.
    hashes = "" if not per_request else f"{r['hashes_per_s'] if per_request > 1 else rps:,}"
    return f"{r['connections']} | {rps:,} | {hashes} | {r['p50_ms']} | {r['p99_ms']}"


def _usage(cpu: dict[str, Any]) -> str:
    """The CPU cell: cores of the server, wrk, others and stolen (older results have none)."""
    stolen = cpu.get("stolen")
    return f"{cpu['server']} / {cpu['wrk']} / {cpu['others']} / {'-' if stolen is None else stolen}"


def merged(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's sizes, plus the other sizes of the last results file."""
    path = RESULTS / f"{NAME}.json"
    previous: list[dict[str, Any]] = []
    if path.exists():
        previous = json.loads(path.read_text()).get("runs", [])
    sizes = {run["size"] for run in runs}
    return sorted(
        [*(r for r in previous if r["size"] not in sizes), *runs], key=lambda r: r["size"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="1000000,13400000",
        type=lambda s: [int(float(x)) for x in s.split(",") if x.strip()],
        help="comma-separated bank sizes (default: 1000000,13400000)",
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--workloads",
        default="single,batch,batch10k,match,hma",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
    )
    parser.add_argument(
        "--dir", type=Path, default=ROOT / "bench" / ".work", help="work directory, reused"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 100,000 hashes, 5 s, nothing written"
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="only rewrite the docs section from bench/results/service.json (no load)",
    )
    args = parser.parse_args()
    if args.report:
        payload = json.loads((RESULTS / f"{NAME}.json").read_text())
        write_results(NAME, payload, markdown(payload))
        return 0
    if args.quick:
        args.sizes, args.duration = [100_000], 5
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk (Debian/Ubuntu)", file=sys.stderr)
        return 2
    args.dir = args.dir.resolve()
    runs = [run_size(size, args) for size in args.sizes]
    payload = {"machine": machine(), "runs": merged(runs) if not args.quick else runs}
    text = markdown(payload)
    print(text)
    if not args.quick:
        write_results(NAME, payload, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
