"""API keys: random secrets with scopes, shown once, stored as a SHA-256 digest.

A key looks like ``lk_`` + 43 URL-safe characters (256 random bits). The store keeps only
its SHA-256 hex digest and its first 10 characters (to recognise it in `lightkeeper keys
list`); the key itself is printed once, when created, and cannot be recovered. A fast hash is
enough because the secret is random and long: there is no dictionary to try, and checking a
request costs microseconds instead of an Argon2 call's tens of milliseconds.

Scopes (`SCOPES`) say what a key may do. ``admin`` implies every other scope. Matching scopes
(``hash``, ``match``, ``lookup``) never reveal a bank's hash values; only ``bank:read`` does.
``appeal`` lets a platform's backend file its users' appeals against cases and follow them.

`KeyRing` is the service's view: every key, cached in memory and reloaded at most once a
second (or at once when an unknown key arrives, at most a few times a second), so that a key
created or revoked by the CLI or another process takes effect within about a second, with no
database query per request. An unknown key between those reloads is looked up on its own (at
most `KeyRing.MISS_QUERIES_PER_S` a second), so a key works the moment it is created.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Connection, Table, insert, select, update

from lightkeeper.banks import BankStore
from lightkeeper.banks.audit import record
from lightkeeper.banks.models import ApiKeyRow
from lightkeeper.errors import InvalidRequest, NotFound

KEYS = cast(Table, ApiKeyRow.__table__)

#: Every scope, in the order the documentation lists them.
SCOPES = ("hash", "match", "lookup", "bank:read", "bank:write", "appeal", "admin")
KEY_PREFIX = "lk_"
_SHOWN_CHARS = 10


def digest(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scopes: frozenset[str]
    rate_limit: float | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def actor(self) -> str:
        """How the audit trail names this key."""
        return f"key:{self.id} ({self.name})"

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": sorted(self.scopes, key=SCOPES.index),
            "rate_limit": self.rate_limit,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


def validate_scopes(scopes: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(s.strip() for s in scopes if s.strip())
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise InvalidRequest(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not wanted:
        raise InvalidRequest(f"a key needs at least one scope: {', '.join(SCOPES)}")
    return wanted


def _row_key(row: object) -> ApiKey:
    r = cast(ApiKeyRow, row)
    return ApiKey(
        id=r.id,
        name=r.name,
        prefix=r.prefix,
        scopes=frozenset(r.scopes.split()),
        rate_limit=r.rate_limit,
        created_at=r.created_at,
        created_by=r.created_by,
        revoked_at=r.revoked_at,
    )


def create_key(
    store: BankStore, name: str, scopes: Iterable[str], *, rate_limit: float | None = None
) -> tuple[ApiKey, str]:
    """A new key; returns its record and the secret (the only time the secret exists)."""
    from lightkeeper.banks.audit import current_actor

    wanted = validate_scopes(scopes)
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("a key needs a name of 1 to 200 characters")
    if rate_limit is not None and not (0 < rate_limit <= 1e6):
        raise InvalidRequest("rate limit must be between 0 and 1,000,000 requests per second")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)

    def work(conn: Connection) -> int:
        key_id = int(
            conn.execute(
                insert(KEYS).returning(KEYS.c.id),
                {
                    "name": name,
                    "prefix": secret[:_SHOWN_CHARS],
                    "key_hash": digest(secret),
                    "scopes": " ".join(sorted(wanted, key=SCOPES.index)),
                    "rate_limit": rate_limit,
                    "created_at": now,
                    "created_by": current_actor(),
                    "revoked_at": None,
                },
            ).scalar_one()
        )
        record(
            conn,
            "key.create",
            f"key:{key_id}",
            {"name": name, "scopes": sorted(wanted), "rate_limit": rate_limit},
            at=now,
        )
        return key_id

    key_id = store._write(work)
    return get_key(store, key_id), secret


def get_key(store: BankStore, key_id: int) -> ApiKey:
    row = store._read(lambda conn: conn.execute(select(KEYS).where(KEYS.c.id == key_id)).first())
    if row is None:
        raise NotFound(f"no API key with id {key_id}")
    return _row_key(row)


def list_keys(store: BankStore) -> list[ApiKey]:
    rows = store._read(lambda conn: conn.execute(select(KEYS).order_by(KEYS.c.id)).all())
    return [_row_key(row) for row in rows]


def revoke_key(store: BankStore, key_id: int) -> ApiKey:
    """Revoke a key (for good); revoking twice is harmless."""
    now = datetime.now(UTC)

    def work(conn: Connection) -> None:
        row = conn.execute(select(KEYS.c.revoked_at).where(KEYS.c.id == key_id)).first()
        if row is None:
            raise NotFound(f"no API key with id {key_id}")
        if row.revoked_at is None:
            conn.execute(update(KEYS).where(KEYS.c.id == key_id).values(revoked_at=now))
            record(conn, "key.revoke", f"key:{key_id}", {}, at=now)

    store._write(work)
    return get_key(store, key_id)


class KeyRing:
    """The active keys by digest, cached; see the module docstring."""

    #: Seconds a loaded key list is trusted.
    MAX_AGE = 1.0
    #: Least seconds between reloads triggered by unknown keys (a flood of wrong keys must
    #: not become a flood of queries).
    MISS_RELOAD_GAP = 0.2
    #: Most single-key queries a second for unknown keys arriving within that gap, so that a
    #: key used the moment it is created is not refused; past it they wait for a reload.
    MISS_QUERIES_PER_S = 10

    def __init__(self, store: BankStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._by_digest: dict[str, ApiKey] = {}
        self._loaded_at = float("-inf")
        self._miss_lock = threading.Lock()
        self._miss_window = float("-inf")
        self._misses = 0
        self._reload()

    def _reload(self) -> None:
        rows = self._store._read(lambda conn: conn.execute(select(KEYS)).all())
        self._by_digest = {row.key_hash: _row_key(row) for row in rows}
        self._loaded_at = time.monotonic()

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None."""
        wanted = digest(secret)
        key = self._by_digest.get(wanted)
        age = time.monotonic() - self._loaded_at
        stale = age > self.MAX_AGE or (key is None and age > self.MISS_RELOAD_GAP)
        # One thread reloads; the others answer from the cache meanwhile.
        if stale and self._lock.acquire(blocking=False):
            try:
                self._reload()
            finally:
                self._lock.release()
            key = self._by_digest.get(wanted)
        elif key is None and self._may_query_miss():
            key = self._load_one(wanted)
        if key is None or not key.active:
            return None
        return key

    def _may_query_miss(self) -> bool:
        now = time.monotonic()
        with self._miss_lock:
            if now - self._miss_window >= 1.0:
                self._miss_window, self._misses = now, 0
            if self._misses >= self.MISS_QUERIES_PER_S:
                return False
            self._misses += 1
            return True

    def _load_one(self, wanted: str) -> ApiKey | None:
        row = self._store._read(
            lambda conn: conn.execute(select(KEYS).where(KEYS.c.key_hash == wanted)).first()
        )
        if row is None:
            return None
        key = _row_key(row)
        # A new dict, not a change to the one other threads may be reading.
        self._by_digest = {**self._by_digest, wanted: key}
        return key
