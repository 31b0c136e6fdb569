"""What the sending loop reports for /metrics: each provider request's time and outcome, and
each batch queued again after a transient error."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import Settings
from newsletter.delivery import instruments
from newsletter.testing.memory_provider import MemoryProvider, accept, transient
from tests.fixtures.delivery import SeededSend
from tests.test_sending import _send


def _value(name: str, labels: dict[str, str]) -> float:
    return instruments.REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_and_retries_are_counted(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    provider = MemoryProvider(script=[transient(), transient(status=429), accept()])
    name = provider.name
    answered = {"provider": name, "outcome": "answered"}
    errors = {"provider": name, "outcome": "error"}
    before = (
        _value("newsletter_provider_request_seconds_count", answered),
        _value("newsletter_provider_request_seconds_count", errors),
        _value("newsletter_provider_retries_total", {"provider": name}),
    )
    report = _send(sessions, settings, provider, delivery_seed)
    after = (
        _value("newsletter_provider_request_seconds_count", answered),
        _value("newsletter_provider_request_seconds_count", errors),
        _value("newsletter_provider_retries_total", {"provider": name}),
    )
    answered_n, errors_n, retries_n = (a - b for a, b in zip(after, before, strict=True))
    assert answered_n == report.batches
    assert errors_n == retries_n == report.requests - report.batches
    assert retries_n >= 2
