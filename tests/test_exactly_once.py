"""Exactly once without an operator: answers lost after the request was sent, requests dropped
without being taken, and refused settings, against the local SendGrid-compatible server, with
its signed events flowing back to the project's own webhook (on SQLite and PostgreSQL).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import SYSTEM_CLOCK
from newsletter.config import Secret, Settings
from newsletter.db.session import transaction
from newsletter.delivery import issue_state
from newsletter.delivery.in_doubt import BatchFacts, Verdict, decide
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sending import send_issue
from newsletter.delivery.status import outcome_error, send_status
from newsletter.providers.sendgrid import SendGridProvider
from newsletter.testing.sendgrid_server import SendGridServer
from tests.fixtures.delivery import WebhookReceiver, seed_send
from tests.fixtures.providers import SENDGRID_TEST_KEY
from tests.fixtures.web import WebhookKey, make_webhook_key

SUBSCRIBERS = 600
CONFIG = SendConfig(batch_size=50, concurrency=4, poll_s=0.05, backoff_base_s=0.05)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings with a From address a provider takes."""
    return dataclasses.replace(settings, from_address=_address("news@example.com"))


@pytest.fixture
def events_key() -> WebhookKey:
    return make_webhook_key()


@pytest.fixture
def server() -> SendGridServer:
    with SendGridServer(api_key=SENDGRID_TEST_KEY, keep_requests=False) as running:
        yield running


def _with_events(settings: Settings, key: WebhookKey) -> Settings:
    return dataclasses.replace(settings, sendgrid_webhook_public_key=key.public_b64)


def _provider(server: SendGridServer, *, timeout: float = 0.5, events: bool = True) -> Any:
    return SendGridProvider(
        Secret(SENDGRID_TEST_KEY), server.url, timeout=timeout, confirms_by_events=events
    )


def _send(sessions, settings, provider, issue_id, config=CONFIG):  # noqa: ANN001, ANN202
    try:
        return send_issue(sessions, settings, provider, issue_id, SYSTEM_CLOCK, config=config)
    finally:
        provider.close()


def _status(sessions: sessionmaker[Session], issue_id: int):  # noqa: ANN202
    with sessions() as session:
        return send_status(session, issue_id)


@pytest.mark.slow
def test_answers_lost_after_the_timeout_are_settled_from_events_with_no_duplicate(
    sessions: sessionmaker[Session],
    settings: Settings,
    server: SendGridServer,
    events_key: WebhookKey,
    webhook_receiver: Callable[[Settings], WebhookReceiver],
) -> None:
    seeded = seed_send(sessions, SUBSCRIBERS)
    settings = _with_events(settings, events_key)
    receiver = webhook_receiver(settings)
    server.configure(
        late_rate=0.3, late_after=1.5, events_url=receiver.url, events_key=events_key.private,
        seed=11,
    )  # fmt: skip
    config = dataclasses.replace(CONFIG, reconcile_after_s=20)
    report = _send(sessions, settings, _provider(server), seeded.issue_id, config)

    stats = server.stats()
    status = _status(sessions, seeded.issue_id)
    assert stats["late"] >= 2, "the server answered no request late: nothing was tested"
    assert stats["duplicates"] == 0
    assert stats["unique_recipients"] == SUBSCRIBERS
    assert status.recipients["accepted"] == SUBSCRIBERS
    assert status.recipients["in_doubt"] == 0
    assert status.issue_status == "sent"
    assert report.in_doubt == 0
    assert outcome_error(status) is None


