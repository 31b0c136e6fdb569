"""A thread-safe token bucket: messages per second and requests per second for a whole send."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, bursting up to `burst`; rate 0 means unlimited.

    `acquire(n)` blocks until n tokens are available (a request larger than the burst is let
    through once the bucket is full, so a big batch is never starved) or `stop` is set.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._tokens = self.burst
        self._monotonic = monotonic
        self._sleep = sleep
        self._last = monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def reserve(self, n: float) -> float:
        """Take n tokens now and return how long to wait before using them (0 if none)."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            self._refill()
            self._tokens -= n
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate

    def acquire(self, n: float = 1.0, stop: threading.Event | None = None) -> None:
        wait = self.reserve(n)
        if wait <= 0:
            return
        if stop is not None:
            stop.wait(wait)
        else:
            self._sleep(wait)


class RateLimiter:
    """Both limits of a send: one bucket for messages, one for provider requests."""

    def __init__(self, messages_per_s: float, requests_per_s: float) -> None:
        self.messages = TokenBucket(messages_per_s, burst=max(messages_per_s, 1.0))
        self.requests = TokenBucket(requests_per_s)

    def acquire(self, messages: int, stop: threading.Event | None = None) -> None:
        self.requests.acquire(1, stop)
        self.messages.acquire(messages, stop)
