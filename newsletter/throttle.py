"""A token bucket per key (client address, account, API token), in this process.

Used by the sign-up form, the desk's sign-in and the HTTP API. Only as wide as one process:
with several uvicorn workers each holds its own buckets. The table is bounded: the least
recently seen keys are forgotten first, so a flood of new keys cannot grow it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class KeyedTokenBucket:
    """`capacity` requests per key, refilled at `per_s` a second."""

    def __init__(
        self,
        capacity: float = 5,
        per_s: float = 5 / 60,
        *,
        max_keys: int = 10_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(capacity)
        self.per_s = per_s
        self._max_keys = max_keys
        self._now = now
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> tuple[bool, int, int]:
        """(allowed, requests left, seconds until the bucket is full again)."""
        with self._lock:
            now = self._now()
            tokens, last = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.per_s)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        refill = math.ceil((self.capacity - tokens) / self.per_s) if self.per_s > 0 else 0
        return allowed, int(tokens), refill

    def allow(self, key: str) -> bool:
        return self.take(key)[0]
