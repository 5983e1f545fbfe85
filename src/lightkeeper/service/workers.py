"""Worker processes for ``lightkeeper serve --workers N``, each with a listening socket of its
own on the same port.

Why. uvicorn's supervisor gives every worker the one listening socket, and a connection goes
to whichever worker's event loop takes it first; an idle worker takes every connection
waiting. A platform's upload servers hold a few keep-alive connections, opened together, and
these can all land on one worker, which then serves them on one core while the other workers
idle. Seen in `bench/service_bench.py`: 8 connections of single lookups at 13.4 M hashes got
1,008 requests/s on 1.01 cores of two, where a balanced run gets about 1,400-1,900 on 1.9.

With ``SO_REUSEPORT`` (Linux), each worker listens on a socket of its own bound to the same
address, and the kernel spreads new connections over the sockets by a hash of their
addresses, so every worker gets its share whoever is idle when they arrive. Worker i always
serves socket i: a worker that dies is replaced on its socket, whose waiting connections the
replacement then accepts (the supervisor keeps every socket open meanwhile). Elsewhere, or for
one worker, uvicorn's own single socket is used (`serve`).

The supervision itself is uvicorn's (`Multiprocess`: health checks, a stop on
SIGINT/SIGTERM, no restart after a failure at start-up, one worker more on SIGTTIN and one
fewer on SIGTTOU); which socket a new worker gets differs, a worker stopped by SIGTTOU takes
its socket with it, so that no socket is left without a worker, and the rolling restart on
SIGHUP waits for each replacement as long as loading the index takes (`ready_timeout`).

Why that wait is ours. uvicorn gives a replacement its health-check timeout (5 s) to become
ready, and a worker is ready only once it has loaded the index. At 13.4 M hashes that takes
about 4 s on an idle 2-core machine, and more on a busy one: with both cores busy, every
SIGHUP restart was abandoned after the first replacement timed out (measured 2026-11-23), so
a restart under load, when one is wanted most, silently did nothing. The wait also gives way
at once to SIGINT/SIGTERM, which uvicorn's would leave queued until it ended.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

_log = logging.getLogger("uvicorn.error")

#: Whether this platform balances connections over sockets that share a port.
BALANCED_SOCKETS = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")

_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def shared_port_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` TCP sockets bound to (host, port) with ``SO_REUSEPORT``, not yet listening
    (each worker listens on its own); port 0 picks one free port for all of them.

    A port that anything is bound to already is refused (`OSError`, address in use) rather
    than shared: without this check a second server started on the same port by the same
    user would join the first one's sockets and silently take half its connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:  # no SO_REUSEPORT: must be free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(_join(family, (host, port)))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _join(family: socket.AddressFamily, address: tuple[str, int]) -> socket.socket:
    """One more ``SO_REUSEPORT`` socket bound to `address`, for a worker to listen on."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


class SocketPerWorker(Multiprocess):
    """uvicorn's supervisor, giving worker i socket i (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        sockets: list[socket.socket],
        ready_timeout: float,
    ) -> None:
        if len(sockets) != config.workers:
            raise ValueError(f"{config.workers} workers need as many sockets, not {len(sockets)}")
        if ready_timeout <= 0:
            raise ValueError(f"the ready timeout must be positive, not {ready_timeout}")
        super().__init__(config, sockets=[])
        self.worker_sockets = sockets
        self.ready_timeout = ready_timeout

    def _new_worker(self, slot: int) -> Process:
        worker = Process(self.config, [self.worker_sockets[slot]])
        worker.start()
        return worker

    def init_processes(self) -> None:
        self.processes = [self._new_worker(slot) for slot in range(self.processes_num)]

    def restart_all(self) -> None:
        """On SIGHUP: each worker in turn is replaced once its replacement is ready, so every
        socket keeps a worker throughout. A replacement that exits, is not ready within
        `ready_timeout`, or is overtaken by SIGINT/SIGTERM is stopped, and the workers not yet
        replaced are kept."""
        for slot, old in enumerate(self.processes):
            if self._stopping():
                return
            started = time.monotonic()
            new = self._new_worker(slot)
            failure = self._wait_until_ready(new)
            if failure is not None:
                new.kill()
                new.join()
                _log.log(
                    logging.INFO if self._stopping() else logging.ERROR,
                    "Replacement worker [%s] %s; restart stopped, worker [%s] kept",
                    new.pid,
                    failure,
                    old.pid,
                )
                return
            old.terminate()
            old.join()
            self.processes[slot] = new
            _log.info(
                "Worker [%s] replaced by [%s], ready in %.1f s",
                old.pid,
                new.pid,
                time.monotonic() - started,
            )

    def _stopping(self) -> bool:
        """Whether the supervisor is stopping, or has a stop signal waiting in its queue
        (which uvicorn's own `Process.wait_until_ready` cannot see)."""
        return self.should_exit.is_set() or bool(_STOP_SIGNALS.intersection(self.signal_queue))

    def _wait_until_ready(self, worker: Process) -> str | None:
        """None once `worker` has started serving, else why it will not."""
        deadline = time.monotonic() + self.ready_timeout
        while not self._stopping():
            if not worker.process.is_alive():
                return f"exited while starting (code {worker.process.exitcode})"
            if worker.is_ready(timeout=1):
                return None
            if time.monotonic() >= deadline:
                return f"was not ready within {self.ready_timeout:g} s"
            time.sleep(0.1)
        return "was stopped: the server is stopping"

    def keep_subprocess_alive(self) -> None:
        """A worker that died or stopped answering is replaced on its socket, unless it failed
        while starting (the same failure would repeat): then everything stops."""
        for slot, worker in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            if worker.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            worker.kill()
            worker.join()
            if worker.exitcode == STARTUP_FAILURE:
                _log.error("Worker [%s] failed to start; stopping", worker.pid)
                self.should_exit.set()
                return
            _log.info("Worker [%s] died; starting another on its socket", worker.pid)
            self.processes[slot] = self._new_worker(slot)

    def handle_ttin(self) -> None:
        """On SIGTTIN: one more worker, on a socket of its own."""
        first = self.worker_sockets[0]
        try:
            sock = _join(first.family, first.getsockname()[:2])
        except OSError as exc:
            _log.error("No socket for another worker: %s", exc)
            return
        self.worker_sockets.append(sock)
        self.processes_num += 1
        self.processes.append(self._new_worker(len(self.worker_sockets) - 1))
        _log.info("Added a worker: %d now", self.processes_num)

    def handle_ttou(self) -> None:
        """On SIGTTOU: one worker fewer, its socket closed with it, so that the kernel stops
        sending it connections (those it had queued but not yet taken are reset)."""
        if self.processes_num <= 1:
            _log.info("Already one worker: not stopping it")
            return
        self.processes_num -= 1
        worker = self.processes.pop()
        worker.terminate()
        worker.join()
        self.worker_sockets.pop().close()
        _log.info("Stopped a worker: %d now", self.processes_num)

    def run(self) -> None:
        try:
            super().run()
        finally:
            for sock in self.worker_sockets:
                sock.close()
