"""Signed-in reviewer sessions: a random token in a cookie, its SHA-256 in the database.

`start_session` makes a token of 256 random bits (`secrets.token_urlsafe(32)`) and a CSRF
token that the session's forms must carry back. Only the token's SHA-256 is stored: whoever
reads the database (a backup, a replica) cannot sign in with what they find there, and a fast
hash is enough because the token is random and long (nothing to guess from a dictionary).

`session_of` answers None, never an error, for a token that is unknown, expired, revoked,
or whose reviewer was disabled since: the web layer then shows the sign-in page. It records
when a session was last used, at most once a minute (not one database write per page).
Sessions end at a fixed time (`ttl` after sign-in, 8 hours by default: one working day),
when the person signs out (`end_session`), or when their password changes or their account
is disabled (`lightkeeper.review.accounts`). Sign-in and sign-out are audit events
(``review.sign_in``, ``review.sign_out``).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, delete, insert, select, update

from lightkeeper.banks import _engine
from lightkeeper.banks.audit import acting_as, record
from lightkeeper.banks.models import ReviewerRow, ReviewSessionRow
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import Forbidden, InvalidRequest, StoreBusy, Unauthenticated
from lightkeeper.review.accounts import Reviewer, load_in, to_reviewer

__all__ = [
    "DEFAULT_TTL",
    "MAX_TTL",
    "ReviewSession",
    "end_session",
    "session_of",
    "start_session",
    "token_digest",
]

SESSIONS = cast(Table, ReviewSessionRow.__table__)
REVIEWERS = cast(Table, ReviewerRow.__table__)

DEFAULT_TTL = timedelta(hours=8)
#: Longest session allowed: a reviewer signs in at least once a week.
MAX_TTL = timedelta(days=7)
#: `last_seen_at` is written at most this often per session.
SEEN_RESOLUTION = timedelta(minutes=1)
#: Expired sessions are deleted this long after their end (kept a while for inquiries).
KEEP_EXPIRED = timedelta(days=30)
#: A token longer than this is not one of ours (and is not hashed).
_MAX_TOKEN_CHARS = 200


@dataclass(frozen=True, slots=True)
class ReviewSession:
    """A live session: who, the CSRF token its forms must carry, when it ends."""

    reviewer: Reviewer
    csrf_token: str
    expires_at: datetime


def token_digest(token: str) -> str:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def start_session(
    store: BankStore, reviewer: Reviewer, *, ttl: timedelta = DEFAULT_TTL
) -> tuple[str, ReviewSession]:
    """A new session for `reviewer`: (token for the cookie, session). `Forbidden` when the
    account is disabled (checked in the database, not in `reviewer`); `Unauthenticated` when
    its password changed since `reviewer` was read."""
    if not timedelta(0) < ttl <= MAX_TTL:
        raise InvalidRequest(f"a session lasts more than 0 s and at most {MAX_TTL}")
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = _now()
    expires = now + ttl

    def work(conn: Connection) -> ReviewSession:
        current = load_in(conn, reviewer.id, lock=True)
        if current.disabled:
            raise Forbidden(f"reviewer account {current.username!r} is disabled")
        if current.credential != reviewer.credential:
            # The password changed (ending every session) after `reviewer` was read: a
            # session started now would outlive that change.
            raise Unauthenticated("the password changed during this sign-in; sign in again")
        conn.execute(
            insert(SESSIONS),
            {
                "id": token_digest(token),
                "reviewer_id": current.id,
                "csrf_token": csrf,
                "created_at": now,
                "last_seen_at": now,
                "expires_at": expires,
                "revoked_at": None,
            },
        )
        conn.execute(delete(SESSIONS).where(SESSIONS.c.expires_at < now - KEEP_EXPIRED))
        with acting_as(current.actor):
            record(conn, "review.sign_in", f"reviewer:{current.username}", {}, at=now)
        return ReviewSession(current, csrf, expires)

    return token, _engine.write(store.engine, work)


def session_of(store: BankStore, token: str) -> ReviewSession | None:
    """The live session of `token`, or None (unknown, expired, revoked, reviewer disabled)."""
    if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_CHARS:
        return None
    digest = token_digest(token)
    query = (
        select(
            SESSIONS.c.csrf_token,
            SESSIONS.c.last_seen_at,
            SESSIONS.c.expires_at,
            SESSIONS.c.revoked_at,
            *REVIEWERS.c,
        )
        .join(REVIEWERS, REVIEWERS.c.id == SESSIONS.c.reviewer_id)
        .where(SESSIONS.c.id == digest)
    )
    row = _engine.read(store.engine, lambda conn: conn.execute(query).first())
    now = _now()
    if row is None or row.revoked_at is not None or row.expires_at <= now or row.disabled:
        return None
    reviewer = to_reviewer(row)
    if now - row.last_seen_at >= SEEN_RESOLUTION:
        statement = update(SESSIONS).where(SESSIONS.c.id == digest).values(last_seen_at=now)
        # A bookkeeping touch: a store too busy to take it does not fail the page.
        with contextlib.suppress(StoreBusy):
            _engine.write(store.engine, lambda conn: conn.execute(statement))
    return ReviewSession(reviewer, row.csrf_token, row.expires_at)


def end_session(store: BankStore, token: str) -> None:
    """Sign out: the token stops working at once. An unknown or ended token is ignored."""
    if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_CHARS:
        return
    digest = token_digest(token)
    now = _now()

    def work(conn: Connection) -> None:
        row = conn.execute(
            select(SESSIONS.c.reviewer_id).where(
                SESSIONS.c.id == digest, SESSIONS.c.revoked_at.is_(None)
            )
        ).first()
        if row is None:
            return
        conn.execute(update(SESSIONS).where(SESSIONS.c.id == digest).values(revoked_at=now))
        reviewer = load_in(conn, int(row.reviewer_id))
        with acting_as(reviewer.actor):
            record(conn, "review.sign_out", f"reviewer:{reviewer.username}", {}, at=now)

    _engine.write(store.engine, work)
