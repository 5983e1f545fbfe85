"""A throwaway PostgreSQL server for tests and benchmarks, started from the local binaries.

The store's contract must hold on PostgreSQL as well as on SQLite, so the test suite starts a
real server of its own instead of asking every developer and CI machine to configure one:

    with throwaway_postgres() as admin_url:   # postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
        ...                                   # CREATE DATABASE per test, BankStore.open(url) …

What it does, and why:

- finds ``initdb`` and ``postgres`` on ``PATH`` or under ``/usr/lib/postgresql/*/bin`` (the
  Debian ``postgresql`` package; ``scripts/ensure-system-deps.sh`` installs it), newest first;
- ``initdb`` into a fresh temporary directory with trust authentication, listening on a Unix
  socket in that directory and on 127.0.0.1 at a free port, so any local process (a second
  ``lightkeeper serve``, a bench worker) can reach it by URL;
- settings for throwaway data: no fsync, no synchronous commit, no full-page writes (a crash
  loses nothing anyone wants), 200 connections for multi-process tests, and dynamic shared
  memory in files (containers often give ``/dev/shm`` only 64 MiB);
- PostgreSQL refuses to run as root, so under root both programs run as the unprivileged
  ``postgres`` user (created with ``useradd --system`` when missing), which owns the directory;
- ``postgres`` runs as a child of this process, not daemonised by ``pg_ctl``, so that stopping
  it is a signal and a ``wait``; a small watchdog process stops it and removes the directory if
  this process dies without doing so (a test run killed midway leaves no server behind).

Nothing here is for production: the server trusts every local connection and keeps its data
only until it stops.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightkeeper.errors import StoreUnavailable

__all__ = ["TEST_SETTINGS", "PostgresServer", "find_binaries", "throwaway_postgres"]

#: Where Debian's ``postgresql`` package puts the server binaries (one folder per version).
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: The superuser role the server is created with.
SUPERUSER = "postgres"
#: The account the server runs as when this process is root (the Debian package's).
SERVICE_USER = "postgres"

#: Settings for a server whose data nobody keeps (see the module docstring).
TEST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "dynamic_shared_memory_type": "mmap",
    "jit": "off",
    "log_min_messages": "warning",
}

_START_ATTEMPTS = 3

# Run by a separate Python (stdlib only): waits until its stdin closes, which happens when the
# process that started the server exits in any way, then stops the server if it still runs
# and removes its directory. After a clean `stop()` both are gone already and it does nothing.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
pid, base, lockfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.stdin.buffer.read()
def ours():
    try:
        with open(lockfile) as f:
            return int(f.readline()) == pid
    except (OSError, ValueError):
        return False
if ours():
    try:
        os.kill(pid, signal.SIGQUIT)
    except OSError:
        pass
    deadline = time.monotonic() + 30
    while ours() and time.monotonic() < deadline:
        time.sleep(0.1)
shutil.rmtree(base, ignore_errors=True)
"""


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``: on PATH first, else the newest Debian one."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", folder.parent.name))

    debian = sorted(Path("/").glob(DEBIAN_BIN_GLOB.lstrip("/")), key=version, reverse=True)
    candidates.extend(debian)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in ("initdb", "postgres")):
            return folder
    return None


