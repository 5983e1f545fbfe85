"""What acting costs: `POST /v1/match` of uploads that match a block bank, with and without actions.

Every upload here matches, so with actions on (the default) every call does the whole acting
path of issue 6 (docs/actions.md): the default policy's block + quarantine + review, that is
the upload encrypted into the vault (AES-256-GCM, a file written and fsynced), then one
transaction for the case, the recorded match and the audit event (``match.act``, after the
vault's own ``vault.put`` event). The same uploads are then sent to the same store served with
``--no-actions`` (match only: decode, PDQ, MD5/SHA-1/SHA-256, lookups, "reject"), so that the
difference is what acting costs a platform per upload:

- ``act``: ``lightkeeper serve --workers 2 --actions``;
- ``match-only``: ``lightkeeper serve --workers 2 --no-actions``.

Both are driven on loopback by wrk with bench/wrk/requests.lua, through bench/service_bench.py's
own machinery (its server start-up, wrk runs, CPU accounting and memory readings are imported,
not copied): ``wrk -t1 -c<C> -d<D>s --latency`` for C = 2, 4, 8, after a warm-up, cycling
through 20 ~1 MP baseline JPEGs (service_bench's photos), each POSTed as a raw body to
``/v1/match?uploader=actions-bench`` with no Idempotency-Key: every request is a new upload
and acts again (the same bytes join the same case; each is quarantined once more).

Set-up, in ``--dir``/actions/<backend>/ (default bench/.work/actions/sqlite/), made afresh
at each run and left behind afterwards for inspection:

1. the store: an SQLite file there (default), or with ``--backend postgresql`` a database on
   a throwaway PostgreSQL server started as the tests start theirs
   (`lightkeeper.banks.pgserver`: its own temporary directory, fsync and synchronous commit
   off, removed when the run ends);
2. block bank ``act`` holding the PDQ and SHA-256 of each of the 20 photos
   (`lightkeeper.hashing.hash_bytes`, `BankStore.add_entry`), so an upload makes two acting
   matches (exact and perceptual), or one (exact) where a photo's PDQ quality is below the
   bank's floor (one of service_bench's corpus photos), and the default policy (no policy is
   set) acts on it;
3. an API key with scope ``match`` only and a rate limit of 1,000,000 requests/s, which wrk
   uses; and an ``admin`` key that only this script uses, to read ``/metrics``;
4. the vault given explicitly: its directory ``vault/`` and a new master key file
   ``vault.key`` (mode 0600) in the work directory, named to the server by
   ``LIGHTKEEPER_VAULT_DIR`` and ``LIGHTKEEPER_VAULT_KEY_FILE`` (``LIGHTKEEPER_VAULT_KEY`` is
   removed from its environment, since it would win over the file).

Before each load, each photo is uploaded once and must be answered "reject" (acting: with
block and quarantine among the actions and a case id; match only: with no action and no
case). Reported per run: requests/s, p50/p90/p99, non-2xx responses and socket errors, and the
CPU, in cores, used by the server, by wrk, by the PostgreSQL server (its postmaster and
backends) and by every other process meanwhile.

After the acting load (once every request in flight has been answered), the store is read
and the counts must add up, or the script says so loudly and exits 1:

- cases: one per content, so 20, holding exactly the photos' SHA-256;
- recorded matches = the service's own count of ``/v1/match`` answered 200 (its Prometheus
  counter, all workers) = vault objects quarantined = ``match.act`` and ``vault.put`` audit
  events = the sum of the cases' upload counts. wrk counts answers too but stops with up to
  C requests in flight, which the server still completes: so recorded matches lie between
  the 200s wrk counted (warm-ups and checks included) and that plus the connections of each
  wrk run;
- the vault's files and their bytes on disk (apparent and allocated), against the uploads'
  own bytes; the store's growth;
- ``lightkeeper audit verify --json`` on the store: the chain must verify, and its length is
  reported. After the match-only load, nothing may have been written (counts unchanged).

Caveats: the machine is shared and has 2 cores for the server, wrk and the database together
(see the CPU columns); the acting cost depends on the disk the vault and the store are on
(each quarantine fsyncs a file and its directory; SQLite commits with WAL and
synchronous=NORMAL, the throwaway PostgreSQL with fsync off, so PostgreSQL's figures are
kinder than a durable server's); no webhook endpoint is registered, so no webhook event is
queued or delivered; the store grows during the acting runs (thousands of recorded matches
and vault objects), which the later runs pay for; PostgreSQL backends that exit during a run
are missing from its CPU figure.

    python bench/actions_bench.py [--backend sqlite|postgresql] [--duration 10]
                                  [--workloads act,match-only] [--quick] [--report]

Needs wrk (Debian: ``apt-get install wrk``), and for PostgreSQL the server binaries
(``postgresql``). Writes bench/results/actions.json and its section of docs/benchmarks.md;
the other backend's results are kept from the last run. ``--quick`` (3 s runs, 4 connections
only) is a smoke test and writes nothing; ``--report`` rewrites the docs section from the
results file without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from common import RESULTS, ROOT, machine, postgres_database, write_results
from lightkeeper.actions.cases import CASE_MATCHES, CASES
from lightkeeper.actions.vault import OBJECTS
from lightkeeper.actions.vault_crypto import KEY_ENV, KEY_FILE, Keyring
from lightkeeper.actions.webhooks import EVENTS
from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import AUDIT
from lightkeeper.banks.pgserver import PostgresServer
from lightkeeper.hashing import hash_bytes
from lightkeeper.service.keys import create_key
from lightkeeper.service.settings import VAULT_DIR_ENV
from service_bench import (
    WARMUP_S,
    Server,
    Workload,
    lightkeeper_command,
    memory,
    prepare_photos,
    process_cpu_s,
    run_wrk,
    running_server,
)

NAME = "actions"
BANK = "act"
BACKENDS = ("sqlite", "postgresql")
CONNECTIONS = (2, 4, 8)
QUICK_CONNECTIONS = (4,)
QUICK_SECONDS = 3
UPLOADER = "actions-bench"
MATCH_ROUTE = "/v1/match"
DATABASE = "lightkeeper_actions_bench"
#: How long to wait for the requests wrk left in flight to be answered.
SETTLE_TIMEOUT_S = 60.0
#: Cores other processes may use on average before the report calls the machine busy.
BUSY_CORES = 0.25
#: Audit actions one acted-on upload writes: the quarantine's, then the actioner's.
ACT_EVENTS = ("vault.put", "match.act")

_TARGET = "none of its own; match alone: ≥ 130 req/s, p99 ≤ 100 ms (DESIGN §6)"
WORKLOADS = (
    Workload(
        "act",
        "match and act (block, quarantine, review)",
        "post",
        "photos.txt",
        0,
        CONNECTIONS,
        0,
        100.0,
        _TARGET,
        path=f"{MATCH_ROUTE}?uploader={UPLOADER}",
        content_type="image/jpeg",
    ),
    Workload(
        "match-only",
        "match only (`--no-actions`)",
        "post",
        "photos.txt",
        0,
        CONNECTIONS,
        0,
        100.0,
        _TARGET,
        path=f"{MATCH_ROUTE}?uploader={UPLOADER}",
        content_type="image/jpeg",
    ),
)
BY_NAME = {w.name: w for w in WORKLOADS}
SERVE_OPTIONS = {"act": ("--actions",), "match-only": ("--no-actions",)}


# ---------------------------------------------------------------------------------------------
# The store: SQLite in the work directory, or a database on a throwaway PostgreSQL server


@contextmanager
def database(backend: str, work: Path) -> Iterator[tuple[str, Callable[[], list[int]]]]:
    """The store's URL (or SQLite path), and a function giving the database server's process
    ids (none for SQLite, which runs inside the service's workers)."""
    if backend == "sqlite":
        yield str(work / "lightkeeper.db"), list
        return
    with postgres_database(DATABASE) as (server, url):
        yield url, lambda: postgres_pids(server)


def postgres_pids(server: PostgresServer) -> list[int]:
    """The postmaster (first line of its pid file) and its children: backends and helpers."""
    try:
        parent = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except (OSError, ValueError, IndexError):
        return []
    return [parent, *(int(c) for c in children)]


def set_up(db: str, work: Path, photos: Sequence[Path]) -> dict[str, Any]:
    """Bank, keys and vault key (see the module docstring); returns what the run needs."""
    started = time.perf_counter()
    sha256s = set()
    with BankStore.open(db) as store:
        store.create_bank(BANK, description="actions_bench: the bench photos, exact and PDQ")
        for photo in photos:
            hashes = hash_bytes(photo.read_bytes())
            sha256s.add(str(hashes["sha256"]))
            for signal_type in ("pdq", "sha256"):
                store.add_entry(
                    BANK,
                    signal_type,
                    str(hashes[signal_type]),
                    list_name="actions_bench",
                    external_id=photo.name,
                )
        _, key = create_key(store, "actions_bench", ("match",), rate_limit=1e6)
        _, admin_key = create_key(store, "actions_bench-metrics", ("admin",), rate_limit=1e6)
    if len(sha256s) != len(photos):
        raise SystemExit(f"the {len(photos)} photos have only {len(sha256s)} distinct SHA-256")
    key_file = work / "vault.key"
    Keyring.from_file(key_file).create()
    return {
        "key": key,
        "admin_key": admin_key,
        "sha256s": sha256s,
        "entries": 2 * len(photos),
        "vault_dir": work / "vault",
        "key_file": key_file,
        "seconds": round(time.perf_counter() - started, 1),
    }


def server_env(vault_dir: Path, key_file: Path, metrics_dir: Path) -> dict[str, str]:
    """The server's environment: this one, with the vault named explicitly and the workers'
    metrics in a folder of this run's own (so that `/metrics` counts this server only)."""
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV.env}
    metrics_dir.mkdir(parents=True)
    env.update(
        {
            VAULT_DIR_ENV: str(vault_dir),
            KEY_FILE.env: str(key_file),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
    )
    return env


# ---------------------------------------------------------------------------------------------
# Checks, load and counts


def check_uploads(
    server: Server, key: str, photos: Sequence[Path], *, acting: bool
) -> dict[str, Any]:
    """Each photo once, before any load: refused, and acted on exactly when `acting`."""
    cases = set()
    actions: set[str] = set()
    matches = []
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as client:
        for photo in photos:
            r = client.post(
                MATCH_ROUTE,
                params={"uploader": UPLOADER},
                content=photo.read_bytes(),
                headers={"Content-Type": "image/jpeg"},
            )
            if r.status_code != 200:
                raise SystemExit(
                    f"{photo.name}: /v1/match answered {r.status_code}: {r.text[:300]}"
                )
            answer = r.json()
            did = answer["actions"]
            wrong = answer["decision"] != "reject" or (
                not {"block", "quarantine"} <= set(did) or answer["case_id"] is None
                if acting
                else did != [] or answer["case_id"] is not None
            )
            if wrong:
                raise SystemExit(f"{photo.name}: unexpected /v1/match answer: {r.text[:400]}")
            cases.add(answer["case_id"])
            actions.update(did)
            matches.append(len(answer["matches"]))
    return {
        "uploads": len(photos),
        "all_rejected": True,
        "actions": sorted(actions),
        "distinct_cases": len(cases - {None}),
        #: Acting matches per upload: 2 (SHA-256 and PDQ), or 1 where the photo's PDQ
        #: quality is below the bank's floor and only its SHA-256 matches.
        "uploads_by_matches": {str(n): matches.count(n) for n in sorted(set(matches))},
    }


def measured(
    server: Server,
    key: str,
    workload: Workload,
    load: Path,
    connections: int,
    seconds: int,
    db_pids: Callable[[], list[int]],
) -> dict[str, Any]:
    """service_bench's `run_wrk`, with the database server's CPU taken out of "others"."""
    before = {pid: process_cpu_s([pid]) for pid in db_pids()}
    started = time.perf_counter()
    result = run_wrk(server, key, workload.lua_args(load), workload, connections, seconds)
    elapsed = time.perf_counter() - started
    after = {pid: process_cpu_s([pid]) for pid in db_pids()}
    cpu = result["cpu_cores"]
    if after:
        used = round(sum(v - before.get(pid, 0.0) for pid, v in after.items()) / elapsed, 2)
        cpu["database"] = used
        cpu["others"] = round(max(0.0, cpu["others"] - used), 2)
    else:
        cpu["database"] = None
    return result


def served_counts(server: Server, admin_key: str) -> dict[str, int]:
    """`POST /v1/match` answers by status, as the service counted them (every worker)."""
    r = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    )
    r.raise_for_status()
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "lightkeeper_http_requests_total"
                and labels.get("route") == MATCH_ROUTE
                and labels.get("method") == "POST"
            ):
                status = labels["status"]
                counts[status] = counts.get(status, 0) + round(sample.value)
    return counts


