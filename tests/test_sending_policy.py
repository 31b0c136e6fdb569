"""Pure parts of the sending core: retry policy, send config, rate limit, circuit breaker."""

from __future__ import annotations

import random

import pytest

from newsletter.delivery.breaker import CircuitBreaker
from newsletter.delivery.policy import Action, backoff_delay, decide, halves
from newsletter.delivery.ratelimit import TokenBucket
from newsletter.delivery.sendconfig import SendConfig
from newsletter.errors import ConfigError, PermanentProviderError, TransientProviderError
from newsletter.providers.base import BatchRejected, BatchTooLarge

LIMITS = {"max_attempts": 5, "backoff_base_s": 2.0, "backoff_max_s": 60.0}


def test_a_transient_error_is_retried_with_growing_jittered_delays() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, 2.0, 60.0, rng) for n in (1, 2, 3, 4, 10)]
    assert 1.0 <= delays[0] <= 2.0
    assert 4.0 <= delays[2] <= 8.0
    assert 30.0 <= delays[4] <= 60.0


def test_retry_after_is_never_shortened() -> None:
    error = TransientProviderError("429", status=429, retry_after=45)
    decision = decide(error, attempts=1, size=10, **LIMITS)
    assert decision.action is Action.RETRY and decision.delay_s >= 45


def test_the_last_attempt_gives_up_and_says_so() -> None:
    decision = decide(TransientProviderError("503", status=503), attempts=5, size=10, **LIMITS)
    assert decision.action is Action.FAIL
    assert decision.reason == "gave up after 5 attempts: 503 503"


@pytest.mark.parametrize(
    "error", [BatchRejected("bad", status=400), BatchTooLarge("big", status=413)]
)
def test_a_splittable_rejection_splits_until_one_recipient_is_left(
    error: PermanentProviderError,
) -> None:
    assert decide(error, attempts=1, size=2, **LIMITS).action is Action.SPLIT
    assert decide(error, attempts=1, size=1, **LIMITS).action is Action.FAIL


def test_a_permanent_error_is_not_retried() -> None:
    decision = decide(
        PermanentProviderError("401 bad key", status=401), attempts=1, size=9, **LIMITS
    )
    assert decision.action is Action.FAIL and decision.reason == "401 401 bad key"


def test_halves_keep_every_id_once() -> None:
    assert halves([1, 2, 3, 4, 5]) == ([1, 2, 3], [4, 5])


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("batch_size", 0),
        ("concurrency", 65),
        ("rate_messages_per_s", -1),
        ("lease_s", 0),
        ("max_attempts", 0),
        ("breaker_ratio", 1.5),
    ],
)
def test_send_config_rejects_impossible_values_naming_the_knob(knob: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"send config: {knob}: expected"):
        SendConfig(**{knob: value})


def test_send_config_is_capped_at_the_providers_batch_size() -> None:
    assert SendConfig(batch_size=1000).for_provider(100).batch_size == 100


def test_the_token_bucket_spaces_requests_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(10, burst=10, monotonic=lambda: now[0])
    assert bucket.reserve(10) == 0
    assert bucket.reserve(5) == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.reserve(1) == pytest.approx(0.1)


def test_an_unlimited_bucket_never_waits() -> None:
    assert TokenBucket(0).reserve(10**9) == 0


def test_the_breaker_opens_after_consecutive_failures_and_names_why() -> None:
    breaker = CircuitBreaker(consecutive=3, window=100, ratio=0.9)
    assert not breaker.record(False) and not breaker.record(False)
    assert breaker.record(False)
    assert breaker.reason == "3 batches failed in a row"


def test_the_breaker_opens_on_a_failure_ratio_over_its_window() -> None:
    breaker = CircuitBreaker(consecutive=100, window=10, ratio=0.5)
    outcomes = [False, False, True] * 4
    assert any(breaker.record(ok) for ok in outcomes)
    assert breaker.reason is not None and "of the last 10 batches failed" in breaker.reason


def test_occasional_failures_do_not_open_the_breaker() -> None:
    breaker = CircuitBreaker(consecutive=5, window=20, ratio=0.5)
    assert not any(breaker.record(ok) for ok in [True, True, True, True, False] * 20)
