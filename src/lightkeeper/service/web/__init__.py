"""The reviewer web UI, served by ``lightkeeper serve`` under ``/review`` (DESIGN §1, "review").

Server-rendered pages (Jinja2, autoescaped) with one small script for keyboard shortcuts;
everything works without it. The pages are thin: each calls the review, reporting and
transparency libraries (`lightkeeper.review`, `lightkeeper.reporting`) and renders what they
return. Modules:

- `auth` — sign-in (password or trusted proxy header), the session cookie, roles, CSRF,
  the sign-in limiter; `account` — the sign-in and sign-out pages, static files;
- `cases` — the queue, the case page (evidence first, blurred preview, reveal, decisions);
  `visibility` — who may see which case; `derivatives` — the blurred greyscale preview;
  `tickets` — a revealed image served once;
- `reporting` — NCMEC reports from the case page; `oversight` — appeals and transparency;
- `security` — the headers on every ``/review`` response (CSP, no framing, no caching);
- `render` — templates, error pages and redirects; `state` — per-process state.

`install` mounts all of it on the service's application, as an application of its own at
``/review``: its routes take no API key and never run the API's key check, and it has no
OpenAPI document (its forms are no API). Every one of its routes but the sign-in page and
the static files requires a signed-in person; tests/test_review_web.py checks each route.
The service's own routes are untouched by it: they still read API keys only, so a reviewer's
session cookie opens none of them.
"""

from __future__ import annotations

from fastapi import FastAPI

from lightkeeper.service.web.render import install_handlers
from lightkeeper.service.web.security import PREFIX, SecurityHeaders
from lightkeeper.service.web.state import WebState

__all__ = ["install"]


def install(app: FastAPI) -> FastAPI:
    """Mount the reviewer UI at ``/review`` on the service's `app`, with its security headers
    on every response under that path; returns the UI's own application."""
    from lightkeeper.service.web import account, cases, oversight, reporting

    ui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    ui.state.web = app.state.web = WebState(app)
    for router in (account.router, cases.router, reporting.router, oversight.router):
        ui.include_router(router, include_in_schema=False)
    ui.include_router(account.fallback, include_in_schema=False)  # last: any other GET
    install_handlers(ui)
    app.mount(PREFIX, ui)
    app.add_middleware(SecurityHeaders)
    return ui
