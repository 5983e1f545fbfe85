"""Rendering for the reviewer UI: the Jinja2 templates, and the two ways a page ends.

Templates live in ``templates/`` beside this module, with autoescaping on for everything
(user-supplied text — appeal statements, notes, uploader references — is data, never
markup) and undefined names an error rather than an empty string. Every handler ends with
`page` (HTML) or `redirect` (303 See Other, so that a form POST is never re-sent by a
reload); both attach a session cookie that `lightkeeper.service.web.auth` started during
the request (a trusted proxy header sign-in).

Failures are raised, not returned: `WebError` (a status and a message for a person, shown
on the error page) and `SignInNeeded` (redirect to the sign-in page); `install_handlers`
registers the two handlers that turn them into pages.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.exceptions import HTTPException as StarletteHTTPException

from lightkeeper.errors import LightkeeperError

__all__ = [
    "SignInNeeded",
    "WebError",
    "install_handlers",
    "page",
    "page_errors",
    "redirect",
    "templates",
]


class WebError(Exception):
    """A request refused with a page that says why (403, 404, 409, 422, 429 …)."""

    def __init__(self, status: int, message: str, *, back: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        #: Where the error page links back to (default: the queue).
        self.back = back


class SignInNeeded(Exception):
    """No valid session: a GET is sent to the sign-in page, anything else refused."""


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _build() -> Environment:
    env = Environment(
        loader=PackageLoader("lightkeeper.service.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


_ENV: Environment | None = None


def templates() -> Environment:
    """The template environment (built on first use)."""
    global _ENV
    if _ENV is None:
        _ENV = _build()
    return _ENV


def _with_session_cookie(request: Request, response: Response) -> Response:
    from lightkeeper.service.web.auth import attach_pending_cookie

    attach_pending_cookie(request, response)
    return response


def page(
    request: Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> HTMLResponse:
    """Render `template` with `context` (plus ``signed``, the signed-in person or None)."""
    signed = getattr(request.state, "signed", None)
    body = templates().get_template(template).render({"signed": signed, "done": None, **context})
    response = HTMLResponse(body, status_code=status)
    _with_session_cookie(request, response)
    return response


def redirect(request: Request, path: str) -> Response:
    """303 to a path of this site (never to anywhere a request named)."""
    if not path.startswith("/review"):
        raise ValueError(f"not a reviewer UI path: {path!r}")
    return _with_session_cookie(request, RedirectResponse(path, status_code=303))


@contextmanager
def page_errors(back: str | None = None) -> Iterator[None]:
    """Turn the library's deliberate errors into error pages, linking back to `back`."""
    try:
        yield
    except LightkeeperError as exc:
        status = exc.http_status if 400 <= exc.http_status < 600 else 500
        raise WebError(status, exc.message, back=back) from exc


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that turn `WebError`, `SignInNeeded`, the library's errors,
    malformed requests and HTTP errors into pages."""

    async def web_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebError)
        context = {"status": exc.status, "message": exc.message, "back": exc.back}
        return page(request, "error.html", context, status=exc.status)

    async def sign_in_needed(request: Request, exc: Exception) -> Response:
        if request.method in ("GET", "HEAD"):
            target = request.url.path
            if request.url.query:
                target += "?" + request.url.query
            return RedirectResponse(
                "/review/sign-in?next=" + quote(target, safe="/"), status_code=303
            )
        context = {
            "status": 401,
            "message": "Your session has ended. Sign in again, then repeat what you did.",
            "back": "/review/sign-in",
        }
        return page(request, "error.html", context, status=401)

    async def library_error(request: Request, exc: Exception) -> Response:
        # A deliberate error that no `page_errors` block caught: still a page that says why.
        assert isinstance(exc, LightkeeperError)
        status = exc.http_status if 400 <= exc.http_status < 600 else 500
        context = {"status": status, "message": exc.message, "back": None}
        return page(request, "error.html", context, status=status)

    async def bad_request(request: Request, exc: Exception) -> Response:
        # A malformed path or form field (a case id that is not a number, a field too long).
        context = {"status": 422, "message": "This request is malformed.", "back": None}
        return page(request, "error.html", context, status=422)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = {404: "There is no such page.", 405: "That is not allowed here."}.get(
            exc.status_code, "This request cannot be served."
        )
        context = {"status": exc.status_code, "message": message, "back": None}
        return page(request, "error.html", context, status=exc.status_code)

    app.add_exception_handler(WebError, web_error)
    app.add_exception_handler(SignInNeeded, sign_in_needed)
    app.add_exception_handler(LightkeeperError, library_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
