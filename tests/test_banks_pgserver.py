"""The PostgreSQL server the tests start themselves, and how PostgreSQL cases skip or fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from lightkeeper.banks import pgserver, testing
from lightkeeper.banks.pgserver import PostgresServer, find_binaries
from lightkeeper.banks.testing import temporary_database, temporary_store

# Starts a server, says where it is and which process it runs as, then waits to be killed.
OWNER = """
from lightkeeper.banks.pgserver import PostgresServer
import time
server = PostgresServer.start()
pid = (server.data_dir / "postmaster.pid").read_text().split()[0]
print(server.base_dir, pid, flush=True)
time.sleep(600)
"""


@pytest.fixture
def binaries() -> Path:
    """The server binaries; skips without them (fails when PostgreSQL is required)."""
    found = find_binaries()
    if found is None:
        if testing.postgres_required():
            pytest.fail("no PostgreSQL server binaries, and PostgreSQL is required")
        pytest.skip("no PostgreSQL server binaries")
    return found


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for a parent to reap it does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_throwaway_server_answers_by_url_and_leaves_nothing_behind(binaries: Path) -> None:
    with PostgresServer.start() as server:
        assert server.running
        for url in (server.admin_url, server.url("postgres", via_socket=True)):
            engine = create_engine(url, poolclass=NullPool)
            with engine.connect() as conn:
                assert conn.execute(text("SHOW fsync")).scalar() == "off"
                assert conn.execute(text("SHOW max_connections")).scalar() == "200"
            engine.dispose()
    assert not server.running
    assert not server.base_dir.exists()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_a_server_whose_owner_is_killed_is_stopped_and_removed(binaries: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], env=env, stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    with owner.stdout:
        base_dir, pid = owner.stdout.readline().split()
    assert Path(base_dir).is_dir() and _alive(int(pid))
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=30)
    deadline = time.monotonic() + 30
    while (Path(base_dir).exists() or _alive(int(pid))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(int(pid))
    assert not Path(base_dir).exists()


def test_clones_of_the_migrated_template_are_empty_and_each_its_own_store() -> None:
    with temporary_store("postgresql") as first, temporary_store("postgresql") as second:
        first.create_bank("only-here")
        assert [b.name for b in first.list_banks()] == ["only-here"]
        assert second.list_banks() == [] and second.last_seq() == 0
        assert first.instance_id != second.instance_id  # snapshots never cross stores


def test_without_a_server_postgres_cases_skip_saying_why_or_fail_when_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked = []

    def no_binaries() -> None:
        looked.append(True)

    monkeypatch.delenv(testing.TEST_POSTGRES_ENV, raising=False)
    monkeypatch.delenv(testing.REQUIRE_POSTGRES_ENV, raising=False)
    monkeypatch.setattr(pgserver, "find_binaries", no_binaries)
    monkeypatch.setattr(testing, "_SESSION", testing._Session())

    skipped = pytest.raises(pytest.skip.Exception, match="no PostgreSQL server binaries")
    with skipped, temporary_database("postgresql"):
        pass
    monkeypatch.setenv(testing.REQUIRE_POSTGRES_ENV, "1")
    failed = pytest.raises(pytest.fail.Exception, match="PostgreSQL is required")
    with failed, temporary_store("postgresql"):
        pass
    assert len(looked) == 1  # tried once per session, not once per test
    with temporary_database("sqlite") as url:  # SQLite cases never need a server
        assert url == "sqlite://"
