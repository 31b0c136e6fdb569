"""How many provider requests may be in flight, and how fast they may start. Pure.

The provider's limit is found by the send itself instead of being configured: the sender tells
`AdaptiveConcurrency` when a request starts and how it was answered (its latency, whether it was
a 429 and the `Retry-After`), and asks it when the next request may start. Times are plain
seconds from any monotonic clock, passed in; nothing here sleeps, reads a clock or locks (the
sender's gate does that), so the decisions are tested without a server.

The rule:

- **Start** (no 429 seen yet): one request in flight, one more for every answer that came back
  fast (the window doubles every round trip, TCP's slow start), up to `cap`
  (`--concurrency`). Without a rate limit this ends at the cap, as a fixed concurrency would.
- **Latency**: an answer slower than `latency_tolerance` times the fastest one seen means
  requests are queueing somewhere (the provider, or this process's own CPU): the window stops
  growing while that lasts.
- **A 429**: the provider's limit is below what was just offered. The send switches to pacing:
  requests start at most `rate` per second, `rate` = `backoff` times the lower of the rate being
  offered and the rate actually answered with success over the last second. New requests wait
  for the `Retry-After`. The answers of requests already in flight when it arrives belong to
  the same episode: at most one cut per round trip.
- **Paced**: every success raises the rate a little, quickly while far below the last rate that
  drew a 429 (the ceiling), slowly near it, a little faster above it (the limit may have been
  raised), so 429s are rare and the rate stays close under the limit. The window is then what
  that rate needs at the measured latency (twice, plus one), never above the cap.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

_MEASURE_MIN_S = 0.05  # the shortest round trip assumed when weighing recent answers
_NEAR = 0.95  # the quick approach after a cut stops at this share of the ceiling


@dataclass(frozen=True, slots=True)
class AdaptiveSettings:
    cap: int  # never more requests in flight than this (`--concurrency`)
    start_window: int = 1
    start_growth: float = 1.0  # per fast answer before the first 429 (1: doubles per round trip)
    backoff: float = 0.8  # after a 429: this share of the rate that drew it
    start_backoff: float = 0.65  # the same for the first 429, whose rate is a rougher guess
    latency_tolerance: float = 2.0  # slower than this times the fastest answer: queueing
    approach: float = 0.5  # per second, share of the gap to the ceiling closed while below it
    creep: float = 0.01  # per second, share of the ceiling added near it
    probe: float = 0.02  # per second, share of the rate added above the ceiling
    acceleration: float = 0.2  # per second above the ceiling, the probe grows by this share
    max_pause_s: float = 60.0  # the longest Retry-After honoured for the whole send


class AdaptiveConcurrency:
    """The decision state of one sending process (see the module's docstring)."""

    def __init__(self, settings: AdaptiveSettings) -> None:
        if settings.cap < 1:
            raise ValueError(f"cap: expected at least 1, got {settings.cap}")
        self.settings = settings
        self.window = float(max(1, min(settings.start_window, settings.cap)))
        self.rate: float | None = None  # requests per second once paced
        self.ceiling: float | None = None  # the rate that last drew a 429
        self.latency: float | None = None  # smoothed, of successful requests
        self.min_latency: float | None = None
        self.next_start = 0.0
        self.paused_until = 0.0
        self.rate_limited = 0  # 429 answers seen
        self.cuts = 0  # times the rate was lowered
        self._last_cut = -math.inf
        self._above_since: float | None = None  # when the rate passed the ceiling
        self._successes: deque[float] = deque()  # when recent successes were answered

    # -- what the sender asks --------------------------------------------------------------

    @property
    def limit(self) -> int:
        """Requests that may be in flight now."""
        return max(1, min(self.settings.cap, int(self.window)))

    def wait(self, now: float, in_flight: int) -> float | None:
        """None when the window is full (wait for an answer); else the seconds to wait before
        a request may start (0: now)."""
        if in_flight >= self.limit:
            return None
        return max(0.0, self.paused_until - now, self.next_start - now)

    def started(self, now: float) -> None:
        """A request starts now (after `wait` said 0): the pacing slot is taken."""
        if self.rate is not None:
            self.next_start = max(now, self.next_start) + 1.0 / self.rate
        elif self.min_latency is not None:
            # Before the first 429 too, the window's requests are spread over a round trip
            # rather than started together: a provider's bucket may take few at once.
            self.next_start = max(now, self.next_start) + self.min_latency / self.window

    # -- what the sender tells -------------------------------------------------------------

    def succeeded(self, now: float, latency: float) -> None:
        self._latency(latency)
        self._successes.append(now)
        self._forget(now)
        if self.rate is None:
            assert self.latency is not None and self.min_latency is not None
            if self.latency <= self.settings.latency_tolerance * self.min_latency:
                # slow start: `start_growth` more per answer (1: doubles every round trip)
                self.window = min(
                    float(self.settings.cap), self.window + self.settings.start_growth
                )
            return
        self.rate += self._growth_per_s(now) / self.rate
        self._fit_window()

    def rate_limited_answer(self, now: float, latency: float, retry_after: float | None) -> None:
        """A 429 for a request that took `latency` seconds (with the provider's Retry-After in
        seconds, when it gave one)."""
        self.rate_limited += 1
        if retry_after is not None and retry_after > 0:
            pause = min(retry_after, self.settings.max_pause_s)
            self.paused_until = max(self.paused_until, now + pause)
        if now - latency <= self._last_cut:
            return  # a request sent before the last cut: the same episode, already answered
        rtt = self._rtt()
        self._forget(now)
        if self.rate is not None:
            basis = self.rate  # paced: the rate that drew it
        else:
            # Slow start: the offer doubles every round trip and what got through lags it by
            # one, so the limit lies between what got through lately and what was offered.
            offered = self.window / rtt
            measured = len(self._successes) / rtt
            basis = math.sqrt(min(offered, measured) * offered) if measured > 0 else offered / 2
        backoff = self.settings.backoff if self.rate is not None else self.settings.start_backoff
        self.ceiling = basis
        self.rate = max(backoff * basis, 0.1)
        self._above_since = None
        self._last_cut = now
        self.cuts += 1
        self.next_start = max(self.next_start, now)
        self._fit_window()

    def failed(self, now: float, latency: float) -> None:
        """Any other answer or error: its latency counts, nothing else changes."""
        self._latency(latency)

    # -- internals ---------------------------------------------------------------------------

    def _latency(self, latency: float) -> None:
        latency = max(latency, 1e-6)
        self.min_latency = latency if self.min_latency is None else min(self.min_latency, latency)
        self.latency = latency if self.latency is None else 0.8 * self.latency + 0.2 * latency

    def _rtt(self) -> float:
        return max(self.latency or 0.0, _MEASURE_MIN_S)

    def _forget(self, now: float) -> None:
        horizon = now - self._rtt()
        while self._successes and self._successes[0] < horizon:
            self._successes.popleft()

    def _growth_per_s(self, now: float) -> float:
        assert self.rate is not None
        s = self.settings
        if self.ceiling is not None and self.rate < self.ceiling:
            # Quickly back to just under the ceiling, then slowly up to it.
            gap = max(0.0, _NEAR * self.ceiling - self.rate)
            return s.approach * gap + s.creep * self.ceiling
        if self._above_since is None:
            self._above_since = now
        # Past the ceiling without a 429: the limit may have risen; probe faster and faster.
        return s.probe * self.rate * (1.0 + s.acceleration * (now - self._above_since))

    def _fit_window(self) -> None:
        assert self.rate is not None
        latency = self.latency or 0.0
        self.window = float(min(self.settings.cap, max(1, math.ceil(2 * self.rate * latency) + 1)))
