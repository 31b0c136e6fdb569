"""Pure decisions about a failed provider call: retry when, split how, or give up.

No I/O and no clock here: the sender passes the facts in and applies the decision, so every
rule is testable with plain values.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from newsletter.errors import PermanentProviderError, ProviderError, TransientProviderError
from newsletter.types import FailureKind


class Action(StrEnum):
    RETRY = "retry"  # back to the queue, not before `delay_s`
    SPLIT = "split"  # halve the batch and try each half
    FAIL = "fail"  # give up on every recipient of the batch


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay_s: float = 0.0
    reason: str = ""


def backoff_delay(
    attempt: int, base_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with "equal jitter": uniform in [cap/2, cap], cap doubling per try."""
    cap = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(cap / 2, cap)


def decide(
    error: ProviderError,
    *,
    attempts: int,
    size: int,
    max_attempts: int,
    backoff_base_s: float,
    backoff_max_s: float,
    rng: random.Random | None = None,
) -> Decision:
    """What to do with a batch of `size` recipients whose `attempts`-th call raised `error`.

    A Retry-After from the provider is honoured (never shortened, capped at one hour).
    """
    reason = describe(error)
    if isinstance(error, TransientProviderError):
        if attempts >= max_attempts:
            return Decision(Action.FAIL, reason=f"gave up after {attempts} attempts: {reason}")
        delay = backoff_delay(attempts, backoff_base_s, backoff_max_s, rng)
        if error.retry_after is not None:
            delay = max(delay, min(float(error.retry_after), 3600.0))
        return Decision(Action.RETRY, delay_s=delay, reason=reason)
    if isinstance(error, PermanentProviderError) and getattr(error, "splittable", False):
        if size > 1:
            return Decision(Action.SPLIT, reason=reason)
        return Decision(Action.FAIL, reason=reason)
    return Decision(Action.FAIL, reason=reason)


def describe(error: ProviderError) -> str:
    """A one-line error for the ledger: the provider's status and message, no body dump."""
    status = f"{error.status} " if error.status is not None else ""
    return f"{status}{error}".strip()[:500]


def halves(ids: list[int]) -> tuple[list[int], list[int]]:
    """Split ordered ids into two halves (the first is the larger when the count is odd)."""
    middle = (len(ids) + 1) // 2
    return ids[:middle], ids[middle:]


def failure_kind(error: ProviderError, size: int) -> FailureKind:
    """Whose fault a batch's failure was. A splittable refusal of a single recipient is about
    that address; anything else (a refused key or From, content, a service that kept failing)
    is the send's, and `issue retry` may send to those recipients once it is fixed."""
    if isinstance(error, PermanentProviderError) and getattr(error, "splittable", False):
        return FailureKind.ADDRESS if size <= 1 else FailureKind.SEND
    return FailureKind.SEND
