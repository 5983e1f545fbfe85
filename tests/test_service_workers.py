"""``lightkeeper serve --workers N``: each worker listens on a socket of its own (Linux
``SO_REUSEPORT``), so connections opened together are spread over the workers instead of
piling onto whichever was idle; a port already in use is refused, never shared."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from lightkeeper.service.workers import BALANCED_SOCKETS, shared_port_sockets
from supervised_app import GATE_ENV
from test_service_live import LIGHTKEEPER, _server

pytestmark = pytest.mark.skipif(not BALANCED_SOCKETS, reason="SO_REUSEPORT balancing is Linux's")

_LISTEN, _ESTABLISHED = "0A", "01"
#: Seconds a request may take: workers share the machine with the rest of the suite.
_SLOW = 30


def _socket_states(port: int) -> dict[str, str]:
    """Inode -> TCP state of every IPv4 socket whose local port is `port`."""
    states = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            states[fields[9]] = fields[3]
    return states


def _holders(port: int) -> dict[int, Counter[str]]:
    """For each process, how many sockets of each state on `port` it holds."""
    states = _socket_states(port)
    found: dict[int, Counter[str]] = {}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = [fd.readlink().name for fd in fd_dir.iterdir()]
        except OSError:  # gone, or not ours to read
            continue
        for link in links:
            if link.startswith("socket:[") and (inode := link[8:-1]) in states:
                found.setdefault(int(fd_dir.parent.name), Counter())[states[inode]] += 1
    return found


def _workers(port: int) -> set[int]:
    """The processes holding one listening socket on `port`: the workers (the supervisor
    holds all of them), and a replacement still starting on its predecessor's socket."""
    return {
        pid for pid, states in _holders(port).items() if states[_LISTEN] == 1 and pid != os.getpid()
    }


def test_each_worker_listens_on_its_own_socket_and_gets_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/lk.db"
    with _server(url, tmp_path / "index", tmp_path / "serve.log", "--workers", "2") as base:
        port = int(base.rsplit(":", 1)[1])
        _until_listening(port, 2)  # /readyz answered once one worker was up; both are now
        listening = {inode for inode, state in _socket_states(port).items() if state == _LISTEN}
        clients = [httpx.Client(base_url=base, timeout=_SLOW) for _ in range(24)]
        try:
            for client in clients:  # 24 keep-alive connections, held open
                assert client.get("/healthz").status_code == 200
            serving = {
                pid: states[_ESTABLISHED]
                for pid, states in _holders(port).items()
                if states[_ESTABLISHED] and pid != os.getpid()
            }
        finally:
            for client in clients:
                client.close()
        # each connection is served by one worker; all 24 on one would leave a core idle
        assert sum(serving.values()) == 24 and len(serving) == 2, serving

        # A worker that dies is replaced on its own socket: still two sockets, two workers.
        dead = min(serving)
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            workers = _workers(port)
            if len(workers) == 2 and dead not in workers:
                break
            assert time.monotonic() < deadline, f"no replacement for worker {dead}: {workers}"
            time.sleep(0.2)
        listening_after = {i for i, state in _socket_states(port).items() if state == _LISTEN}
        assert listening_after == listening
        # The replacement holds its socket from the start; connections hashed to it wait
        # until it has loaded the index, then it answers them.
        _until_ready(base, times=10)

        # SIGHUP to the supervisor (the process holding both sockets) replaces every worker,
        # each given --worker-ready-timeout (120 s) to start: ~2 s on an idle machine.
        [supervisor] = [pid for pid, states in _holders(port).items() if states[_LISTEN] == 2]
        os.kill(supervisor, signal.SIGHUP)
        deadline = time.monotonic() + 2 * 120 + 30
        while True:
            now = _workers(port)
            if len(now) == 2 and not now & workers:
                break
            log = (tmp_path / "serve.log").read_text()
            assert "restart stopped" not in log and time.monotonic() < deadline, log
            time.sleep(0.2)
        assert {i for i, state in _socket_states(port).items() if state == _LISTEN} == listening
        assert httpx.get(f"{base}/readyz", timeout=_SLOW).status_code == 200

        # SIGTTOU: one worker fewer, and its socket goes with it, so no connection waits on a
        # socket nobody accepts from; SIGTTIN: one more, on a socket of its own.
        os.kill(supervisor, signal.SIGTTOU)
        _until_listening(port, 1)
        for _ in range(24):  # fresh connections, each hashed to whatever sockets remain
            assert httpx.get(f"{base}/healthz", timeout=_SLOW).status_code == 200
        os.kill(supervisor, signal.SIGTTIN)
        _until_listening(port, 2)
        _until_ready(base)


