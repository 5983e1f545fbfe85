"""Security headers on every reviewer page, image and file (everything under ``/review``).

The pages show evidence about abuse reports, and behind a reveal the clear image itself, so
the browser is told to keep them to this origin and out of every cache:

- ``Content-Security-Policy``: nothing loads from anywhere but this origin, no inline
  script or style at all (the pages' only script is ``/review/static/review.js``), images
  from this origin only (never ``data:`` or ``blob:``), forms post only here, no framing,
  no ``<base>`` rewriting, no plug-ins;
- ``X-Frame-Options: DENY`` (framing, for browsers without ``frame-ancestors``);
- ``Referrer-Policy: no-referrer``: a case URL never leaves in a ``Referer`` header;
- ``X-Content-Type-Options: nosniff``: a derivative served as PNG is never run as anything;
- ``Cache-Control: no-store`` on pages and media (the style sheet and script may be
  revalidated instead), so that neither the browser nor a proxy keeps a copy.

One exception, by path: the transparency page embeds the charts of
`lightkeeper.reporting.transparency.page`, SVG drawn by matplotlib, which styles its shapes
with ``style`` attributes; that page alone allows inline *style* (never script). It shows
aggregate figures only.

A pure ASGI middleware, so that it also covers the application's own error responses.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lightkeeper.service.access import REVIEW_PREFIX as PREFIX
from lightkeeper.service.access import is_review_path

__all__ = [
    "CHARTS_CONTENT_SECURITY_POLICY",
    "CONTENT_SECURITY_POLICY",
    "PREFIX",
    "STATIC_PREFIX",
    "SecurityHeaders",
]

STATIC_PREFIX = PREFIX + "/static/"


def _policy(style_src: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            f"style-src {style_src}",
            "img-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        )
    )


CONTENT_SECURITY_POLICY = _policy("'self'")
#: The transparency page's: inline style allowed for its SVG charts (see above).
CHARTS_CONTENT_SECURITY_POLICY = _policy("'self' 'unsafe-inline'")
CHARTS_PATH = PREFIX + "/transparency"

_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


class SecurityHeaders:
    """Adds the headers above to every response under ``/review``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_review_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(STATIC_PREFIX)
        charts = scope["path"] == CHARTS_PATH

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers[name] = value
                headers["content-security-policy"] = (
                    CHARTS_CONTENT_SECURITY_POLICY if charts else CONTENT_SECURITY_POLICY
                )
                headers["cache-control"] = "no-cache" if static else "no-store"
                if not static:
                    headers["pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_with_headers)
