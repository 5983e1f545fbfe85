"""Real processes sharing one store, on SQLite and on PostgreSQL: concurrent writers adding and
removing the same hashes, a follower reading the change log meanwhile, and an import killed
midway."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lightkeeper.banks import BankStore, Change
from lightkeeper.banks.testing import backends, temporary_database
from lightkeeper.exchange import import_list

# Each writer opens a fresh store (so both run the migrations at the same moment), creates
# the bank unless the other did first, then adds its range of hashes in small batches so
# that the two interleave many transactions.
WRITER = """
import sys
from lightkeeper.banks import BankStore, NewEntry
from lightkeeper.errors import Conflict
url, tag, start, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with BankStore.open(url) as store:
    try:
        store.create_bank("shared")
    except Conflict:
        pass
    entries = (NewEntry("pdq", f"{i:064x}", list_name=tag) for i in range(start, stop))
    report = store.add_entries("shared", entries, batch_size=200)
print(report.added, report.updated, report.unchanged)
"""

# Imports whatever arrives on stdin, 100 lines per batch, until killed.
IMPORTER = """
import sys
from lightkeeper.banks import BankStore
from lightkeeper.banks.testing import backends, temporary_database
from lightkeeper.exchange import import_list
with BankStore.open(sys.argv[1]) as store:
    import_list(store, "b", sys.stdin.buffer, fmt="lines", signal_type="pdq", batch_size=100)