def _until_listening(port: int, count: int) -> None:
    deadline = time.monotonic() + 60
    while len([s for s in _socket_states(port).values() if s == _LISTEN]) != count:
        assert time.monotonic() < deadline, f"not {count} listening sockets on {port}"
        time.sleep(0.2)


def _until_ready(base: str, times: int = 1) -> None:
    """Until `times` fresh connections in a row are answered ready (each may be hashed to
    any worker's socket)."""
    deadline = time.monotonic() + 120
    answered = 0
    while answered < times:
        try:
            ready = httpx.get(f"{base}/readyz", timeout=_SLOW).status_code == 200
        except httpx.HTTPError:
            ready = False
        answered = answered + 1 if ready else 0
        assert time.monotonic() < deadline, "not ready again"
        if not ready:
            time.sleep(0.2)


def test_a_port_in_use_is_refused_not_shared(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            shared_port_sockets("127.0.0.1", port, 2)
        db = f"sqlite:///{tmp_path}/lk.db"
        result = subprocess.run(
            [LIGHTKEEPER, "serve", "--workers", "2", "--port", str(port), "--db", db],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_sockets_share_one_free_port() -> None:
    sockets = shared_port_sockets("127.0.0.1", 0, 3)
    try:
        ports = {sock.getsockname()[1] for sock in sockets}
        assert len(ports) == 1 and ports != {0}
        assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def _supervised(tmp_path: Path, ready_timeout: float) -> Iterator[tuple[int, int, Path, Path]]:
    """`SocketPerWorker` over two `supervised_app` workers, both ready: (supervisor pid,
    port, gate file, log)."""
    gate, log = tmp_path / "gate", tmp_path / "supervisor.log"
    gate.write_text("ok")
    script = Path(__file__).with_name("supervised_app.py")
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(ready_timeout)],
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, GATE_ENV: str(gate)},
            text=True,
        )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        _until_listening(port, 2)
        yield proc.pid, port, gate, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _until_logged(log: Path, text: str, times: int = 1) -> None:
    deadline = time.monotonic() + 60
    while log.read_text().count(text) < times:
        assert time.monotonic() < deadline, f"{text!r} not logged {times}x: {log.read_text()}"
        time.sleep(0.1)


def _answering(port: int) -> set[int]:
    """The worker pids that answer 24 fresh connections."""
    return {int(httpx.get(f"http://127.0.0.1:{port}/", timeout=_SLOW).text) for _ in range(24)}


def test_a_replacement_that_does_not_start_is_stopped_and_the_old_workers_kept(
    tmp_path: Path,
) -> None:
    with _supervised(tmp_path, ready_timeout=10) as (supervisor, port, gate, log):
        original = _workers(port)
        assert len(original) == 2 and _answering(port) == original

        gate.unlink()  # the replacement's start-up waits for ever
        os.kill(supervisor, signal.SIGHUP)
        _until_logged(log, "was not ready within 10 s; restart stopped")
        assert _workers(port) == original and _answering(port) == original

        gate.write_text("fail")  # the replacement's start-up fails
        os.kill(supervisor, signal.SIGHUP)
        _until_logged(log, "exited while starting (code 3); restart stopped")
        assert _workers(port) == original and _answering(port) == original


def test_a_stop_signal_ends_a_restart_that_waits_for_a_replacement(tmp_path: Path) -> None:
    with _supervised(tmp_path, ready_timeout=600) as (supervisor, port, gate, log):
        gate.unlink()
        os.kill(supervisor, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while len(_workers(port)) < 3:  # the replacement is up, waiting at the gate
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        os.kill(supervisor, signal.SIGTERM)
        deadline = time.monotonic() + 30  # not the 600 s the restart would have waited
        while _holders(port):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert "ERROR" not in log.read_text()