class PostgresServer:
    """A running throwaway server; `stop` (or leaving the ``with`` block) removes every trace.

    Start one with `PostgresServer.start()`, or use `throwaway_postgres` for just its URL.
    """

    def __init__(
        self,
        base_dir: Path,
        port: int,
        process: subprocess.Popen[bytes],
        watchdog: subprocess.Popen[bytes],
    ) -> None:
        self.base_dir = base_dir
        self.port = port
        self._process = process
        self._watchdog = watchdog

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        """The folder of the server's Unix socket (the same as `base_dir`)."""
        return self.base_dir

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    @property
    def admin_url(self) -> str:
        """The superuser's URL (psycopg driver, TCP on 127.0.0.1), database ``postgres``."""
        return self.url("postgres")

    def url(self, database: str, *, via_socket: bool = False) -> str:
        """A URL for `database` as the superuser: over TCP, or over the Unix socket."""
        if via_socket:
            return (
                f"postgresql+psycopg://{SUPERUSER}@/{database}"
                f"?host={self.socket_dir}&port={self.port}"
            )
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    @classmethod
    def start(
        cls, *, settings: Mapping[str, str] | None = None, timeout_s: float = 60.0
    ) -> PostgresServer:
        """initdb a fresh cluster in a temporary folder and start it, ready for connections.

        `settings` add to or override `TEST_SETTINGS`. Raises `StoreUnavailable` (with the
        reason and the end of the server's log) when the binaries are missing or the server
        does not come up within `timeout_s`.
        """
        bin_dir = find_binaries()
        if bin_dir is None:
            raise StoreUnavailable(
                "no PostgreSQL server binaries (initdb, postgres) on PATH or in "
                f"{DEBIAN_BIN_GLOB}; install Debian's 'postgresql' package "
                "(scripts/ensure-system-deps.sh does, as root)"
            )
        account = _service_account()
        base_dir = Path(tempfile.mkdtemp(prefix="lightkeeper-pg-", dir=_parent_dir(account)))
        try:
            if account is not None:
                os.chown(base_dir, account.pw_uid, account.pw_gid)
            base_dir.chmod(0o755)  # the socket must be reachable by other local users too
            _initdb(bin_dir, base_dir, account)
            merged = {**TEST_SETTINGS, **(settings or {})}
            for attempt in range(1, _START_ATTEMPTS + 1):
                try:
                    return cls._launch(bin_dir, base_dir, account, merged, timeout_s)
                except _PortTaken:
                    if attempt == _START_ATTEMPTS:
                        raise StoreUnavailable(
                            f"PostgreSQL found no free port in {attempt} attempts"
                        ) from None
        except BaseException:
            shutil.rmtree(base_dir, ignore_errors=True)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _launch(
        cls,
        bin_dir: Path,
        base_dir: Path,
        account: pwd.struct_passwd | None,
        settings: Mapping[str, str],
        timeout_s: float,
    ) -> PostgresServer:
        port = _free_port()
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(base_dir / "data"),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={base_dir}",
        ]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        log_path = base_dir / "server.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the tests does not stop it midway
                **_as_account(base_dir, account),
            )
        lockfile = base_dir / "data" / "postmaster.pid"
        watchdog = subprocess.Popen(
            [sys.executable, "-I", "-c", _WATCHDOG, str(process.pid), str(base_dir), str(lockfile)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        server = cls(base_dir, port, process, watchdog)
        try:
            server._wait_ready(timeout_s)
        except BaseException:
            server._halt()
            raise
        return server

    def _wait_ready(self, timeout_s: float) -> None:
        """Wait for the lock file's status line to say "ready", as ``pg_ctl -w`` does."""
        lockfile = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = _tail(self.log_file)
                if "could not bind" in log or "Address already in use" in log:
                    raise _PortTaken()
                raise StoreUnavailable(f"PostgreSQL exited at start-up:\n{log}")
            try:
                lines = lockfile.read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
            time.sleep(0.02)
        raise StoreUnavailable(
            f"PostgreSQL was not ready after {timeout_s:.0f} s:\n{_tail(self.log_file)}"
        )

    def _halt(self) -> None:
        """Stop the server (immediate shutdown: its data is thrown away anyway)."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGQUIT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server and remove its folder; safe to call twice."""
        self._halt()
        shutil.rmtree(self.base_dir, ignore_errors=True)
        if self._watchdog.stdin is not None and not self._watchdog.stdin.closed:
            self._watchdog.stdin.close()  # it finds nothing left to do and exits
        try:
            self._watchdog.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - it only sleeps while a server runs
            self._watchdog.kill()
            self._watchdog.wait()

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def throwaway_postgres(
    *, settings: Mapping[str, str] | None = None, timeout_s: float = 60.0
) -> Iterator[str]:
    """A fresh server for the ``with`` block; yields its superuser URL (`admin_url`)."""
    with PostgresServer.start(settings=settings, timeout_s=timeout_s) as server:
        yield server.admin_url


class _PortTaken(Exception):
    """Another process took the free port between our probe and the server's bind."""


def _service_account() -> pwd.struct_passwd | None:
    """The account to run the server as: None unless root, where it must not run as root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise StoreUnavailable(
            f"PostgreSQL will not run as root, and there is no {SERVICE_USER!r} user nor "
            "useradd to create one"
        )
    created = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", SERVICE_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise StoreUnavailable(
            f"could not create the {SERVICE_USER!r} user to run PostgreSQL: "
            f"{created.stderr.strip()}"
        ) from None


def _parent_dir(account: pwd.struct_passwd | None) -> Path:
    """Where to make the server's folder: the temporary folder, if it will do.

    The server's account must be able to reach it (a ``TMPDIR`` under ``/root`` would not),
    and the socket's path must stay within the ~107 bytes a Unix socket address holds.
    """
    parent = Path(tempfile.gettempdir()).resolve()
    too_long = len(str(parent)) > 60
    unreachable = account is not None and any(
        not folder.stat().st_mode & stat.S_IXOTH for folder in (parent, *parent.parents)
    )
    return Path("/tmp") if too_long or unreachable else parent


def _as_account(base_dir: Path, account: pwd.struct_passwd | None) -> dict[str, Any]:
    """Popen arguments running a server program in `base_dir`, as `account` when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")  # --no-locale; and no warning about a missing locale
    options: dict[str, Any] = {"cwd": base_dir, "env": env}
    if account is not None:
        env.update(HOME=str(base_dir), USER=account.pw_name, LOGNAME=account.pw_name)
        options.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
    return options


def _initdb(bin_dir: Path, base_dir: Path, account: pwd.struct_passwd | None) -> None:
    argv = [
        str(bin_dir / "initdb"),
        "--pgdata",
        str(base_dir / "data"),
        "--username",
        SUPERUSER,
        "--auth",
        "trust",
        "--encoding",
        "UTF8",
        "--no-locale",
        "--no-sync",
    ]
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        **_as_account(base_dir, account),
    )
    if done.returncode != 0:
        raise StoreUnavailable(f"initdb failed ({done.returncode}):\n{done.stderr.strip()}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open("rb") as log:
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])
