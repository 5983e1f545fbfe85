"""Who is looking: sign-in, the session cookie, roles and CSRF for the reviewer UI.

The reviewer UI has its own authentication, separate from the API's keys: a person signs in
with a user name and password (`lightkeeper.review.accounts.authenticate`: Argon2id, the
same answer whether the name is unknown, disabled or the password wrong), or — only when
``LIGHTKEEPER_REVIEW_PROXY_HEADER`` names a header — is named by a trusted reverse proxy
in that header on every request. Either way a session is started
(`lightkeeper.review.sessions`) and its token is set in a cookie:

- ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends it),
  ``Path=/review`` (the API never receives it), ``Secure`` when the request came over
  HTTPS, and no ``Max-Age`` (it dies with the browser; the server ends it after its TTL);
- the store keeps only the token's SHA-256, so a database read gives no usable session.

A session cookie grants nothing outside ``/review``: the API reads only API keys
(`lightkeeper.service.access`), and the reviewer UI never reads API keys.

Every POST form carries the session's CSRF token, compared in constant time (`check_csrf`);
the sign-in form, which has no session yet, carries a double-submit token that is also in a
short-lived cookie. Failed sign-ins are limited per user name and per client address
(`lightkeeper.service.web.signins`, used by the sign-in page in `account`).

Roles are checked on the server for every route (`signed_in`, `senior`): a reviewer decides
ordinary cases; a senior reviewer or an admin also decides escalated cases and appeals.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from lightkeeper.errors import LightkeeperError
from lightkeeper.review.accounts import Reviewer, get_reviewer
from lightkeeper.review.sessions import ReviewSession, end_session, session_of, start_session
from lightkeeper.review.settings import ReviewSettings
from lightkeeper.service.web.render import SignInNeeded, WebError
from lightkeeper.service.web.security import PREFIX
from lightkeeper.service.web.state import store_of, web_state

__all__ = [
    "SESSION_COOKIE",
    "SIGN_IN_COOKIE",
    "Senior",
    "Signed",
    "SignedIn",
    "attach_pending_cookie",
    "check_csrf",
    "check_sign_in_token",
    "clear_session_cookie",
    "clear_sign_in_cookie",
    "new_sign_in_token",
    "safe_next",
    "senior",
    "set_session_cookie",
    "set_sign_in_cookie",
    "signed_in",
]

SESSION_COOKIE = "lk_review_session"
#: The sign-in form's double-submit CSRF cookie.
SIGN_IN_COOKIE = "lk_review_signin"


@dataclass(frozen=True, slots=True)
class Signed:
    """The person behind a request, and their session's CSRF token."""

    reviewer: Reviewer
    csrf_token: str


# ---------------------------------------------------------------------- cookies


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path=PREFIX,
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=_secure(request)
    )


def new_sign_in_token() -> str:
    """A fresh double-submit token for the sign-in form (see `set_sign_in_cookie`)."""
    return secrets.token_urlsafe(32)


def set_sign_in_cookie(request: Request, response: Response, token: str) -> None:
    """Put the sign-in form's token in its cookie too (double submit)."""
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path=PREFIX,
    )


def clear_sign_in_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SIGN_IN_COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=_secure(request)
    )


def attach_pending_cookie(request: Request, response: Response) -> None:
    """Set the cookie of a session started during this request (proxy sign-in), if any."""
    token: str | None = getattr(request.state, "new_session_token", None)
    if token is not None:
        set_session_cookie(request, response, token)


# ---------------------------------------------------------------------- who is signed in


def _settings(request: Request) -> ReviewSettings:
    return web_state(request).review_settings()


def _from_proxy(request: Request, header: str, current: ReviewSession | None) -> Signed | None:
    """The person the trusted proxy names, with a session started for them if needed."""
    username = (request.headers.get(header) or "").strip()
    if not username:
        return None
    if current is not None and current.reviewer.username == username:
        return Signed(current.reviewer, current.csrf_token)
    store = store_of(request)
    try:
        reviewer = get_reviewer(store, username)
    except LightkeeperError:
        raise WebError(403, f"There is no reviewer account for {username!r}.") from None
    if reviewer.disabled:
        raise WebError(403, "This reviewer account is disabled.")
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        end_session(store, old)
    token, session = start_session(store, reviewer)
    request.state.new_session_token = token
    return Signed(session.reviewer, session.csrf_token)


def signed_in(request: Request) -> Signed:
    """The signed-in person (a route dependency); `SignInNeeded` without a valid session."""
    store = store_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    current = session_of(store, token) if token else None
    header = _settings(request).proxy_user_header
    signed: Signed | None = None
    if header:
        signed = _from_proxy(request, header, current)
    if signed is None and current is not None:
        signed = Signed(current.reviewer, current.csrf_token)
    if signed is None:
        raise SignInNeeded()
    request.state.signed = signed
    return signed


def senior(request: Request) -> Signed:
    """The signed-in person, who must be a senior reviewer or an admin (else 403)."""
    signed = signed_in(request)
    if not signed.reviewer.is_senior:
        raise WebError(403, "Only senior reviewers and admins may do this.")
    return signed


#: Route parameter types: the signed-in person; a senior reviewer or admin.
SignedIn = Annotated[Signed, Depends(signed_in)]
Senior = Annotated[Signed, Depends(senior)]


def check_csrf(signed: Signed, presented: str) -> None:
    """403 unless the form carried the session's CSRF token."""
    if not presented or not hmac.compare_digest(
        presented.encode("utf-8"), signed.csrf_token.encode("utf-8")
    ):
        raise WebError(
            403,
            "This form has expired or did not come from this site (CSRF check failed). "
            "Reload the page and try again.",
        )


def check_sign_in_token(request: Request, presented: str) -> None:
    """403 unless the sign-in form's token matches its cookie."""
    expected = request.cookies.get(SIGN_IN_COOKIE) or ""
    if (
        not presented
        or not expected
        or not hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))
    ):
        raise WebError(
            403,
            "The sign-in form has expired (CSRF check failed). Reload it and try again.",
            back="/review/sign-in",
        )


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a reviewer UI path only, never another site."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and "//" not in value
        and "\\" not in value
        and value.isprintable()
        and not value.startswith(PREFIX + "/sign-")
    ):
        return value
    return PREFIX + "/queue"
