"""The hot path: ``GET /v1/lookup`` answered without FastAPI's per-request machinery.

Why it exists. A single-hash lookup is the call a platform makes most, and the one whose
throughput the service is judged by. Through FastAPI, routing, dependency solving and
parameter validation cost about as much CPU as the index search itself at 13.4 M entries
(profiled with py-spy under wrk: about half of each request). This middleware answers the
common case directly, with the same functions the route uses (`authenticate`, `spend`,
`matching.lookup_response`), so the answer is the route's answer, byte for byte.

Only the well-formed, authorised request is answered here. Anything else falls through,
untouched and uncharged, to the FastAPI route, which gives the documented errors: no key or
an unknown one (401), a key without the ``lookup`` scope (403), a missing, repeated or
malformed parameter (422), an unknown signal type (404). A spent rate limit is answered here
(429, the same body and ``Retry-After`` as the route's). `tests/test_service_hotpath.py` sends
the same requests with the hot path on and off and compares status, headers and bodies.

The route object is put in the ASGI scope, as Starlette's router does, so that metrics count
these requests under the route's template like any other.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from lightkeeper.errors import LightkeeperError, RateLimited
from lightkeeper.service.access import secret_of, spend
from lightkeeper.service.ratelimit import retry_after_header
from lightkeeper.signals import registry

#: The parameters of ``GET /v1/lookup`` and the checks its route declares (`routes.matching`).
_PATH = "/v1/lookup"
_LIMITS = {"signal_type": 32, "value": 4096}
_QUALITY = re.compile(r"(?:0|[1-9][0-9]?|100)")


class LookupHotPath:
    """ASGI middleware answering ``GET /v1/lookup`` when the request is well formed and its
    key may look up; everything else goes on to `app`."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        from lightkeeper.service.routes.matching import router

        self.route = next(
            r
            for r in router.routes
            if isinstance(r, APIRoute) and r.path == _PATH and "GET" in (r.methods or ())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == _PATH and scope["method"] == "GET":
            request = Request(scope, receive)
            answer = self._answer(request)
            if answer is not None:
                scope["route"] = self.route
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _answer(self, request: Request) -> ASGIApp | None:
        from lightkeeper.service.app import error_response
        from lightkeeper.service.routes.matching import lookup_response

        params = _params(request.scope.get("query_string", b""))
        if params is None:
            return None
        signal_type, value, quality = params
        runtime = self.fastapi_app.state.runtime
        secret = secret_of(request)
        key = runtime.keys.authenticate(secret) if secret is not None else None
        if key is None or not key.allows("lookup"):
            return None
        try:
            registry.get(signal_type).normalize(value)
        except LightkeeperError:
            return None
        try:
            spend(runtime, key, 1.0)
        except RateLimited as exc:
            response = error_response(request, exc.http_status, exc.code, exc.message)
            response.headers["Retry-After"] = retry_after_header(exc.retry_after)
            return response
        return lookup_response(runtime.matcher, signal_type, value, quality, key)


def _params(query_string: bytes) -> tuple[str, str, int | None] | None:
    """The lookup's parameters when each is given at most once and passes the route's
    checks; None for anything the route should judge."""
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), strict_parsing=True, encoding="utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    found: dict[str, str] = {}
    for name, given in pairs:
        if name in found:
            return None
        found[name] = given
    signal_type, value = found.get("signal_type"), found.get("value")
    if signal_type is None or value is None:
        return None
    for name, limit in _LIMITS.items():
        if not 1 <= len(found[name]) <= limit:
            return None
    quality_text = found.get("quality")
    if quality_text is not None and not _QUALITY.fullmatch(quality_text):
        return None
    return signal_type, value, None if quality_text is None else int(quality_text)
