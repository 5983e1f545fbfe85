"""Live index across processes: two `lightkeeper serve` processes on one store.

An entry added or removed through one process (or the CLI) must be matched, or no longer
matched, by the other within one second, with no rebuild or reload of the index.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from lightkeeper.banks import BankStore
from lightkeeper.banks.testing import backends
from lightkeeper.service.keys import create_key
from lightkeeper.service.testing import database_url

LIGHTKEEPER = str(Path(sys.executable).parent / "lightkeeper")
#: The issue's figure: a change made anywhere is matched everywhere within this.
PROPAGATION_S = 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(
    url: str,
    index_dir: Path,
    log: Path,
    *options: str,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "LIGHTKEEPER_FOLLOW_INTERVAL": "0.2", **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                LIGHTKEEPER,
                "serve",
                "--db",
                url,
                "--index-dir",
                str(index_dir),
                "--port",
                str(port),
                "--log-level",
                "warning",
                *options,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready: {log.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _matched(base: str, headers: dict[str, str], value: str) -> bool:
    r = httpx.get(
        f"{base}/v1/lookup", params={"signal_type": "pdq", "value": value}, headers=headers
    )
    assert r.status_code == 200, r.text
    return bool(r.json()["results"][0]["matched"])


def _until(condition: object, limit: float) -> float:
    """Seconds until `condition()` holds; fails past `limit` (polled every 20 ms)."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        elapsed = time.monotonic() - start
        assert elapsed <= limit, f"not seen within {limit} s"
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.mark.parametrize("backend", backends())
def test_a_change_through_one_process_reaches_the_other_within_a_second(
    tmp_path: Path, backend: str
) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(database_url(tmp_path, backend))
        store = stack.enter_context(BankStore.open(url))
        store.create_bank("known")
        store.add_entry("known", "pdq", secrets.token_hex(32))  # the index is not empty
        _, key = create_key(store, "live-test", ["admin"], rate_limit=1e6)
        headers = {"Authorization": f"Bearer {key}"}
        a = stack.enter_context(_server(url, tmp_path / "index", tmp_path / "a.log"))
        b = stack.enter_context(_server(url, tmp_path / "index", tmp_path / "b.log"))

        # Added through A: matched by B.
        value = secrets.token_hex(32)
        assert not _matched(b, headers, value)
        r = httpx.post(
            f"{a}/v1/banks/known/entries",
            json={"entries": [{"signal_type": "pdq", "value": value}]},
            headers=headers,
        )
        assert r.status_code == 200 and r.json()["added"] == 1, r.text
        _until(lambda: _matched(b, headers, value), PROPAGATION_S)

        # Removed through B: no longer matched by A.
        entry = store.find_entry("known", "pdq", value)
        assert entry is not None
        r = httpx.delete(f"{b}/v1/banks/known/entries/{entry.id}", headers=headers)
        assert r.status_code == 200, r.text
        _until(lambda: not _matched(a, headers, value), PROPAGATION_S)

        # Added by another process altogether (the CLI): matched by both.
        other = secrets.token_hex(32)
        subprocess.run(
            [LIGHTKEEPER, "bank", "add", "known", other, "--signal-type", "pdq", "--db", url],
            check=True,
            capture_output=True,
        )
        _until(lambda: _matched(a, headers, other) and _matched(b, headers, other), PROPAGATION_S)

        # Neither process rebuilt its index to get there: both still say where they loaded
        # it from, and both follow the same log position.
        sa = httpx.get(f"{a}/v1/index/status", headers=headers).json()
        sb = httpx.get(f"{b}/v1/index/status", headers=headers).json()
        assert sa["signal_types"]["pdq"]["size"] == sb["signal_types"]["pdq"]["size"] == 2


def test_serve_acts_on_matches_unless_told_not_to(tmp_path: Path) -> None:
    """``--no-actions`` only answers; ``--actions`` acts even where the environment says 0."""
    upload = b"not an image, matched by its SHA-256"
    with ExitStack() as stack:
        url = stack.enter_context(database_url(tmp_path, "sqlite"))
        store = stack.enter_context(BankStore.open(url))
        store.create_bank("known")
        store.add_entry("known", "sha256", hashlib.sha256(upload).hexdigest())
        _, key = create_key(store, "actions-test", ["match"], rate_limit=1e6)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"}
        answers = {}
        for name, options, env in (
            ("off", ("--no-actions",), {}),
            ("on", ("--actions",), {"LIGHTKEEPER_ACTIONS": "0"}),
        ):
            log = tmp_path / f"{name}.log"
            with _server(url, tmp_path / "index", log, *options, env=env) as base:
                r = httpx.post(f"{base}/v1/match", content=upload, headers=headers, timeout=30)
                assert r.status_code == 200, r.text
                answers[name] = r.json()
    assert answers["off"]["decision"] == answers["on"]["decision"] == "reject"
    assert answers["off"]["case_id"] is None and answers["off"]["actions"] == []
    assert answers["on"]["case_id"] is not None and "block" in answers["on"]["actions"]
