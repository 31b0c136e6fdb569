"""Every throughput and safety knob of a send, validated once in one frozen object.

An impossible value is refused with a `ConfigError` naming the knob (and its environment
variable when it comes from Settings), so a typo never turns into a send that burns the list.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from newsletter.config import Settings
from newsletter.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SendConfig:
    batch_size: int = 1000  # recipients per provider request (capped by the provider)
    concurrency: int = 16  # batches in flight at most (threads); the cap of `adaptive`
    adaptive: bool = True  # find the provider's rate from 429s and latency (concurrency.py)
    rate_messages_per_s: float = 0.0  # 0 = unlimited
    rate_requests_per_s: float = 0.0  # 0 = unlimited
    lease_s: float = 120.0  # how long a claimed batch belongs to its worker
    max_attempts: int = 8  # provider calls per batch before it is failed
    backoff_base_s: float = 2.0  # first retry delay; doubles each attempt, with full jitter
    backoff_max_s: float = 300.0
    breaker_consecutive: int = 10  # this many failed batches in a row pause the send
    breaker_window: int = 50  # ... or a failure ratio over this many recent batches
    breaker_ratio: float = 0.5
    poll_s: float = 0.5  # idle wait when every remaining batch is waiting for its retry time
    reconcile_after_s: float = 900.0  # an in-doubt batch with no provider event: sent again

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("batch_size", 1 <= self.batch_size <= 10_000, "1 to 10000"),
            ("concurrency", 1 <= self.concurrency <= 64, "1 to 64"),
            ("rate_messages_per_s", self.rate_messages_per_s >= 0, "0 (unlimited) or more"),
            ("rate_requests_per_s", self.rate_requests_per_s >= 0, "0 (unlimited) or more"),
            ("lease_s", self.lease_s >= 1, "at least 1 second"),
            ("max_attempts", 1 <= self.max_attempts <= 100, "1 to 100"),
            ("backoff_base_s", self.backoff_base_s >= 0, "0 or more seconds"),
            ("backoff_max_s", self.backoff_max_s >= self.backoff_base_s, ">= backoff_base_s"),
            ("breaker_consecutive", self.breaker_consecutive >= 1, "at least 1"),
            ("breaker_window", self.breaker_window >= 1, "at least 1"),
            ("breaker_ratio", 0 < self.breaker_ratio <= 1, "more than 0 and at most 1"),
            ("poll_s", self.poll_s > 0, "more than 0 seconds"),
            ("reconcile_after_s", self.reconcile_after_s > 0, "more than 0 seconds"),
        ]
        for knob, ok, expected in checks:
            if not ok:
                value = getattr(self, knob)
                raise ConfigError(f"send config: {knob}: expected {expected}, got {value!r}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SendConfig:
        """The knobs from NEWSLETTER_SEND_* / NEWSLETTER_RATE_*; `overrides` (CLI flags) win."""
        base = {
            "batch_size": settings.send_batch_size,
            "concurrency": settings.send_concurrency,
            "rate_messages_per_s": settings.rate_messages_per_s,
            "rate_requests_per_s": settings.rate_requests_per_s,
            "reconcile_after_s": float(settings.reconcile_after_s),
        }
        known = {f.name for f in fields(cls)}
        for key in overrides:
            if key not in known:
                raise ConfigError(f"send config: unknown knob {key!r}")
        values = {**base, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**values)

    def for_provider(self, max_batch_size: int) -> SendConfig:
        """The same knobs with the batch size capped at what the provider takes per request."""
        if self.batch_size <= max_batch_size:
            return self
        return replace(self, batch_size=max_batch_size)
