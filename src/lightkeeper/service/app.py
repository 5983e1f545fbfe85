"""The HTTP application: `create_app` builds it; `lightkeeper serve` runs it under uvicorn.

Routes (all documented in the OpenAPI document at ``/openapi.json``, browsable at ``/docs``):

- ``/v1/…`` — Lightkeeper's own versioned API (`lightkeeper.service.routes`);
- the routes of Meta's Hasher-Matcher-Actioner 2.0 (``/h/hash``, ``/m/…``, ``/c/…``,
  ``/status``), same shapes, so that HMA integrations switch by changing the base URL
  (`lightkeeper.service.routes.hma`);
- ``/healthz``, ``/readyz`` and ``/metrics``;
- ``/review/…`` — the reviewer web UI, for people signed in, not API keys
  (`lightkeeper.service.web`).

Errors: every deliberate error (`lightkeeper.errors`) becomes its ``http_status`` with
``{"error": {"code": …, "message": …}}`` on Lightkeeper's routes, and HMA's
``{"message": …}`` on HMA's. Anything else is a bug: 500, logged with its traceback.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lightkeeper import __version__
from lightkeeper.errors import LightkeeperError, RateLimited
from lightkeeper.service.access import PUBLIC, SCOPE_KEY, AuthenticateFirst, enforce_access
from lightkeeper.service.hotpath import LookupHotPath
from lightkeeper.service.jsonbody import add_body_schemas
from lightkeeper.service.metrics import install_metrics
from lightkeeper.service.ratelimit import retry_after_header
from lightkeeper.service.runtime import Runtime
from lightkeeper.service.settings import ServiceSettings
from lightkeeper.service.uploads import BodyLimit
from lightkeeper.service.web import install as install_web

log = logging.getLogger("lightkeeper.service")

#: Path prefixes of the HMA-compatible routes, whose errors take HMA's shape.
HMA_PREFIXES = ("/h/", "/m/", "/c/", "/status")

DESCRIPTION = """Lightkeeper's matching service: hash uploads, match them against hash banks
with evidence, manage banks. Every route except the health probes needs an API key with the
scope the route names (`Authorization: Bearer <key>`); create keys with `lightkeeper keys`.
A client with a matching scope never sees a bank's hash values: only `bank:read` does."""


def is_hma_path(path: str) -> bool:
    return path.startswith(HMA_PREFIXES)


def error_response(request: Request, status: int, code: str, message: str) -> JSONResponse:
    body: dict[str, Any] = (
        {"message": message}
        if is_hma_path(request.url.path)
        else {"error": {"code": code, "message": message}}
    )
    return JSONResponse(body, status_code=status)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The application over the store `settings` names (default: from the environment)."""
    chosen = settings or ServiceSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(chosen)
        app.state.runtime = runtime
        # Everything alive now (modules, routes, the store's mappers, the index's metadata)
        # lives as long as the process: keep it out of the cyclic collector's full passes,
        # which otherwise rescan it all while a batch of 10,000 lookups allocates. Measured
        # at 13.4 M hashes: a third less CPU per batched request (docs/benchmarks.md).
        gc.freeze()
        try:
            yield
        finally:
            runtime.close()
            gc.unfreeze()  # an app made and closed in a longer-lived process leaves no garbage

    app = FastAPI(
        title="Lightkeeper",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(enforce_access)],
    )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own 404/405 (no such path or method), in the shape of the route family.
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        response = error_response(
            request, exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
        )
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(LightkeeperError)
    async def lightkeeper_error(request: Request, exc: LightkeeperError) -> JSONResponse:
        response = error_response(request, exc.http_status, exc.code, exc.message)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = retry_after_header(exc.retry_after)
        return response

    from lightkeeper.service.routes import appeals as appeal_routes
    from lightkeeper.service.routes import banks, cases, hashing, hma, matching, policy, status
    from lightkeeper.service.routes import webhooks as webhook_routes

    for module in (
        hashing,
        matching,
        banks,
        policy,
        cases,
        appeal_routes,
        webhook_routes,
        status,
        hma,
    ):
        app.include_router(module.router)
    app.add_middleware(AuthenticateFirst, public_paths=lambda: _public_paths(app))
    app.add_middleware(BodyLimit, limit=chosen.max_upload_bytes)
    if chosen.hot_path:
        app.add_middleware(LookupHotPath, fastapi_app=app)
    install_metrics(app)
    install_web(app)  # the reviewer UI under /review, its headers outermost
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _public_paths(app: FastAPI) -> frozenset[str]:
    """Paths served without a key: routes declared public, and the API's own documentation."""
    cached: frozenset[str] | None = getattr(app.state, "public_paths", None)
    if cached is None:
        # From the OpenAPI document: every route with its metadata, however routers nest.
        declared = {
            path
            for path, operations in app.openapi().get("paths", {}).items()
            if all(op.get(SCOPE_KEY) == PUBLIC for op in operations.values())
        }
        docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
        cached = frozenset(declared | {path for path in docs if path})
        app.state.public_paths = cached
    return cached


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        add_body_schemas(schema.setdefault("components", {}).setdefault("schemas", {}))
        schema["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        app.openapi_schema = schema
    return app.openapi_schema
