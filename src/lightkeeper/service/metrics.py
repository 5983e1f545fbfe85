"""Prometheus metrics: requests and latency per route, matches, and the index's state.

With several worker processes (``lightkeeper serve --workers N``), each process writes its
samples to files under ``PROMETHEUS_MULTIPROC_DIR`` (set by ``serve``), and ``/metrics``
adds them up, so a scrape that lands on any worker sees the whole service.
"""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "lightkeeper_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "lightkeeper_http_request_seconds",
    "Time from request to the end of the response, by route template.",
    ["route"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
MATCHES = Counter(
    "lightkeeper_matches_total",
    "Block-bank matches reported, by bank and signal type.",
    ["bank", "signal_type"],
)
INDEX_SIZE = Gauge(
    "lightkeeper_index_entries",
    "Entries in this process's index, by signal type.",
    ["signal_type"],
    multiprocess_mode="max",
)
INDEX_LAG = Gauge(
    "lightkeeper_index_lag_changes",
    "Change-log entries not yet applied to the index at the last refresh.",
    multiprocess_mode="max",
)
INDEX_SEQ = Gauge(
    "lightkeeper_index_last_seq",
    "Sequence number of the last change applied to the index.",
    multiprocess_mode="min",
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _MetricsMiddleware:
    """Counts and times every request by its route template (not its raw path, so that ids
    in paths do not create a series each)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            REQUESTS.labels(template, scope.get("method", ""), str(status)).inc()
            LATENCY.labels(template).observe(time.perf_counter() - start)


def install_metrics(app: FastAPI) -> None:
    app.add_middleware(_MetricsMiddleware)


def render(runtime: Any) -> bytes:
    """The exposition text, with the index gauges brought up to date first."""
    status = runtime.matcher.follower.status()
    for signal_type, size in status.sizes.items():
        INDEX_SIZE.labels(signal_type).set(size)
    INDEX_LAG.set(status.lag)
    INDEX_SEQ.set(status.last_seq)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest())
