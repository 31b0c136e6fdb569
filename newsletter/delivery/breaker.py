"""The circuit breaker: too many failed batches pause a send instead of burning the list."""

from __future__ import annotations

import threading
from collections import deque


class CircuitBreaker:
    """Trips after `consecutive` failed batches in a row, or when more than `ratio` of the
    last `window` batches failed (once at least `window` batches were seen). Thread-safe.

    It counts batches, not attempts: a batch that fails, is retried and fails again counts
    once (`key` is the batch id), so five batches retried twice each are five failures.
    """

    def __init__(self, consecutive: int, window: int, ratio: float) -> None:
        self.consecutive = consecutive
        self.window = window
        self.ratio = ratio
        self._run = 0
        self._recent: deque[bool] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._counted: deque[int] = deque(maxlen=max(window, consecutive) * 4)
        self.reason: str | None = None

    def record(self, ok: bool, key: int | None = None) -> bool:
        """Record one batch outcome; True when the breaker is (now) open."""
        with self._lock:
            if not ok and key is not None:
                if key in self._counted:
                    return self.reason is not None  # this batch's failure is counted already
                self._counted.append(key)
            self._recent.append(ok)
            self._run = 0 if ok else self._run + 1
            if self.reason is None:
                failures = self._recent.count(False)
                if self._run >= self.consecutive:
                    self.reason = f"{self._run} batches failed in a row"
                elif len(self._recent) >= self.window and failures / self.window > self.ratio:
                    self.reason = f"{failures} of the last {self.window} batches failed"
            return self.reason is not None

    @property
    def open(self) -> bool:
        return self.reason is not None