"""


# Adds and removes, in random order within each batch, over two ranges of hashes shared by
# every writer: each writer adds every "stable" hash once (in its own order, under its own
# list name) and nobody removes them; "contested" hashes are added by some batches and removed
# by others, in every writer at once, so what survives depends on the interleaving. It starts
# writing when told (a line on stdin), so that all writers run at the same time.
MIXED_WRITER = """
import json, random, sys
from lightkeeper.banks import BankStore, NewEntry, RemoveValue
url, seed, rounds, stable, contested = sys.argv[1], *map(int, sys.argv[2:])
rng = random.Random(seed)
order = rng.sample(range(stable), stable)
per_round = -(-stable // rounds)
totals = {"added": 0, "updated": 0, "removed": 0, "unchanged": 0}
with BankStore.open(url) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    for r in range(rounds):
        ops = [NewEntry("pdq", f"{i:064x}", list_name=f"w{seed}")
               for i in order[r * per_round:(r + 1) * per_round]]
        for i in rng.sample(range(stable, stable + contested), contested // 4):
            value = f"{i:064x}"
            ops.append(NewEntry("pdq", value) if rng.random() < 0.5 else RemoveValue("pdq", value))
        rng.shuffle(ops)
        report = store.write_batch("shared", ops)
        for key in totals:
            totals[key] += getattr(report, key)
print(json.dumps(totals))
"""


def _python(script: str, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE, **kwargs
    )


@pytest.fixture(params=backends())
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store nobody has opened yet (SQLite), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    with temporary_database(request.param) as database_url:
        yield database_url


def test_two_processes_importing_into_one_store_lose_and_duplicate_nothing(url: str) -> None:
    first = _python(WRITER, url, "a", "0", "3000")
    second = _python(WRITER, url, "b", "1500", "4500")
    outputs = []
    for process in (first, second):
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        outputs.append([int(n) for n in out.split()])
    (added_a, updated_a, unchanged_a), (added_b, updated_b, unchanged_b) = outputs
    assert added_a + added_b == 4500  # every hash added exactly once
    assert updated_a + unchanged_a + updated_b + unchanged_b == 1500  # the overlap

    with BankStore.open(url) as store:
        assert store.count_entries("shared") == 4500
        values = {e.value for e in store.iter_entries("shared")}
        assert values == {f"{i:064x}" for i in range(4500)}
        changes = store.changes_since(0, limit=100_000)
        assert [c.op for c in changes].count("add") == 4500
        seqs = [c.seq for c in changes]
        assert seqs == sorted(set(seqs))


def _replay(state: dict[int, str], changes: list[Change]) -> None:
    """Apply changes as an index follower does: by entry id, each idempotent."""
    for change in changes:
        assert change.entry_id is not None or change.op == "bank"
        if change.op == "remove":
            state.pop(change.entry_id or 0, None)
        elif change.op in ("add", "update") and change.value is not None:
            state[change.entry_id or 0] = change.value


@contextmanager
def _all_stopped(procs: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """Kill whichever of `procs` still runs when the block ends (a failed test)."""
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


def test_writers_adding_and_removing_the_same_hashes_lose_duplicate_and_hide_nothing(
    url: str,
) -> None:
    writers, rounds, stable, contested = 3, 8, 240, 160
    args = [str(n) for n in (rounds, stable, contested)]
    with BankStore.open(url) as store:
        store.create_bank("shared")
        start = store.last_seq()
        procs = [
            _python(MIXED_WRITER, url, str(seed), *args, stdin=subprocess.PIPE)
            for seed in range(writers)
        ]
        with _all_stopped(procs):
            for proc in procs:
                assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
                proc.stdin.close()

            # A follower reads the log while they write, always asking for what comes after
            # the newest change it saw: a change committed with a lower seq than one already
            # visible would be skipped for good.
            followed: dict[int, str] = {}
            seen: list[int] = []
            after = start
            while any(proc.poll() is None for proc in procs):
                batch = store.changes_since(after, limit=500)
                _replay(followed, batch)
                seen += [c.seq for c in batch]
                after = batch[-1].seq if batch else after
                time.sleep(0.005)  # leave the CPU to the writers
            totals = []
            for proc in procs:
                assert proc.stdout is not None
                assert proc.wait(timeout=120) == 0
                totals.append(json.loads(proc.stdout.read().splitlines()[-1]))
        tail = store.changes_since(after, limit=100_000)
        _replay(followed, tail)
        seen += [c.seq for c in tail]

        entries = list(store.iter_entries("shared"))
        values = [e.value for e in entries]
        added, removed, updated = (
            sum(t[k] for t in totals) for k in ("added", "removed", "updated")
        )
        assert len(values) == len(set(values))  # no hash twice
        assert set(values) >= {f"{i:064x}" for i in range(stable)}  # nothing lost
        assert store.count_entries("shared") == len(values) == added - removed
        log = store.changes_since(start, limit=100_000)
        assert [c.op for c in log].count("add") == added
        assert [c.op for c in log].count("remove") == removed
        assert [c.op for c in log].count("update") == updated
        assert removed > 0 and updated > 0  # the writers did contend
        assert seen == [c.seq for c in log]  # the follower saw every change, in order
        assert followed == {e.id: e.value for e in entries}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_an_import_killed_midway_keeps_whole_batches_and_a_rerun_completes_it(url: str) -> None:
    with BankStore.open(url) as store:
        store.create_bank("b")
    lines = b"".join(f"{i:064x}\n".encode() for i in range(250))

    importer = _python(IMPORTER, url, stdin=subprocess.PIPE)
    assert importer.stdin is not None
    importer.stdin.write(lines)  # 2 full batches and half of a third; the pipe stays open
    importer.stdin.flush()
    with BankStore.open(url) as store:
        deadline = time.monotonic() + 60
        while store.count_entries("b") < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        importer.send_signal(signal.SIGKILL)
        importer.wait(timeout=30)
        importer.stdin.close()
        assert importer.stdout is not None
        importer.stdout.close()

        assert store.count_entries("b") == 200  # the batch in flight left no trace
        [run] = store.list_imports("b")
        assert (run.status, run.added, run.finished_at) == ("running", 200, None)

        report = import_list(store, "b", io.BytesIO(lines), signal_type="pdq")
        assert (report.added, report.unchanged) == (50, 200)
        assert store.count_entries("b") == 250
        assert store.list_imports("b")[0].status == "complete"


def test_a_store_opens_while_another_process_holds_a_write_on_a_fresh_file(
    tmp_path: Path,
) -> None:
    # A file not yet in WAL mode, with a write transaction held by another connection (as
    # while a first process migrates a fresh store): switching to WAL waits for it, where
    # SQLite alone would answer "database is locked" at once.
    import sqlite3
    import threading

    from lightkeeper.banks._engine import make_engine

    path = tmp_path / "fresh.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.5, lambda: holder.execute("COMMIT")).start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
    finally:
        engine.dispose()
        holder.close()
