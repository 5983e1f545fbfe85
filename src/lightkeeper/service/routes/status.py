"""Health and state: ``/healthz`` (the process answers), ``/readyz`` (its index is loaded and
current), ``/v1/index/status`` (per signal type, and the change-log position), ``/metrics``
(Prometheus, ``admin`` scope)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from lightkeeper.service import metrics
from lightkeeper.service.access import PUBLIC, needs
from lightkeeper.service.schemas import IndexStatus, SignalIndexStatus

router = APIRouter(tags=["status"])


@router.get("/healthz", openapi_extra=needs(PUBLIC), summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    openapi_extra=needs(PUBLIC),
    summary="Readiness: the index is loaded and follows the change log",
    responses={503: {"description": "Not ready: the index is loading or stale"}},
)
async def readyz(request: Request) -> Response:
    if request.app.state.runtime.index_current():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready"}, status_code=503)


@router.get(
    "/v1/index/status",
    openapi_extra=needs("lookup"),
    summary="The index: entries per signal type, change-log position and lag",
)
async def index_status(request: Request) -> IndexStatus:
    runtime = request.app.state.runtime
    status = runtime.matcher.follower.status()
    return IndexStatus(
        loaded=status.loaded,
        current=runtime.index_current(),
        last_seq=status.last_seq,
        store_seq=status.store_seq,
        lag=status.lag,
        last_refresh_at=status.last_refresh_at,
        loaded_from=status.loaded_from,
        snapshot_seq=status.snapshot_seq,
        signal_types={name: SignalIndexStatus(size=n) for name, n in status.sizes.items()},
    )


@router.get(
    "/metrics",
    openapi_extra=needs("admin"),
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def prometheus_metrics(request: Request) -> Response:
    body = metrics.render(request.app.state.runtime)
    return Response(body, media_type=metrics.CONTENT_TYPE)
