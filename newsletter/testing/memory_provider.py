"""An in-memory provider with scripted outcomes, for tests of the sending core.

Like httpx's MockTransport: the test chooses what each call answers (accept, transient error
with Retry-After, permanent error, splittable rejection, per-recipient failures, latency) and
the provider records every recipient it accepted, so a test can assert exactly-once delivery.
It keeps the provider contract (tests/test_provider_contract.py) like the real providers: a
batch over `max_batch_size` is refused as too large, an address no envelope can carry fails.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from newsletter.errors import (
    InDoubtProviderError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from newsletter.providers.base import Batch, BatchRejected, BatchResult, BatchTooLarge
from newsletter.providers.mime import address_problem


@dataclass(frozen=True)
class Outcome:
    """What one `send_batch` call does. Build with the helpers below."""

    error: ProviderError | None = None
    taken: bool = False  # with an InDoubtProviderError: the recipients were delivered first
    fail: Callable[[str], str | None] | None = None  # email -> permanent error, or None
    defer: Callable[[str], str | None] | None = None  # email -> transient error, or None
    latency_s: float = 0.0


def accept(latency_s: float = 0.0) -> Outcome:
    return Outcome(latency_s=latency_s)


def transient(retry_after: float | None = None, status: int = 503) -> Outcome:
    return Outcome(
        error=TransientProviderError(
            f"memory provider: {status}", status=status, retry_after=retry_after
        )
    )


def permanent(status: int = 401) -> Outcome:
    return Outcome(error=PermanentProviderError(f"memory provider: {status}", status=status))


def reject_splittable(status: int = 400) -> Outcome:
    return Outcome(error=BatchRejected(f"memory provider: {status} bad address", status=status))


def lost_answer(taken: bool) -> Outcome:
    """The request went out and the answer was lost; `taken`: the provider sent it anyway."""
    return Outcome(
        error=InDoubtProviderError("memory provider: read timeout after the request was sent"),
        taken=taken,
    )


def per_recipient(
    fail: Iterable[str] = (), defer: Iterable[str] = (), error: str = "550 mailbox unavailable"
) -> Outcome:
    failing, deferring = set(fail), set(defer)
    return Outcome(
        fail=lambda e: error if e in failing else None,
        defer=lambda e: "421 try again later" if e in deferring else None,
    )


@dataclass
class MemoryProvider:
    """Answers each call with the next scripted outcome, then with `default` forever.

    `rule(batch)` may instead return an Outcome per call (e.g. reject batches containing a
    given address); it wins over the script when it returns one.
    """

    script: list[Outcome] = field(default_factory=list)
    default: Outcome = field(default_factory=accept)
    rule: Callable[[Batch], Outcome | None] | None = None
    max_batch_size: int = 1000
    name: str = "memory"
    delivered: Counter[str] = field(default_factory=Counter)  # email -> times accepted
    calls: int = 0
    batches: list[tuple[int, str, int]] = field(default_factory=list)  # (batch id, variant, n)
    closed: bool = False
    confirms_by_events: bool = False
    checked: int = 0  # preflight calls

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def send_batch(self, batch: Batch) -> BatchResult:
        """Like the real providers: the size limit first, each address checked, then the script."""
        with self._lock:
            self.calls += 1
            if len(batch.recipients) > self.max_batch_size:
                raise BatchTooLarge(
                    f"memory provider takes at most {self.max_batch_size} recipients, "
                    f"batch {batch.batch_id} has {len(batch.recipients)}",
                    status=413,
                )
            outcome = self.rule(batch) if self.rule else None
            if outcome is None:
                outcome = self.script.pop(0) if self.script else self.default
        if outcome.latency_s:
            time.sleep(outcome.latency_s)
        if outcome.error is not None:
            if outcome.taken:
                with self._lock:
                    for r in batch.recipients:
                        self.delivered[r.email] += 1
            raise outcome.error
        result = BatchResult(provider_message_id=f"mem-{batch.batch_id}")
        for r in batch.recipients:
            failed = address_problem(r.email) or (outcome.fail(r.email) if outcome.fail else None)
            deferred = outcome.defer(r.email) if outcome.defer else None
            if failed:
                result.failed[r.delivery_id] = failed
            elif deferred:
                result.deferred[r.delivery_id] = deferred
            else:
                result.accepted.append(r.delivery_id)
        accepted = set(result.accepted)
        with self._lock:
            for r in batch.recipients:
                if r.delivery_id in accepted:
                    self.delivered[r.email] += 1
            self.batches.append((batch.batch_id, batch.message.variant, len(result.accepted)))
        return result

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.delivered.values() if n > 1)

    def preflight(self) -> None:
        self.checked += 1

    def close(self) -> None:
        self.closed = True
