"""Failed sign-ins, limited per user name and per client address.

Password guessing against the reviewer UI is slowed twice over: Argon2id makes each guess
cost the server (and so the guesser) real time, and this limiter refuses further attempts
for a name, or from an address, once `FAILURES_PER_USER` or `FAILURES_PER_ADDRESS` failures
fall within `FAILURE_WINDOW_S`, before any password is checked. A successful sign-in clears
its name's count (a person who mistyped twice is not locked out later in the day).

Counts live in the process's memory: each worker of ``lightkeeper serve --workers N``
counts its own, so the effective limit is up to N times higher; a restart forgets them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

__all__ = [
    "FAILURES_PER_ADDRESS",
    "FAILURES_PER_USER",
    "FAILURE_WINDOW_S",
    "MAX_TRACKED",
    "SignInLimiter",
]

#: Failed sign-ins allowed within `FAILURE_WINDOW_S`, per user name and per client address.
FAILURES_PER_USER = 5
FAILURES_PER_ADDRESS = 20
FAILURE_WINDOW_S = 15 * 60.0
#: Most user names and addresses remembered at once (the oldest are forgotten first).
MAX_TRACKED = 10_000


@dataclass
class SignInLimiter:
    """Failed sign-ins per key (``user:NAME``, ``addr:IP``) in a sliding window."""

    per_user: int = FAILURES_PER_USER
    per_address: int = FAILURES_PER_ADDRESS
    window_s: float = FAILURE_WINDOW_S
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"user:{username.strip().lower()}", f"addr:{address}"

    def _recent(self, key: str, now: float) -> deque[float]:
        found = self._failures.get(key)
        if found is None:
            return deque()
        while found and found[0] <= now - self.window_s:
            found.popleft()
        return found

    def wait(self, username: str, address: str) -> float:
        """Seconds until another attempt is allowed for this name and address; 0: now."""
        now = time.monotonic()
        user, addr = self._keys(username, address)
        with self._lock:
            waits = [0.0]
            for key, limit in ((user, self.per_user), (addr, self.per_address)):
                recent = self._recent(key, now)
                if len(recent) >= limit:
                    waits.append(recent[len(recent) - limit] + self.window_s - now)
            return max(waits)

    def failed(self, username: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in self._keys(username, address):
                recent = self._recent(key, now)
                recent.append(now)
                self._failures[key] = recent
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_TRACKED:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(self._keys(username, "")[0], None)
