"""Who may call what: every route is closed unless it names a scope or is declared public.

A route states its requirement in its OpenAPI metadata (`needs`), which also documents it.
One dependency, installed on the whole application, enforces it for every route:

- no key (``Authorization: Bearer <key>`` or ``X-API-Key: <key>``), or an unknown or revoked
  one: 401;
- a route that declares no requirement at all: 403 for everyone (deny by default: a route
  added without thought is closed, not open);
- a key without the scope: 403 (``admin`` holds every scope);
- a key over its rate limit: 429 with ``Retry-After``.

Public routes are the health probes only (``/healthz``, ``/readyz``, HMA's ``/status``),
which reveal nothing but "up" or "not ready", and the OpenAPI document.

The reviewer UI (``/review/…``, `lightkeeper.service.web`) is for people, not keys: an
application of its own mounted there, guarded by its own session sign-in, so `AuthenticateFirst`
lets its paths through and this module's dependency never runs on them. No API route reads
the UI's session cookie: a signed-in reviewer's browser has no access to the API.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from lightkeeper.errors import Forbidden, RateLimited, Unauthenticated
from lightkeeper.service.keys import ApiKey
from lightkeeper.service.ratelimit import retry_after_header

SCOPE_KEY = "x-required-scope"
#: Where the authenticated key is kept in the ASGI scope for the rest of the request.
_KEY_SCOPE = "lightkeeper.key"
PUBLIC = "public"
#: Where the reviewer UI lives.
REVIEW_PREFIX = "/review"
#: Rate-limit tokens a request costs per hash beyond the first hundred of a batch.
BATCH_COST_PER_HASH = 0.01


def needs(scope: str) -> dict[str, Any]:
    """Route metadata (`openapi_extra`) stating the scope a route requires."""
    if scope == PUBLIC:
        return {SCOPE_KEY: PUBLIC, "security": []}
    return {SCOPE_KEY: scope, "security": [{"bearer": []}, {"apiKeyHeader": []}]}


def is_review_path(path: str) -> bool:
    """Whether a request path belongs to the reviewer UI (guarded by its own sign-in)."""
    return path == REVIEW_PREFIX or path.startswith(REVIEW_PREFIX + "/")


def secret_of(request: Request) -> str | None:
    """The key a request presents, if any."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _required(request: Request) -> str | None:
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) or {}
    value = extra.get(SCOPE_KEY)
    return value if isinstance(value, str) else None


def authenticate(request: Request) -> ApiKey:
    """The calling key; `Unauthenticated` without one, or with one unknown or revoked."""
    found: ApiKey | None = request.scope.get(_KEY_SCOPE)
    if found is not None:
        return found
    secret = secret_of(request)
    if secret is None:
        raise Unauthenticated(
            "this route needs an API key: send 'Authorization: Bearer <key>' "
            "(create one with `lightkeeper keys create`)"
        )
    key: ApiKey | None = request.app.state.runtime.keys.authenticate(secret)
    if key is None:
        raise Unauthenticated("unknown or revoked API key")
    request.scope[_KEY_SCOPE] = key
    return key


class AuthenticateFirst:
    """Refuses (401) a request without a valid key before anything reads its body, except on
    the public paths and the reviewer UI's (which checks its own sessions): a caller without
    a key learns nothing from how its body is parsed, and costs no parsing."""

    def __init__(self, app: ASGIApp, public_paths: Callable[[], Set[str]]) -> None:
        self.app = app
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and not is_review_path(scope["path"])
            and scope["path"] not in self.public_paths()
        ):
            request = Request(scope, receive)
            try:
                authenticate(request)
            except Unauthenticated as exc:
                from lightkeeper.service.app import error_response

                response = error_response(request, exc.http_status, exc.code, exc.message)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def enforce_access(request: Request) -> None:
    """The application-wide dependency; see the module docstring."""
    required = _required(request)
    if required == PUBLIC:
        return
    key = authenticate(request)
    if required is None:
        raise Forbidden("this route is not open to any key")
    if not key.allows(required):
        raise Forbidden(f"this route needs a key with the {required!r} scope")
    request.state.key = key
    charge(request, 1.0)


def charge(request: Request, cost: float) -> None:
    """Spend `cost` from the calling key's rate limit; 429 when it is spent.

    One request never costs more than a full bucket in all (its charges add up), so that a
    batch too large for the bucket still goes through when the bucket is full.
    """
    spent: float = getattr(request.state, "charged", 0.0)
    request.state.charged = spend(request.app.state.runtime, request.state.key, cost, spent)


def spend(runtime: Any, key: ApiKey, cost: float, spent: float = 0.0) -> float:
    """`charge` for a key and the `spent` total of its request so far; the new total."""
    settings = runtime.settings
    rate = (key.rate_limit or settings.rate_limit) / max(1, settings.workers)
    burst = max(1.0, 2.0 * rate)
    cost = min(cost, max(0.0, burst - spent))
    wait = runtime.limiter.take(key.id, rate, burst, cost)
    if wait > 0:
        raise RateLimited(
            f"rate limit of {key.rate_limit or settings.rate_limit:g} requests/s exceeded; "
            f"retry after {retry_after_header(wait)} s",
            retry_after=wait,
        )
    return spent + cost


def calling_key(request: Request) -> ApiKey:
    key: ApiKey = request.state.key
    return key