def settled_counts(server: Server, admin_key: str) -> dict[str, int]:
    """`served_counts` once the requests wrk left in flight have all been answered: two
    readings a second apart that agree."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last = served_counts(server, admin_key)
    while True:
        time.sleep(1.0)
        now = served_counts(server, admin_key)
        if now == last or time.monotonic() > deadline:
            return now
        last = now


def inventory(db: str, vault_dir: Path) -> dict[str, Any]:
    """What the store and the vault hold (read with no server running)."""
    with BankStore.open(db) as store, store.engine.connect() as conn:

        def count(table: Any, *where: Any) -> int:
            return int(
                conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            )

        live = OBJECTS.c.destroyed_at.is_(None)
        by_action: dict[str, int] = {
            str(action): int(n)
            for action, n in conn.execute(
                select(AUDIT.c.action, func.count()).group_by(AUDIT.c.action)
            )
        }
        if conn.dialect.name == "postgresql":
            store_bytes = int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )
        else:
            base = Path(db)
            store_bytes = sum(
                p.stat().st_size for p in (base, base.with_name(base.name + "-wal")) if p.exists()
            )
        out = {
            "cases": count(CASES),
            "case_sha256": sorted(conn.execute(select(CASES.c.sha256)).scalars()),
            "case_uploads": int(
                conn.execute(select(func.coalesce(func.sum(CASES.c.match_count), 0))).scalar_one()
            ),
            "recorded_matches": count(CASE_MATCHES),
            "recorded_rejected": count(CASE_MATCHES, CASE_MATCHES.c.reject.is_(True)),
            "recorded_with_vault_object": count(
                CASE_MATCHES, CASE_MATCHES.c.vault_object_id.is_not(None)
            ),
            "vault_objects": count(OBJECTS, live),
            "vault_objects_destroyed": count(OBJECTS, OBJECTS.c.destroyed_at.is_not(None)),
            "vault_content_bytes": int(
                conn.execute(
                    select(func.coalesce(func.sum(OBJECTS.c.size), 0)).where(live)
                ).scalar_one()
            ),
            "audit_events": sum(by_action.values()),
            "audit_by_action": dict(sorted(by_action.items())),
            "webhook_events": count(EVENTS),
            "store_bytes": store_bytes,
        }
    files = [p for p in vault_dir.rglob("*") if p.is_file()] if vault_dir.exists() else []
    stats = [p.stat() for p in files]
    out["vault_files"] = len(files)
    out["vault_file_bytes"] = sum(s.st_size for s in stats)
    out["vault_disk_bytes"] = sum(s.st_blocks * 512 for s in stats)
    return out


def audit_verify(db: str) -> dict[str, Any]:
    """`lightkeeper audit verify --json` on the store, as an operator would run it."""
    command = [*lightkeeper_command(), "audit", "verify", "--json", "--db", db]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(
            f"`lightkeeper audit verify` answered no report (exit {done.returncode}):\n"
            f"{done.stdout}\n{done.stderr}"
        ) from None
    head = report.get("head") or {}
    return {
        "exit_code": done.returncode,
        "ok": bool(report.get("ok")) and done.returncode == 0,
        "events": report.get("events"),
        "head_position": head.get("position"),
        "problem_count": report.get("problem_count"),
        "problems": report.get("problems", [])[:5],
    }


def delta(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, int]:
    """Counts that changed, by how much (the audit trail's per action)."""
    out = {
        k: int(after[k]) - int(before[k])
        for k in after
        if isinstance(after[k], int) and after[k] != before[k]
    }
    for action, n in after["audit_by_action"].items():
        if n != before["audit_by_action"].get(action, 0):
            out[f"audit:{action}"] = n - before["audit_by_action"].get(action, 0)
    return out


def reconcile(
    mode: dict[str, Any], before: dict[str, Any], after: dict[str, Any], sha256s: set[str]
) -> tuple[dict[str, Any], list[str]]:
    """The acting run's counts side by side, and every way in which they do not add up."""
    wrk_runs = [mode["warmup"], *mode["runs"]]
    wrk_200 = sum(r["requests"] - r["non_2xx"] for r in wrk_runs) + mode["check"]["uploads"]
    in_flight = sum(r["connections"] for r in wrk_runs)
    served = mode["served"]
    server_200 = served.get("200", 0)
    grew = delta(after, before)
    recorded = grew.get("recorded_matches", 0)
    tally = {
        "answered_200_server": server_200,
        "answered_other_server": {k: v for k, v in served.items() if k != "200"},
        "answered_200_wrk_and_checks": wrk_200,
        "wrk_in_flight_at_most": in_flight,
        "recorded_matches": recorded,
        "recorded_rejected": grew.get("recorded_rejected", 0),
        "recorded_with_vault_object": grew.get("recorded_with_vault_object", 0),
        "vault_objects": grew.get("vault_objects", 0),
        "cases": after["cases"],
        "case_uploads": after["case_uploads"],
        **{f"audit_{a}": grew.get(f"audit:{a}", 0) for a in ACT_EVENTS},
    }
    problems = []
    if set(after["case_sha256"]) != sha256s or after["cases"] != len(sha256s):
        problems.append(
            f"{after['cases']} cases, expected {len(sha256s)}, one per photo "
            f"({len(set(after['case_sha256']) & sha256s)} of the photos' SHA-256 among them)"
        )
    for name in (
        "answered_200_server",
        "recorded_rejected",
        "recorded_with_vault_object",
        "vault_objects",
        "case_uploads",
        *(f"audit_{a}" for a in ACT_EVENTS),
    ):
        if tally[name] != recorded:
            problems.append(f"{name} = {tally[name]:,} but recorded matches = {recorded:,}")
    if not wrk_200 <= recorded <= wrk_200 + in_flight:
        problems.append(
            f"recorded matches = {recorded:,}, outside [{wrk_200:,}, {wrk_200 + in_flight:,}]: "
            "the 200 answers wrk and the checks counted, plus what wrk left in flight"
        )
    if tally["answered_other_server"]:
        problems.append(f"non-200 answers: {tally['answered_other_server']}")
    if grew.get("vault_files", 0) != grew.get("vault_objects", 0):
        problems.append(
            f"{grew.get('vault_files', 0):,} vault files for {grew.get('vault_objects', 0):,} "
            "vault objects"
        )
    if grew.get("webhook_events", 0):
        problems.append(f"{grew['webhook_events']} webhook events queued with no endpoint")
    return tally, problems


# ---------------------------------------------------------------------------------------------
# One run


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = args.dir / "actions" / args.backend
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    photos, photo_source = prepare_photos(args.dir)
    load = work / "load"
    load.mkdir()
    (load / "photos.txt").write_text("".join(f"{p}\n" for p in photos))
    print(f"== {args.backend}, in {work}", flush=True)
    modes: dict[str, Any] = {}
    problems: list[str] = []
    load_before = os.getloadavg()[0]
    with database(args.backend, work) as (db, db_pids):
        setup = set_up(db, work, photos)
        print(f"  bank {BANK!r}: {setup['entries']} entries, in {setup['seconds']} s", flush=True)
        start = inventory(db, setup["vault_dir"])
        act_inventory: dict[str, Any] | None = None
        tally: dict[str, Any] | None = None
        audit: dict[str, Any] | None = None
        for workload in WORKLOADS:
            if workload.name not in args.workloads:
                continue
            acting = workload.name == "act"
            before = inventory(db, setup["vault_dir"])
            env = server_env(
                setup["vault_dir"], setup["key_file"], work / f"metrics-{workload.name}"
            )
            log = work / f"serve-{workload.name}.log"
            with running_server(
                db,
                work / "index",
                args.workers,
                log,
                options=SERVE_OPTIONS[workload.name],
                env=env,
            ) as server:
                print(
                    f"  {workload.name}: serving at {server.url}, ready in "
                    f"{server.startup_s:.1f} s",
                    flush=True,
                )
                checked = check_uploads(server, setup["key"], photos, acting=acting)
                print(f"  checked: {checked}", flush=True)
                warm_s = min(WARMUP_S, args.duration)
                warmup = measured(
                    server, setup["key"], workload, load, args.connections[0], warm_s, db_pids
                )
                runs = []
                for connections in args.connections:
                    result = measured(
                        server, setup["key"], workload, load, connections, args.duration, db_pids
                    )
                    print(f"  {json.dumps(result)}", flush=True)
                    runs.append(result)
                served = settled_counts(server, setup["admin_key"])
                mem = memory(server.workers)
                startup = round(server.startup_s, 1)
            after = inventory(db, setup["vault_dir"])
            modes[workload.name] = {
                "server_ready_s": startup,
                "check": checked,
                "warmup": warmup,
                "runs": runs,
                "served": served,
                "memory_after_load": mem,
                "store_change": delta(after, before),
            }
            if acting:
                act_inventory = {k: v for k, v in after.items() if k != "case_sha256"}
                tally, found = reconcile(modes["act"], before, after, setup["sha256s"])
                problems += found
                audit = audit_verify(db)
                if not audit["ok"]:
                    problems.append(f"`lightkeeper audit verify` failed: {audit}")
                print(f"  counts: {json.dumps(tally)}", flush=True)
                print(f"  audit verify: {json.dumps(audit)}", flush=True)
            else:
                wrote = {k: v for k, v in delta(after, before).items() if k != "store_bytes"}
                if wrote:
                    problems.append(f"the match-only server wrote to the store: {wrote}")
    return {
        "backend": args.backend,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "workers": args.workers,
        "photos": photo_source,
        "bank_entries": setup["entries"],
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "store_at_start": {k: v for k, v in start.items() if k != "case_sha256"},
        "modes": modes,
        "act_inventory": act_inventory,
        "counts": tally,
        "audit_verify": audit,
        "problems": problems,
    }


# ---------------------------------------------------------------------------------------------
# Report


def markdown(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    exact_only = max(
        (
            mode["check"].get("uploads_by_matches", {}).get("1", 0)
            for run in payload["runs"]
            for mode in run["modes"].values()
        ),
        default=0,
    )
    exact = (
        f"; {exact_only} of them matches by SHA-256 only, its PDQ quality being below the "
        "matching floor"
        if exact_only
        else ""
    )
    lines = [
        "## Acting on matches under load (`bench/actions_bench.py`)",
        "",
        "What acting costs per upload: `POST /v1/match` of 20 ~1 MP baseline JPEGs "
        f"(quality 90) that are all in block bank `act` (their PDQ and SHA-256{exact}), so "
        "every call acts with the default policy: block, quarantine (the upload encrypted "
        "into the vault, a file written and fsynced), review (a case per content, a "
        "recorded match) and two audit events; no Idempotency-Key, so every request is a "
        "new upload. The same uploads then go to the same store served with "
        "`--no-actions` (match only). `lightkeeper serve --workers 2` on loopback, driven "
        "by `wrk -t1 --latency` (closed-loop, one load-generator thread, on the same "
        f"{m['cores']}-core {m['cpu']}), as in the service section. SQLite: WAL, "
        "synchronous=NORMAL; PostgreSQL: a throwaway server as the tests start, with fsync "
        "off (kinder than a durable server). No webhook endpoint is registered. The "
        "machine is shared: see the CPU columns.",
        "",
        "| store | conns | match only req/s | acting req/s | acting / match only "
        "| match only p50 / p99 ms | acting p50 / p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in payload["runs"]:
        modes = run["modes"]
        if "act" not in modes or "match-only" not in modes:
            continue
        plain = {r["connections"]: r for r in modes["match-only"]["runs"]}
        for acted in modes["act"]["runs"]:
            base = plain.get(acted["connections"])
            if base is None:
                continue
            ratio = acted["requests_per_s"] / base["requests_per_s"]
            lines.append(
                f"| {run['backend']} | {acted['connections']} | {base['requests_per_s']:,.0f} "
                f"| {acted['requests_per_s']:,.0f} | {ratio:.2f} "
                f"| {base['p50_ms']} / {base['p99_ms']} | {acted['p50_ms']} / {acted['p99_ms']} |"
            )
    lines += [
        "",
        "Every run. CPU: cores used during the run by the server (supervisor and workers), "
        "wrk, the PostgreSQL server (postmaster and backends) and other processes, and "
        "taken by the hypervisor for other guests (/proc/stat steal; runs before "
        "2026-11-23 count it with others and show -).",
        "",
        "| store | workload | conns | req/s | p50 ms | p90 ms | p99 ms "
        "| non-2xx / socket errors | CPU server / wrk / database / others / stolen |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in payload["runs"]:
        for name, mode in run["modes"].items():
            for r in mode["runs"]:
                cpu = r["cpu_cores"]
                dbcpu = "—" if cpu.get("database") is None else cpu["database"]
                lines.append(
                    f"| {run['backend']} | {BY_NAME[name].title} | {r['connections']} "
                    f"| {r['requests_per_s']:,.0f} | {r['p50_ms']} | {r['p90_ms']} "
                    f"| {r['p99_ms']} | {r['non_2xx']} / {r['socket_errors']} "
                    f"| {cpu['server']} / {cpu['wrk']} / {dbcpu} / {cpu['others']} "
                    f"/ {cpu.get('stolen', '-')} |"
                )
    lines += [
        "",
        "After the acting load: cases, recorded matches (= `/v1/match` answered 200, as the "
        "service counted them = vault objects = `match.act` audit events), the vault on disk "
        "(allocated, against the uploads' own bytes), the store's growth, and "
        "`lightkeeper audit verify` on the whole trail.",
        "",
        "| store | cases | recorded matches | answered 200 | vault objects "
        "| vault on disk (uploads) | store growth | audit chain | counts | run |",
        "|---|---:|---:|---:|---:|---|---:|---|---|---|",
    ]
    for run in payload["runs"]:
        counts, inv, audit = run["counts"], run["act_inventory"], run["audit_verify"]
        if counts is None or inv is None or audit is None:
            continue
        growth = run["modes"]["act"]["store_change"].get("store_bytes", 0)
        chain = (
            f"verifies, {audit['events']:,} events"
            if audit["ok"]
            else f"FAILS ({audit['problem_count']} problems)"
        )
        each = growth / max(1, counts["recorded_matches"]) / 1024
        lines.append(
            f"| {run['backend']} | {counts['cases']} | {counts['recorded_matches']:,} "
            f"| {counts['answered_200_server']:,} | {counts['vault_objects']:,} "
            f"| {_mib(inv['vault_disk_bytes'])} ({_mib(inv['vault_content_bytes'])}) "
            f"| {_mib(growth)} ({each:.1f} KiB an upload) | {chain} "
            f"| {'add up' if not run['problems'] else '**DO NOT ADD UP**'} "
            f"| {run['date']}: `{run['command']}` |"
        )
    for run in payload["runs"]:
        others = [
            r["cpu_cores"]["others"] + r["cpu_cores"].get("stolen", 0.0)
            for mode in run["modes"].values()
            for r in mode["runs"]
        ]
        busy = sum(others) / max(1, len(others))
        if busy > BUSY_CORES:
            lines += [
                "",
                f"**{run['backend']}: taken on a busy machine**: other processes and guests used "
                f"{busy:.1f} of its {m['cores']} cores on average during the runs, so these "
                "figures understate the service; take them again on a quiet machine.",
            ]
    problems = [f"{run['backend']}: {p}" for run in payload["runs"] for p in run["problems"]]
    if problems:
        lines += ["", "**Counts that do not add up:**", ""]
        lines += [f"- {p}" for p in problems]
    return "\n".join(lines)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def merged(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's backend, plus the other backends of the last results file."""
    path = RESULTS / f"{NAME}.json"
    previous: list[dict[str, Any]] = []
    if path.exists():
        previous = json.loads(path.read_text()).get("runs", [])
    mine = {run["backend"] for run in runs}
    kept = [r for r in previous if r["backend"] not in mine]
    return sorted([*kept, *runs], key=lambda r: BACKENDS.index(r["backend"]))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--workloads",
        default="act,match-only",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=ROOT / "bench" / ".work",
        help="work directory (the photos are shared with service_bench; the store is "
        "made afresh under actions/BACKEND)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_SECONDS} s runs, {QUICK_CONNECTIONS[0]} connections, "
        "nothing written",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help=f"only rewrite the docs section from bench/results/{NAME}.json (no load)",
    )
    args = parser.parse_args()
    if args.report:
        payload = json.loads((RESULTS / f"{NAME}.json").read_text())
        write_results(NAME, payload, markdown(payload))
        return 0
    unknown = [w for w in args.workloads if w not in BY_NAME]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    args.connections = CONNECTIONS
    if args.quick:
        args.duration, args.connections = QUICK_SECONDS, QUICK_CONNECTIONS
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk (Debian/Ubuntu)", file=sys.stderr)
        return 2
    args.dir = args.dir.resolve()
    result = run(args)
    payload = {"machine": machine(), "runs": [result] if args.quick else merged([result])}
    text = markdown(payload)
    print(text)
    if not args.quick:
        write_results(NAME, payload, text)
    if result["problems"]:
        banner = "!" * 78
        print(f"\n{banner}\nCOUNTS DO NOT ADD UP:", file=sys.stderr)
        for problem in result["problems"]:
            print(f"  - {problem}", file=sys.stderr)
        print(banner, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
