"""Revealed images waiting in this process for their one fetch.

A reveal (a POST with its CSRF token) reads the clear file through
`lightkeeper.review.exposure.reveal`, which audits it and stores the SHA-256 of a fresh
ticket, and answers with the case page whose ``<img>`` points at ``/review/clear/TICKET``.
The fetch is settled in the database (`lightkeeper.review.exposure.claim_ticket`): once, by
the person who revealed, within `TICKET_TTL_S`, whichever worker serves it. A ticket is 256
random bits; a reload, a copied URL or another person gets nothing, and seeing the image
again is another reveal.

The bytes the reveal read wait here, in this process's memory only (never on disk, never in
the database), because the fetch usually comes to the same worker over the same keep-alive
connection. A fetch that another worker serves finds nothing here and reads the vault again
(logged there as a read for the same reveal).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from lightkeeper.review.exposure import TICKET_TTL_S

__all__ = ["MAX_WAITING", "TICKET_TTL_S", "ClearImages", "new_ticket"]

#: Most images waiting at once in one process (the oldest are dropped first; their fetch
#: then reads the vault).
MAX_WAITING = 64


def new_ticket() -> str:
    """A fresh ticket: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class _Waiting:
    reviewer_id: int
    data: bytes
    media_type: str
    expires: float


@dataclass
class ClearImages:
    """Revealed images waiting for their single fetch; safe to share between threads."""

    ttl_s: float = TICKET_TTL_S
    _waiting: dict[str, _Waiting] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, ticket: str, reviewer_id: int, data: bytes, media_type: str) -> None:
        """Keep `data` for one fetch of `ticket` by `reviewer_id`."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, v in self._waiting.items() if v.expires <= now]:
                del self._waiting[key]
            while len(self._waiting) >= MAX_WAITING:
                del self._waiting[next(iter(self._waiting))]
            self._waiting[ticket] = _Waiting(reviewer_id, data, media_type, now + self.ttl_s)

    def take(self, ticket: str, reviewer_id: int) -> tuple[bytes, str] | None:
        """The image and its media type, once, for the person who revealed it; else None."""
        with self._lock:
            found = self._waiting.get(ticket)
            if found is None or found.reviewer_id != reviewer_id:
                return None
            del self._waiting[ticket]
        if found.expires <= time.monotonic():
            return None
        return found.data, found.media_type
