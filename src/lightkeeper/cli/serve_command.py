"""``lightkeeper serve``: the HTTP service (FastAPI on uvicorn) over the bank store."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from lightkeeper.cli.bank_command import db_option

_APP = "lightkeeper.service.app:create_app"


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Worker processes (each holds its own copy of the index, read from one snapshot).",
)
@click.option(
    "--worker-ready-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Seconds a new worker may take to load the index when SIGHUP replaces the workers "
    "one by one (Linux, --workers 2 or more); one not ready by then is stopped and the "
    "workers not yet replaced are kept.",
)
@click.option(
    "--index-threads",
    type=click.IntRange(1, 256),
    default=None,
    help="Most threads one batched lookup starts in a worker [default: "
    "LIGHTKEEPER_INDEX_THREADS, else every CPU].",
)
@click.option(
    "--index-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where index snapshots are kept [default: index/ beside an SQLite store].",
)
@click.option(
    "--max-upload-mb",
    type=click.IntRange(1, 4096),
    default=64,
    show_default=True,
    help="Largest request body, in MiB.",
)
@click.option(
    "--max-megapixels",
    type=click.IntRange(1, 10_000),
    default=150,
    show_default=True,
    help="Largest image, in megapixels (checked before decoding).",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=100.0,
    show_default=True,
    help="Requests per second per API key, for keys that set none.",
)
@click.option(
    "--actions/--no-actions",
    default=None,
    help="Act on matches (policy, quarantine vault, cases, webhooks) or only answer them "
    "[default: on, unless LIGHTKEEPER_ACTIONS=0].",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@db_option
def serve_command(
    host: str,
    port: int,
    workers: int,
    worker_ready_timeout: float,
    index_threads: int | None,
    index_dir: Path | None,
    max_upload_mb: int,
    max_megapixels: int,
    rate_limit: float,
    actions: bool | None,
    log_level: str,
    db: str | None,
) -> None:
    """Serve the matching API (/v1, HMA-compatible routes, /docs) over the bank store.

    Every route but /healthz and /readyz needs an API key: create one with
    `lightkeeper keys create`. Each worker loads the index from a snapshot and follows
    the store's change log, so bank changes made anywhere match within a second.
    """
    import uvicorn

    from lightkeeper.banks import resolve_database_url
    from lightkeeper.service.settings import ServiceSettings
    from lightkeeper.service.workers import (
        BALANCED_SOCKETS,
        SocketPerWorker,
        shared_port_sockets,
    )

    try:
        from_env = ServiceSettings.from_env()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    # The options set what they name; every other setting (the hot path, paired tables, the
    # follow interval …) and an option left unset keep what the environment says.
    settings = replace(
        from_env,
        database_url=resolve_database_url(db),
        index_dir=from_env.index_dir if index_dir is None else index_dir,
        max_upload_bytes=max_upload_mb * 1024 * 1024,
        max_pixels=max_megapixels * 1_000_000,
        rate_limit=rate_limit,
        workers=workers,
        index_threads=from_env.index_threads if index_threads is None else index_threads,
        actions=from_env.actions if actions is None else actions,
    )
    os.environ.update(settings.to_env())
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Workers write their metrics here and /metrics sums them (see service.metrics).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lightkeeper-metrics-")
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    if workers == 1 or not BALANCED_SOCKETS:
        uvicorn.run(_APP, **options)
        return
    # A listening socket per worker, so that connections are spread over all of them
    # (service.workers says why).
    config = uvicorn.Config(_APP, **options)
    try:
        sockets = shared_port_sockets(host, port, workers)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    bound = sockets[0].getsockname()[1]
    logging.getLogger("uvicorn.error").info(
        "Serving on http://%s:%d with %d workers, a listening socket each (Press CTRL+C to quit)",
        host,
        bound,
        workers,
    )
    SocketPerWorker(config, sockets, ready_timeout=worker_ready_timeout).run()