@pytest.mark.slow
def test_requests_dropped_without_being_taken_are_sent_again_after_the_grace_window(
    sessions: sessionmaker[Session],
    settings: Settings,
    server: SendGridServer,
    events_key: WebhookKey,
    webhook_receiver: Callable[[Settings], WebhookReceiver],
) -> None:
    seeded = seed_send(sessions, SUBSCRIBERS)
    settings = _with_events(settings, events_key)
    receiver = webhook_receiver(settings)
    server.configure(drop_rate=0.1, events_url=receiver.url, events_key=events_key.private, seed=5)
    config = dataclasses.replace(CONFIG, reconcile_after_s=1.5)
    _send(sessions, settings, _provider(server), seeded.issue_id, config)

    stats = server.stats()
    status = _status(sessions, seeded.issue_id)
    assert stats["dropped"] >= 1, "the server dropped no request: nothing was tested"
    assert stats["duplicates"] == 0
    assert stats["unique_recipients"] == SUBSCRIBERS
    assert status.recipients["accepted"] == SUBSCRIBERS
    assert status.recipients["in_doubt"] == 0
    assert status.issue_status == "sent"


def test_without_provider_events_a_lost_answer_stays_in_doubt_and_is_never_resent(
    sessions: sessionmaker[Session], settings: Settings, server: SendGridServer
) -> None:
    seeded = seed_send(sessions, 100)
    server.configure(late_rate=1.0, late_after=1.0)
    report = _send(
        sessions, settings, _provider(server, timeout=0.3, events=False), seeded.issue_id
    )

    stats = server.stats()
    status = _status(sessions, seeded.issue_id)
    assert stats["duplicates"] == 0
    assert stats["accepted_recipients"] == 100  # every batch was taken, none twice
    assert status.recipients["in_doubt"] == 100
    assert report.in_doubt == 100
    assert status.issue_status == "sending"  # not "sent": nobody knows yet
    error = outcome_error(status)
    assert error is not None and error.exit_code == 75
    assert "in doubt" in str(error) and "issue resolve" in str(error)


def test_a_refused_from_fails_the_issue_and_retry_after_the_fix_sends_everyone_once(
    sessions: sessionmaker[Session], settings: Settings, server: SendGridServer
) -> None:
    seeded = seed_send(sessions, 120)
    wrong = dataclasses.replace(settings, from_address=_address("newsletter@localhost"))
    _send(sessions, wrong, _provider(server), seeded.issue_id)

    status = _status(sessions, seeded.issue_id)
    assert status.issue_status == "failed"
    assert status.recipients["failed"] == 120
    assert server.stats()["accepted_recipients"] == 0
    error = outcome_error(status)
    assert error is not None and error.exit_code == 69

    with transaction(sessions) as session:
        preview = issue_state.retry_failed(
            session, seeded.issue_id, SYSTEM_CLOCK, batch_size=50, dry_run=True
        )
    assert (preview.retryable, preview.requeued) == (120, 0)
    assert any("from.email" in reason for reason in preview.reasons)

    with transaction(sessions) as session:
        issue_state.retry_failed(session, seeded.issue_id, SYSTEM_CLOCK, batch_size=50)
    _send(sessions, settings, _provider(server), seeded.issue_id)

    stats = server.stats()
    assert stats["unique_recipients"] == 120
    assert stats["duplicates"] == 0
    status = _status(sessions, seeded.issue_id)
    assert (status.issue_status, status.recipients["accepted"]) == ("sent", 120)


def test_a_refused_api_key_fails_the_issue_and_retry_after_the_fix_sends_everyone_once(
    sessions: sessionmaker[Session], settings: Settings, server: SendGridServer
) -> None:
    seeded = seed_send(sessions, 60)
    revoked = SendGridProvider(Secret("revoked-key"), server.url)
    _send(sessions, settings, revoked, seeded.issue_id)
    assert _status(sessions, seeded.issue_id).issue_status == "failed"

    with transaction(sessions) as session:
        report = issue_state.retry_failed(session, seeded.issue_id, SYSTEM_CLOCK, batch_size=50)
    assert report.requeued == 60
    _send(sessions, settings, _provider(server), seeded.issue_id)
    stats = server.stats()
    assert (stats["unique_recipients"], stats["duplicates"]) == (60, 0)
    assert _status(sessions, seeded.issue_id).issue_status == "sent"


