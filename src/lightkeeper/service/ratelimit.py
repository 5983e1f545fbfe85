"""Per-key rate limits: a token bucket per API key, in each service process.

A lookup endpoint is an oracle: someone holding a key can edit an image until it stops
matching. Limiting each key's rate bounds how fast that search goes (and how hard one client
can load the service). Each process keeps its own buckets, so with N worker processes each
enforces 1/N of the key's rate (the service divides it): the key's total stays as configured
whichever worker the load balancer picks, with no shared state on the request path.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets: `rate` tokens per second, holding at most `burst`."""

    def __init__(self) -> None:
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key_id: int, rate: float, burst: float, cost: float = 1.0) -> float:
        """Spend `cost` tokens; returns 0.0 when allowed, else seconds until it would be."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(burst, now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if cost > burst:  # could never be paid at once: allowed only from a full bucket
                cost = burst
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / rate


def retry_after_header(wait: float) -> str:
    """Retry-After takes whole seconds; never 0, which would invite an immediate retry."""
    return str(max(1, math.ceil(wait)))
