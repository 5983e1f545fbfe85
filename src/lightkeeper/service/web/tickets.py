"""One-time tickets for clear images: a reveal's image is served once, then forgotten.

A reveal (a POST with its CSRF token) reads the clear file through
`lightkeeper.review.exposure.reveal`, which audits it, and answers with the case page whose
``<img>`` points at ``/review/clear/TICKET``. The bytes wait here, in this process's memory
only (never on disk), until that one GET takes them — or `TTL_S` passes. A ticket is 256
random bits, bound to the person who revealed, and gone after its first use: a reload, a
copied URL or another person gets nothing, and seeing the image again is another reveal.

The content sits in the memory of the worker that made the reveal. With several worker
processes the browser normally fetches the image over the same keep-alive connection, so
from the same worker; if it does not, the image answers "expired, reveal again".
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

__all__ = ["MAX_WAITING", "TTL_S", "ClearImages"]

#: Seconds a revealed image waits for its one fetch.
TTL_S = 120.0
#: Most images waiting at once in one process (the oldest are dropped first).
MAX_WAITING = 64


@dataclass(frozen=True, slots=True)
class _Waiting:
    reviewer_id: int
    data: bytes
    media_type: str
    expires: float


@dataclass
class ClearImages:
    """Revealed images waiting for their single fetch; safe to share between threads."""

    ttl_s: float = TTL_S
    _waiting: dict[str, _Waiting] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, reviewer_id: int, data: bytes, media_type: str) -> str:
        """Keep `data` for one fetch by `reviewer_id`; the ticket that fetches it."""
        ticket = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            for key in [k for k, v in self._waiting.items() if v.expires <= now]:
                del self._waiting[key]
            while len(self._waiting) >= MAX_WAITING:
                del self._waiting[next(iter(self._waiting))]
            self._waiting[ticket] = _Waiting(reviewer_id, data, media_type, now + self.ttl_s)
        return ticket

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
