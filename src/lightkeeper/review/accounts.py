"""Reviewer accounts: who may look at cases and decide them, and how they prove it.

A reviewer has a user name (`USERNAME_PATTERN`: lowercase, safe in a URL, a log line and an
audit actor), a display name, a role and an optional cap of their own on clear-image reveals
per day. Roles:

- ``reviewer``: works the queue (confirm, false positive, escalate; approve a colleague's
  confirmation under the two-person rule);
- ``senior``: also decides escalated cases and appeals;
- ``admin``: everything a senior may do (accounts are managed with the CLI, by whoever can
  reach the database).

Passwords are hashed with Argon2id (argon2-cffi's `PasswordHasher` defaults, the parameters
RFC 9106 recommends for memory-constrained hosts); a stored hash made with older parameters is
replaced on the next successful sign-in. A password is 12 to 1024 characters. An account
made without one signs in only through the trusted reverse-proxy header (see
`lightkeeper.review.settings`).

`authenticate` gives the same error, after the same work, whether the user is unknown,
disabled, without a password, or the password wrong: an unknown user still costs one Argon2
verification (against a dummy hash), so the answer's timing does not tell which user names
exist.

Every change to an account is an audit event (``reviewer.create``, ``reviewer.password``,
``reviewer.disable``, ``reviewer.enable``; never the password or its hash) in the same
transaction. Changing a password or disabling an account ends the person's sessions.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, Row, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from lightkeeper.banks import _engine
from lightkeeper.banks.audit import current_actor, record
from lightkeeper.banks.models import ReviewerRow, ReviewSessionRow
from lightkeeper.banks.store import BankStore
from lightkeeper.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthenticated
from lightkeeper.review.settings import validate_reveal_cap

__all__ = [
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "REVIEWERS",
    "ROLES",
    "USERNAME_PATTERN",
    "Reviewer",
    "Role",
    "active_in",
    "authenticate",
    "create_reviewer",
    "get_reviewer",
    "list_reviewers",
    "set_disabled",
    "set_password",
    "validate_password",
    "validate_username",
]

REVIEWERS = cast(Table, ReviewerRow.__table__)
SESSIONS = cast(Table, ReviewSessionRow.__table__)

Role = Literal["reviewer", "senior", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

#: A user name: 1 to 100 lowercase letters, digits, ".", "_" and "-", starting with a letter
#: or digit (so that it never reads as a command-line option).
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
_USERNAME = re.compile(USERNAME_PATTERN)
MIN_PASSWORD_CHARS = 12
#: Longer passwords are refused before hashing: a megabyte "password" is a denial of service.
MAX_PASSWORD_CHARS = 1024
MAX_DISPLAY_NAME_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Same text for every failed sign-in: it must not say which part was wrong.
SIGN_IN_FAILED = "unknown user name or wrong password"

_HASHER = PasswordHasher()
_dummy_lock = threading.Lock()
_dummy_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Reviewer:
    """A person who reviews cases."""

    id: int
    username: str
    display_name: str
    role: Role
    disabled: bool
    #: Reveals allowed per UTC day for this person; None: the service's setting.
    daily_reveal_cap: int | None
    #: A digest of the stored password hash when this value was read (never the hash):
    #: `start_session` refuses a value whose password has changed since, so a sign-in that
    #: races a password change cannot outlive it.
    credential: str = field(default="", repr=False, compare=False)

    @property
    def is_senior(self) -> bool:
        """Senior reviewers and admins decide escalated cases and appeals."""
        return self.role in ("senior", "admin")

    @property
    def actor(self) -> str:
        """How the audit trail names this person."""
        return f"reviewer:{self.username}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "disabled": self.disabled,
            "daily_reveal_cap": self.daily_reveal_cap,
        }


def validate_username(username: str) -> str:
    """`username` if it fits `USERNAME_PATTERN`, else `InvalidRequest` saying what fits."""
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise InvalidRequest(
            f"invalid user name {username!r}: use 1-100 lowercase letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return username


def validate_password(password: str) -> str:
    if not isinstance(password, str) or not (
        MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS
    ):
        raise InvalidRequest(
            f"a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long"
        )
    if "\x00" in password:
        raise InvalidRequest("a password cannot contain a NUL character")
    return password


def _validate_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}; known: {', '.join(ROLES)}")


def _display_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_DISPLAY_NAME_CHARS or _CONTROL.search(name):
        raise InvalidRequest(
            f"a display name is 1 to {MAX_DISPLAY_NAME_CHARS} characters, without control "
            "characters"
        )
    return name


def to_reviewer(row: Row[Any]) -> Reviewer:
    return Reviewer(
        id=int(row.id),
        username=row.username,
        display_name=row.display_name,
        role=cast(Role, row.role),
        disabled=bool(row.disabled),
        daily_reveal_cap=row.daily_reveal_cap,
        credential=credential_of(row.password_hash),
    )


def credential_of(password_hash: str | None) -> str:
    """What `Reviewer.credential` holds for a stored password hash."""
    if not password_hash:
        return ""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def create_reviewer(
    store: BankStore,
    username: str,
    *,
    role: Role = "reviewer",
    display_name: str | None = None,
    password: str | None = None,
    daily_reveal_cap: int | None = None,
) -> Reviewer:
    """A new account; `Conflict` if the user name is taken. Without a password it signs in
    only through the trusted proxy header."""
    validate_username(username)
    _validate_role(role)
    shown = _display_name(username if display_name is None else display_name)
    if daily_reveal_cap is not None:
        validate_reveal_cap(daily_reveal_cap)
    hashed = None if password is None else _HASHER.hash(validate_password(password))
    now = _now()

    def work(conn: Connection) -> Reviewer:
        taken = conn.execute(select(REVIEWERS.c.id).where(REVIEWERS.c.username == username))
        if taken.first() is not None:
            raise Conflict(f"reviewer {username!r} already exists")
        row = conn.execute(
            insert(REVIEWERS).returning(*REVIEWERS.c),
            {
                "username": username,
                "display_name": shown,
                "role": role,
                "password_hash": hashed,
                "disabled": False,
                "daily_reveal_cap": daily_reveal_cap,
                "created_at": now,
                "created_by": current_actor(),
            },
        ).one()
        record(
            conn,
            "reviewer.create",
            f"reviewer:{username}",
            {"role": role, "password": hashed is not None, "daily_reveal_cap": daily_reveal_cap},
            at=now,
        )
        return to_reviewer(row)

    try:
        return _engine.write(store.engine, work)
    except IntegrityError as exc:  # a concurrent creator won the race on the unique name
        raise Conflict(f"reviewer {username!r} already exists") from exc


def set_password(store: BankStore, username: str, password: str) -> None:
    """Give the account a new password (ending its sessions); `NotFound` for no account."""
    validate_username(username)
    hashed = _HASHER.hash(validate_password(password))
    now = _now()

    def work(conn: Connection) -> None:
        reviewer = _locked(conn, username)
        conn.execute(
            update(REVIEWERS).where(REVIEWERS.c.id == reviewer.id).values(password_hash=hashed)
        )
        ended = end_sessions_in(conn, reviewer.id, now)
        record(conn, "reviewer.password", f"reviewer:{username}", {"sessions_ended": ended}, at=now)

    _engine.write(store.engine, work)


def authenticate(store: BankStore, username: str, password: str) -> Reviewer:
    """The reviewer whose user name and password these are; `Unauthenticated` otherwise,
    with the same message (and about the same time) whatever was wrong."""
    row = None
    if isinstance(username, str) and _USERNAME.fullmatch(username):
        query = select(REVIEWERS).where(REVIEWERS.c.username == username)
        row = _engine.read(store.engine, lambda conn: conn.execute(query).first())
    candidate = password if isinstance(password, str) else ""
    too_long = len(candidate) > MAX_PASSWORD_CHARS
    if too_long:  # no password is that long: verify the dummy (same time), then refuse
        candidate = candidate[:MAX_PASSWORD_CHARS]
    stored = None if row is None or too_long else row.password_hash
    if not _verify(stored or _dummy(), candidate) or stored is None or row is None:
        raise Unauthenticated(SIGN_IN_FAILED)
    if row.disabled:
        raise Unauthenticated(SIGN_IN_FAILED)
    reviewer = to_reviewer(row)
    if _HASHER.check_needs_rehash(stored):
        fresh = _rehash(store, int(row.id), stored, candidate)
        if fresh is not None:
            reviewer = replace(reviewer, credential=credential_of(fresh))
    return reviewer


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _dummy() -> str:
    """A hash of a random password nobody knows, made once: what unknown users verify against."""
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = _HASHER.hash(secrets.token_urlsafe(32))
        return _dummy_hash


def _rehash(store: BankStore, reviewer_id: int, old: str, password: str) -> str | None:
    """Store the password hashed with today's parameters, unless it changed meanwhile: the
    new hash, or None when it had changed."""
    fresh = _HASHER.hash(password)

    def work(conn: Connection) -> bool:
        changed = conn.execute(
            update(REVIEWERS)
            .where(REVIEWERS.c.id == reviewer_id, REVIEWERS.c.password_hash == old)
            .values(password_hash=fresh)
        ).rowcount
        return bool(changed)

    return fresh if _engine.write(store.engine, work) else None


def get_reviewer(store: BankStore, key: int | str) -> Reviewer:
    """The reviewer with this id (an int) or user name (a str); `NotFound` if none."""
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise InvalidRequest("a reviewer is named by id or user name")
    column = REVIEWERS.c.id if isinstance(key, int) else REVIEWERS.c.username
    query = select(REVIEWERS).where(column == key)
    row = _engine.read(store.engine, lambda conn: conn.execute(query).first())
    if row is None:
        raise NotFound(f"no reviewer {key!r}")
    return to_reviewer(row)


def list_reviewers(store: BankStore) -> list[Reviewer]:
    """Every account, by user name."""
    query = select(REVIEWERS).order_by(REVIEWERS.c.username)
    return [to_reviewer(r) for r in _engine.read(store.engine, lambda c: c.execute(query).all())]


def set_disabled(store: BankStore, username: str, disabled: bool) -> Reviewer:
    """Disable an account (ending its sessions: it can do nothing more) or enable it again."""
    validate_username(username)
    now = _now()

    def work(conn: Connection) -> Reviewer:
        reviewer = _locked(conn, username)
        if reviewer.disabled == disabled:
            return reviewer
        conn.execute(
            update(REVIEWERS).where(REVIEWERS.c.id == reviewer.id).values(disabled=disabled)
        )
        details: dict[str, Any] = {}
        if disabled:
            details["sessions_ended"] = end_sessions_in(conn, reviewer.id, now)
        action = "reviewer.disable" if disabled else "reviewer.enable"
        record(conn, action, f"reviewer:{username}", details, at=now)
        return _locked(conn, username)

    return _engine.write(store.engine, work)


def load_in(conn: Connection, reviewer_id: int, *, lock: bool = False) -> Reviewer:
    """The reviewer with this id as the database holds it now (inside a caller's
    transaction): decisions check the role and the disabled flag there, not in a `Reviewer`
    value that may be hours old."""
    query = select(REVIEWERS).where(REVIEWERS.c.id == reviewer_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"no reviewer with id {reviewer_id}")
    return to_reviewer(row)


def active_in(conn: Connection, reviewer: Reviewer) -> Reviewer:
    """The person acting, as the database holds them now (inside a caller's transaction);
    `Forbidden` when the account was disabled or removed since `reviewer` was read."""
    try:
        person = load_in(conn, reviewer.id)
    except NotFound:
        raise Forbidden(f"reviewer {reviewer.username!r} no longer exists") from None
    if person.disabled:
        raise Forbidden(f"reviewer account {person.username!r} is disabled")
    return person


def _locked(conn: Connection, username: str) -> Reviewer:
    query = select(REVIEWERS).where(REVIEWERS.c.username == username).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no reviewer {username!r}")
    return to_reviewer(row)


def end_sessions_in(conn: Connection, reviewer_id: int, now: datetime) -> int:
    """Revoke every live session of a reviewer; how many."""
    return int(
        conn.execute(
            update(SESSIONS)
            .where(SESSIONS.c.reviewer_id == reviewer_id, SESSIONS.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
    )