def test_retry_leaves_addresses_the_provider_refused_failed(
    sessions: sessionmaker[Session], settings: Settings, server: SendGridServer
) -> None:
    seeded = seed_send(sessions, 30)
    refused = seeded.emails[:2]
    server.configure(reject_addresses=refused)
    _send(sessions, settings, _provider(server), seeded.issue_id)
    status = _status(sessions, seeded.issue_id)
    assert status.issue_status == "sent_with_failures"
    assert outcome_error(status).exit_code == 3  # type: ignore[union-attr]

    with transaction(sessions) as session:
        report = issue_state.retry_failed(
            session, seeded.issue_id, SYSTEM_CLOCK, batch_size=50, dry_run=True
        )
    assert (report.retryable, report.kept_failed) == (0, 2)


# --- the rule, as a pure function ----------------------------------------------------------

NOW = datetime(2026, 6, 13, 7, 0, tzinfo=UTC)


def _facts(*, event: bool = False, since: bool = False, age_s: float = 60) -> BatchFacts:
    return BatchFacts(1, NOW - timedelta(seconds=age_s), event, since)


@pytest.mark.parametrize(
    ("facts", "events_expected", "verdict"),
    [
        (_facts(event=True), True, Verdict.TAKEN),
        (_facts(event=True), False, Verdict.TAKEN),
        (_facts(since=True, age_s=10), True, Verdict.WAIT),
        (_facts(since=True, age_s=1000), True, Verdict.NOT_TAKEN),
        (_facts(since=False, age_s=1000), True, Verdict.OPERATOR),
        (_facts(since=True, age_s=1000), False, Verdict.OPERATOR),
        (BatchFacts(1, None, False, True), True, Verdict.OPERATOR),
    ],
    ids=[
        "an-event-proves-it-was-taken",
        "an-event-counts-even-where-none-was-expected",
        "inside-the-grace-window-it-waits",
        "silence-while-other-batches-reported-means-never-taken",
        "no-event-at-all-is-no-proof",
        "without-a-webhook-only-the-operator-knows",
        "a-batch-never-known-posted-is-the-operators",
    ],
)
def test_the_in_doubt_rule(facts: BatchFacts, events_expected: bool, verdict: Verdict) -> None:
    assert decide(facts, now=NOW, grace_s=900, events_expected=events_expected) == verdict


def _address(text: str):  # noqa: ANN202
    from email.headerregistry import Address

    name, _, domain = text.partition("@")
    return Address("AI日報", name, domain)


def test_an_smtp_message_whose_answer_was_lost_waits_for_the_operator_alone(
    sessions: sessionmaker[Session], settings: Settings, smtp_sink
) -> None:  # type: ignore[no-untyped-def]
    """Over SMTP the unit is one message: the one whose connection dropped after the end of
    DATA is in doubt (in a batch of its own); everyone else is settled normally."""
    from newsletter.delivery.in_doubt import resolve_in_doubt
    from newsletter.providers.smtp import SmtpProvider, parse_smtp_url

    seeded = seed_send(sessions, 30)
    smtp_sink.configure(drop_at={2})
    smtp = SmtpProvider(parse_smtp_url(smtp_sink.url, default_pool=1))
    config = dataclasses.replace(CONFIG, concurrency=1, batch_size=10)
    _send(sessions, settings, smtp, seeded.issue_id, config)

    status = _status(sessions, seeded.issue_id)
    assert (status.recipients["accepted"], status.recipients["in_doubt"]) == (29, 1)
    assert len(status.in_doubt_batches) == 1
    assert status.issue_status == "sending"
    assert outcome_error(status).exit_code == 75  # type: ignore[union-attr]

    with transaction(sessions) as session:
        resolved = resolve_in_doubt(session, seeded.issue_id, resend=True, clock=SYSTEM_CLOCK)
    assert resolved.requeued == 1
    smtp = SmtpProvider(parse_smtp_url(smtp_sink.url, default_pool=1))
    _send(sessions, settings, smtp, seeded.issue_id, config)
    assert _status(sessions, seeded.issue_id).issue_status == "sent"
    assert smtp_sink.stats()["messages"] == 30
