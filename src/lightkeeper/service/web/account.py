"""Signing in and out, the UI's static files, and what answers an unknown ``/review`` path.

- ``GET /review``: to the queue (or the sign-in page);
- ``GET /review/sign-in``, ``POST /review/sign-in``: user name and password
  (`lightkeeper.review.accounts.authenticate`), limited per name and address; with a trusted
  proxy header configured and present, the person it names is signed in without a form;
- ``POST /review/sign-out``: ends the session (CSRF-checked, so no other site signs you
  out);
- ``GET /review/static/review.css`` and ``review.js``: the only script and the style sheet
  (with ``transparency.css``, the transparency figures' own, from
  `lightkeeper.reporting.transparency.page`).
"""

from __future__ import annotations

import math
import re
from importlib import resources

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from lightkeeper.errors import LightkeeperError
from lightkeeper.reporting.transparency.page import STYLESHEET as TRANSPARENCY_STYLESHEET
from lightkeeper.review.accounts import authenticate
from lightkeeper.review.sessions import end_session, start_session
from lightkeeper.service.access import REVIEW_PREFIX
from lightkeeper.service.web.auth import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    Signed,
    SignedIn,
    check_csrf,
    check_sign_in_token,
    clear_session_cookie,
    clear_sign_in_cookie,
    new_sign_in_token,
    safe_next,
    set_session_cookie,
    set_sign_in_cookie,
    signed_in,
)
from lightkeeper.service.web.render import SignInNeeded, WebError, page, redirect
from lightkeeper.service.web.signins import SignInRefused
from lightkeeper.service.web.state import store_of, web_state

__all__ = ["STATIC_FILES", "fallback", "router"]

router = APIRouter()
#: Registered last: answers every other GET under /review.
fallback = APIRouter()

STATIC_FILES = {
    "review.css": "text/css; charset=utf-8",
    "review.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
_CSS = "text/css; charset=utf-8"
#: Longest user name or password read from the sign-in form.
_MAX_FIELD = 1024
#: A sign-in cookie worth reusing: URL-safe, as long as `new_sign_in_token`'s at least, and
#: no longer than the form's field takes back.
_SIGN_IN_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{43,{_MAX_FIELD}}}")


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _current_sign_in_token(request: Request) -> str | None:
    """The token of the sign-in cookie the browser already holds, if it is one this page
    could have set and the form could send back; None: mint a new one.

    Reusing it keeps every open sign-in form valid: a new token at every GET would leave
    the form in an older tab failing its check (403) after another tab loaded the page.
    """
    token = request.cookies.get(SIGN_IN_COOKIE) or ""
    return token if _SIGN_IN_TOKEN.fullmatch(token) else None


def _already(request: Request) -> Signed | None:
    try:
        return signed_in(request)
    except SignInNeeded:
        return None


def _sign_in_form(
    request: Request,
    *,
    next_path: str,
    username: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    token = _current_sign_in_token(request) or new_sign_in_token()
    context = {"next": next_path, "username": username, "error": error, "token": token}
    response = page(request, "signin.html", context, status=status)
    set_sign_in_cookie(request, response, token)
    return response


@router.get("/")
def home(request: Request) -> Response:
    if _already(request) is None:
        return redirect(request, f"{REVIEW_PREFIX}/sign-in")
    return redirect(request, f"{REVIEW_PREFIX}/queue")


@router.get("/sign-in")
def sign_in_page(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if _already(request) is not None:
        return redirect(request, next_path)
    signed_out = request.query_params.get("done") == "signed_out"
    error = "You are signed out." if signed_out else None
    return _sign_in_form(request, next_path=next_path, error=error)


@router.post("/sign-in")
def sign_in(
    request: Request,
    username: str = Form("", max_length=_MAX_FIELD),
    password: str = Form("", max_length=_MAX_FIELD),
    token: str = Form("", max_length=_MAX_FIELD),
    next: str = Form("", max_length=_MAX_FIELD),  # the form field's name
) -> Response:
    check_sign_in_token(request, token)
    next_path = safe_next(next)
    username = username.strip()
    limiter = web_state(request).sign_ins
    store = store_of(request)
    try:
        with limiter.attempt(username, _address(request)) as attempt:
            try:
                reviewer = authenticate(store, username, password)
            except LightkeeperError:
                attempt.failed()
                return _sign_in_form(
                    request,
                    next_path=next_path,
                    username=username,
                    error="Wrong user name or password, or the account is disabled.",
                    status=401,
                )
            attempt.succeeded()
    except SignInRefused as refused:
        minutes = max(1, math.ceil(refused.wait_s / 60))
        response = _sign_in_form(
            request,
            next_path=next_path,
            username=username,
            error=f"Too many failed sign-ins. Try again in {minutes} minute(s).",
            status=429,
        )
        response.headers["Retry-After"] = str(max(1, math.ceil(refused.wait_s)))
        return response
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        end_session(store, old)  # a new token at every sign-in: no session fixation
    session_token, _ = start_session(store, reviewer)
    response = redirect(request, next_path)
    set_session_cookie(request, response, session_token)
    clear_sign_in_cookie(request, response)
    return response


@router.post("/sign-out")
def sign_out(request: Request, signed: SignedIn, csrf: str = Form("")) -> Response:
    check_csrf(signed, csrf)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        end_session(store_of(request), token)
    request.state.new_session_token = None
    response = redirect(request, f"{REVIEW_PREFIX}/sign-in?done=signed_out")
    clear_session_cookie(request, response)
    return response


@router.get("/static/{name}")
def static_file(name: str = Path(max_length=40)) -> Response:
    if name == "transparency.css":  # the transparency figures' own style sheet
        return Response(TRANSPARENCY_STYLESHEET, media_type=_CSS)
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    data = resources.files("lightkeeper.service.web").joinpath("static", name).read_bytes()
    return Response(data, media_type=media_type)


@fallback.get("/{rest:path}")
def not_found(request: Request, signed: SignedIn, rest: str) -> Response:
    raise WebError(404, "There is no such page.")
