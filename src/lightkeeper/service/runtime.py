"""One service process's state: the store, the live index, the keys, the rate limits, jobs.

Created when the process starts serving (the app's lifespan) and closed when it stops. The
index is loaded from the newest snapshot (or built from the store and snapshotted) and then
follows the change log on a background thread, so that a bank change made through any
process is matched here within `ServiceSettings.follow_interval` plus the time to apply it,
and no request pays a database query to stay current.

With actions on (`ServiceSettings.actions`, the default), it also opens the quarantine vault,
starts a webhook dispatcher (a background thread sending the store's due deliveries), and
runs the actioner's crash recovery once in the background (`Actioner.recover`: requests that
stopped between quarantine and their transaction are completed).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

from lightkeeper.actions.actioner import Actioner
from lightkeeper.actions.dispatcher import Dispatcher
from lightkeeper.actions.vault import Vault
from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import acting_as
from lightkeeper.exchange import import_list
from lightkeeper.matching import Matcher
from lightkeeper.service.keys import KeyRing
from lightkeeper.service.ratelimit import RateLimiter
from lightkeeper.service.settings import VAULT_DIR_ENV, VAULT_KEY_FILE_ENV, ServiceSettings

log = logging.getLogger("lightkeeper.service")

#: The index counts as current while its last successful refresh is this many follow
#: intervals old or younger (and at most `STALE_AFTER_S`).
STALE_INTERVALS = 10
STALE_AFTER_S = 5.0


@dataclass(frozen=True)
class ImportJob:
    run_id: int
    future: Future[object]


class Runtime:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.store = BankStore.open(settings.database_url)
        try:
            snapshot_dir = settings.snapshot_dir
            if snapshot_dir is not None:
                snapshot_dir.mkdir(parents=True, exist_ok=True)
            self.matcher = Matcher(
                self.store,
                limits=settings.media_limits,
                snapshot_dir=snapshot_dir,
                refresh_on_call=False,
                search_threads=settings.index_threads,
                paired_tables=settings.paired_tables,
            )
            self.keys = KeyRing(self.store)
        except BaseException:
            self.store.close()
            raise
        self.limiter = RateLimiter()
        self._imports = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lk-import")
        self.dispatcher: Dispatcher | None = None
        self.actioner: Actioner | None = None
        self._stop_recovery = threading.Event()
        self._recovery: threading.Thread | None = None
        self.matcher.follower.follow(settings.follow_interval)
        if settings.actions:
            try:
                self._start_actions()
            except BaseException:
                self.close()
                raise

    def _start_actions(self) -> None:
        environ = dict(os.environ)
        if self.settings.vault_dir is not None:
            environ[VAULT_DIR_ENV] = str(self.settings.vault_dir)
        if self.settings.vault_key_file is not None:
            environ[VAULT_KEY_FILE_ENV] = str(self.settings.vault_key_file)
        vault = Vault.open(self.store, environ=environ)
        self.dispatcher = Dispatcher(self.store)
        self.dispatcher.start()
        self.actioner = Actioner(vault, self.matcher, on_enqueued=self.dispatcher.wake)
        self._recovery = threading.Thread(
            target=self._recover, name="lightkeeper-recovery", daemon=True
        )
        self._recovery.start()

    def _recover(self) -> None:
        assert self.actioner is not None
        try:
            report = self.actioner.recover(stop=self._stop_recovery)
        except Exception:
            log.exception("crash recovery of unrecorded quarantines failed")
            return
        if report.completed or report.destroyed or report.failed:
            log.warning(
                "crash recovery: %d request(s) completed, %d vault object(s) destroyed, "
                "%d left to retry",
                len(report.completed),
                len(report.destroyed),
                len(report.failed),
            )

    def close(self) -> None:
        self._stop_recovery.set()
        if self._recovery is not None:
            self._recovery.join(timeout=30)
        if self.dispatcher is not None:
            self.dispatcher.close()
        self.matcher.follower.stop()
        self._imports.shutdown(wait=True, cancel_futures=True)
        self.store.close()

    # ------------------------------------------------------------------ readiness

    def index_current(self) -> bool:
        """Loaded, and refreshed from the change log recently."""
        limit = min(STALE_AFTER_S, STALE_INTERVALS * self.settings.follow_interval)
        return self.matcher.follower.status().is_ready(limit)

    # ------------------------------------------------------------------ imports

    def start_import(
        self,
        actor: str,
        bank: str,
        write_body: Callable[[IO[bytes]], None],
        *,
        fmt: str | None,
        signal_type: str | None,
        list_name: str | None,
        list_version: str | None,
    ) -> int:
        """Run a list import on the background thread; returns its import id once recorded.

        The list goes to a temporary file beside the index snapshots (hash lists are
        confidential: it stays inside the data directory) and is deleted afterwards. Errors
        found before the import starts (unknown bank or format) are raised here; later
        ones are recorded on the import run.
        """
        tmp_dir = self.settings.snapshot_dir or Path(tempfile.gettempdir())
        tmp_dir.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by the job)
            dir=tmp_dir, prefix=".import-", delete=False
        )
        try:
            write_body(handle)
            handle.flush()
            handle.seek(0)
        except BaseException:
            handle.close()
            Path(handle.name).unlink()
            raise
        started = threading.Event()
        run_id: list[int] = []

        def on_start(value: int) -> None:
            run_id.append(value)
            started.set()

        def job() -> object:
            try:
                with acting_as(actor):
                    return import_list(
                        self.store,
                        bank,
                        cast(BinaryIO, handle),
                        fmt=fmt,
                        signal_type=signal_type,
                        list_name=list_name,
                        list_version=list_version,
                        on_start=on_start,
                    )
            finally:
                handle.close()
                Path(handle.name).unlink()
                started.set()

        future = self._imports.submit(job)
        started.wait()
        if not run_id:
            future.result()  # raises what stopped it before it began
            raise RuntimeError("import ended without a record")  # pragma: no cover
        future.add_done_callback(_log_failure)
        return run_id[0]


def _log_failure(future: Future[object]) -> None:
    exc = future.exception()
    if exc is not None:
        log.warning("import failed: %s", exc)
