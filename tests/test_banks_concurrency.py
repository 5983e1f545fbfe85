"""Real processes sharing one SQLite store: concurrent imports, and an import killed midway."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lightkeeper.banks import BankStore
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
