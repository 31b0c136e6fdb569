"""The sender threads' gate to the provider: `AdaptiveConcurrency` behind a lock and a clock.

A thread passes the gate before it claims a batch (so no claim waits here) and reports how the
request was answered when it leaves. The decisions are the pure `concurrency` module's; this
only waits, locks and reads the monotonic clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from newsletter.delivery.concurrency import AdaptiveConcurrency, AdaptiveSettings

_MAX_WAIT_S = 0.25  # re-check the stop event at least this often


class Gate:
    """At most the controller's window of requests in flight, started at its pace."""

    def __init__(
        self,
        settings: AdaptiveSettings | None,
        *,
        cap: int = 1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`settings` None: a fixed concurrency of `cap`, and the gate never waits."""
        self.controller = AdaptiveConcurrency(settings) if settings is not None else None
        self._cap = cap
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._in_flight = 0

    @property
    def limit(self) -> int:
        """Requests that may be in flight now (the cap when the concurrency is fixed)."""
        return self._cap if self.controller is None else self.controller.limit

    def enter(self, stop: threading.Event) -> float | None:
        """Wait for a slot; its start time (None when `stop` was set while waiting). Without
        a controller (fixed concurrency), the start time at once."""
        if self.controller is None:
            return self._monotonic()
        with self._cond:
            while not stop.is_set():
                now = self._monotonic()
                wait = self.controller.wait(now, self._in_flight)
                if wait == 0:
                    self.controller.started(now)
                    self._in_flight += 1
                    return now
                self._cond.wait(_MAX_WAIT_S if wait is None else min(wait, _MAX_WAIT_S))
        return None

    def leave(
        self,
        started: float,
        outcome: str | None,
        retry_after: float | None = None,
    ) -> None:
        """The slot is free; `outcome` is "ok", "429", "error", or None (nothing was sent)."""
        if self.controller is None:
            return
        with self._cond:
            now = self._monotonic()
            latency = now - started
            if outcome == "ok":
                self.controller.succeeded(now, latency)
            elif outcome == "429":
                self.controller.rate_limited_answer(now, latency, retry_after)
            elif outcome == "error":
                self.controller.failed(now, latency)
            self._in_flight -= 1
            self._cond.notify_all()
