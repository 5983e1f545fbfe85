"""The hot path: single-hash lookups answered without FastAPI's per-request machinery.

Why it exists. A single-hash lookup is the call a platform makes most, and the one whose
throughput the service is judged by. Through FastAPI, routing, dependency solving and
parameter validation cost about as much CPU as the index search itself at 13.4 M entries
(profiled with py-spy under wrk: about half of each request). This middleware answers the
common case of two routes directly, with the same functions the routes use
(`authenticate`, `spend`, and the route's own answer: `matching.lookup_response`,
`hma.raw_lookup_response`), so the answer is the route's answer, byte for byte:

- ``GET /v1/lookup`` (``signal_type``, ``value``, ``quality``);
- HMA's ``GET /m/raw_lookup`` (``signal_type``, ``signal``, ``include_distance``,
  ``banks``), the hash lookup of HMA integrations.

Only the well-formed, authorised request is answered here. Anything else falls through,
untouched and uncharged, to the FastAPI route, which gives the documented errors: no key or
an unknown one (401), a key without the ``lookup`` scope (403), a missing, repeated or
malformed parameter or hash (422 on ``/v1``, HMA's 400 for a bad hash on ``/m``), an
unknown signal type (404 on ``/v1``, 400 on ``/m``). A spent rate limit is answered here
(429, the same body and ``Retry-After`` as the route's). `tests/test_service_hotpath.py`
sends the same requests with the hot path on and off and compares status, headers and
bodies.

The route object is put in the ASGI scope, as Starlette's router does, so that metrics count
these requests under the route's template like any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from lightkeeper.errors import LightkeeperError, RateLimited
from lightkeeper.matching import Matcher
from lightkeeper.service.access import secret_of, spend
from lightkeeper.service.keys import ApiKey
from lightkeeper.service.ratelimit import retry_after_header
from lightkeeper.signals import registry

#: The query of a request: each parameter given once.
Params = dict[str, str]
#: A request's answer once its key is known to allow a lookup (and has been charged).
Answer = Callable[[ApiKey], ASGIApp]

_QUALITY = re.compile(r"(?:0|[1-9][0-9]?|100)")
#: The spellings of a boolean taken here (pydantic takes more; those go to the route).
_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}


def _within(params: Params, limits: dict[str, int]) -> bool:
    """Whether every parameter of `limits` is given, with 1 to its limit characters."""
    return all(1 <= len(params.get(name, "")) <= limit for name, limit in limits.items())


def _v1_lookup(params: Params, matcher: Matcher) -> Answer | None:
    """``GET /v1/lookup``, with the checks its route declares (`routes.matching`)."""
    from lightkeeper.service.routes.matching import lookup_response

    if not _within(params, {"signal_type": 32, "value": 4096}):
        return None
    signal_type, value = params["signal_type"], params["value"]
    quality_text = params.get("quality")
    if quality_text is not None and not _QUALITY.fullmatch(quality_text):
        return None
    quality = None if quality_text is None else int(quality_text)
    try:
        registry.get(signal_type).normalize(value)
    except LightkeeperError:
        return None
    return lambda key: lookup_response(matcher, signal_type, value, quality, key)


def _hma_raw_lookup(params: Params, matcher: Matcher) -> Answer | None:
    """HMA's ``GET /m/raw_lookup`` (`routes.hma`); its route sets no length limits, these
    bound the work done here (longer values go to the route)."""
    from lightkeeper.service.routes.hma import hma_signal, raw_lookup_response

    if not _within(params, {"signal_type": 32, "signal": 4096}):
        return None
    include_distance = _BOOLEANS.get(params.get("include_distance", "false"))
    if include_distance is None:
        return None
    banks = params.get("banks")
    try:
        signal = hma_signal(params["signal_type"], params["signal"])
    except LightkeeperError:
        return None
    return lambda key: raw_lookup_response(matcher, signal, include_distance, banks)


@dataclass(frozen=True)
class _Endpoint:
    route: APIRoute
    prepare: Callable[[Params, Matcher], Answer | None]


#: The routes answered here, by path, and how each reads its query.
_PREPARE: Final[dict[str, Callable[[Params, Matcher], Answer | None]]] = {
    "/v1/lookup": _v1_lookup,
    "/m/raw_lookup": _hma_raw_lookup,
}


class LookupHotPath:
    """ASGI middleware answering the single-hash lookups of `_PREPARE` when the request is
    well formed and its key may look up; everything else goes on to `app`."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        from lightkeeper.service.routes import hma, matching

        self.app = app
        self.fastapi_app = fastapi_app
        self.endpoints = {
            route.path: _Endpoint(route, _PREPARE[route.path])
            for route in [*matching.router.routes, *hma.router.routes]
            if isinstance(route, APIRoute)
            and route.path in _PREPARE
            and "GET" in (route.methods or ())
        }
        if self.endpoints.keys() != _PREPARE.keys():
            raise RuntimeError(f"hot path routes not found: {_PREPARE.keys() - self.endpoints}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                request = Request(scope, receive)
                answer = self._answer(request, endpoint)
                if answer is not None:
                    scope["route"] = endpoint.route
                    await answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _answer(self, request: Request, endpoint: _Endpoint) -> ASGIApp | None:
        from lightkeeper.service.app import error_response

        params = _params(request.scope.get("query_string", b""))
        if params is None:
            return None
        runtime = self.fastapi_app.state.runtime
        secret = secret_of(request)
        key = runtime.keys.authenticate(secret) if secret is not None else None
        if key is None or not key.allows("lookup"):
            return None
        answer = endpoint.prepare(params, runtime.matcher)
        if answer is None:
            return None
        try:
            spend(runtime, key, 1.0)
        except RateLimited as exc:
            response = error_response(request, exc.http_status, exc.code, exc.message)
            response.headers["Retry-After"] = retry_after_header(exc.retry_after)
            return response
        return answer(key)


def _params(query_string: bytes) -> Params | None:
    """The query's parameters when none is blank or given twice; None for anything the
    route should judge."""
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), strict_parsing=True, encoding="utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    found: Params = {}
    for name, given in pairs:
        if name in found:
            return None
        found[name] = given
    return found
