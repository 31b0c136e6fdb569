"""The sending loop, end to end against the in-memory provider, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import SYSTEM_CLOCK
from newsletter.config import Settings
from newsletter.db.models import Delivery, Issue, Subscriber
from newsletter.delivery import issue_state
from newsletter.delivery.planning import enqueue_issue
from newsletter.delivery.progress import Progress
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sending import send_issue
from newsletter.delivery.status import recipient_status, send_status
from newsletter.errors import StateError
from newsletter.providers.base import Batch
from newsletter.testing.memory_provider import (
    MemoryProvider,
    Outcome,
    accept,
    per_recipient,
    permanent,
    reject_splittable,
    transient,
)
from subscribers.tokens import LinkSigner
from tests.fixtures.delivery import SeededSend, add_subscribers, suppress, unsubscribe

FAST = SendConfig(batch_size=4, concurrency=3, backoff_base_s=0.01, backoff_max_s=0.02, poll_s=0.01)


def _send(
    sessions: sessionmaker[Session],
    settings: Settings,
    provider: MemoryProvider,
    delivery_seed: SeededSend,
    config: SendConfig = FAST,
    **kwargs: object,
):  # type: ignore[no-untyped-def]
    return send_issue(
        sessions,
        settings,
        provider,
        delivery_seed.issue_id,
        SYSTEM_CLOCK,
        worker_id="test",
        config=config,
        **kwargs,  # type: ignore[arg-type]
    )


def _issue_status(sessions: sessionmaker[Session], issue_id: int) -> str:
    with sessions() as session:
        return session.get_one(Issue, issue_id).status


def test_every_recipient_gets_the_issue_exactly_once(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    provider = MemoryProvider()
    report = _send(sessions, settings, provider, delivery_seed)
    assert set(provider.delivered) == set(delivery_seed.emails)
    assert provider.duplicates == 0
    assert report.accepted == 30
    assert report.status is not None and report.status.recipients["accepted"] == 30
    assert _issue_status(sessions, delivery_seed.issue_id) == "sent"


def test_each_recipient_gets_the_variant_of_their_language(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    seen: dict[str, str] = {}

    def remember(batch: Batch) -> Outcome | None:
        for r in batch.recipients:
            seen[r.email] = batch.message.variant
        return None

    _send(sessions, settings, MemoryProvider(rule=remember), delivery_seed)
    with sessions() as session:
        languages = dict(session.execute(select(Subscriber.email, Subscriber.language)).all())
    assert seen == languages


def test_recipients_carry_their_own_signed_links_and_name(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    captured: list[Batch] = []
    _send(
        sessions, settings, MemoryProvider(rule=lambda b: captured.append(b) or None), delivery_seed
    )
    signer = LinkSigner(settings)
    recipient = captured[0].recipients[0]
    token = recipient.unsubscribe_url.rsplit("/", 1)[1]
    claim = signer.verify(token)
    assert (claim.subscriber_id, claim.list_id) == (recipient.subscriber_id, delivery_seed.list_id)
    assert recipient.preferences_url.endswith("/p/" + token)
    assert recipient.name.startswith("Reader ")


def test_with_an_inbound_domain_recipients_get_a_signed_mailto_and_return_path(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    from dataclasses import replace

    from subscribers.tokens import token_from_address

    captured: list[Batch] = []
    rule = lambda b: captured.append(b) or None  # noqa: E731
    _send(
        sessions,
        replace(settings, inbound_domain="in.example.com"),
        MemoryProvider(rule=rule),
        delivery_seed,
    )
    signer = LinkSigner(settings)
    for recipient in (r for batch in captured for r in batch.recipients):
        mailto = recipient.unsubscribe_mailto
        assert mailto.startswith("mailto:unsubscribe+") and mailto.endswith("?subject=unsubscribe")
        token = token_from_address(
            mailto.removeprefix("mailto:").partition("?")[0], "unsubscribe", "in.example.com"
        )
        assert token == recipient.unsubscribe_url.rsplit("/", 1)[1]  # the same signed token
        assert signer.verify(token).subscriber_id == recipient.subscriber_id
        assert recipient.return_path == f"bounces+{token}@in.example.com"  # VERP


def test_transient_failures_are_retried_without_duplicates(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    provider = MemoryProvider(script=[transient(), transient(status=429), accept(), transient()])
    report = _send(sessions, settings, provider, delivery_seed)
    assert Counter(provider.delivered.values()) == Counter({1: 30})
    assert report.retried >= 3 * 4
    assert _issue_status(sessions, delivery_seed.issue_id) == "sent"


def test_retry_after_from_the_provider_is_honoured(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    calls: list[tuple[int, float]] = []
    first_batch: list[int] = []

    def rule(batch: Batch) -> Outcome | None:
        calls.append((batch.batch_id, time.monotonic()))
        if not first_batch:
            first_batch.append(batch.batch_id)
            return transient(retry_after=0.4, status=429)
        return None

    _send(sessions, settings, MemoryProvider(rule=rule), delivery_seed)
    times = [t for batch_id, t in calls if batch_id == first_batch[0]]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.4


def test_a_rejected_batch_is_halved_until_the_bad_address_is_alone(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    bad = delivery_seed.emails[5]

    def rule(batch: Batch) -> Outcome | None:
        if any(r.email == bad for r in batch.recipients):
            return reject_splittable()
        return None

    provider = MemoryProvider(rule=rule)
    report = _send(sessions, settings, provider, delivery_seed)
    assert set(provider.delivered) == set(delivery_seed.emails) - {bad}
    assert provider.duplicates == 0
    assert report.failed == 1
    with sessions() as session:
        outcome = recipient_status(session, delivery_seed.issue_id, bad)
    assert outcome.status == "failed"
    assert outcome.error is not None and "400" in outcome.error


def test_a_permanent_error_fails_the_batch_with_the_providers_reason(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    provider = MemoryProvider(script=[permanent(status=403)])
    report = _send(sessions, settings, provider, delivery_seed, config=FAST)
    assert report.failed == 4
    assert len(provider.delivered) == 26
    with sessions() as session:
        errors = set(session.scalars(select(Delivery.error).where(Delivery.status == "failed")))
    assert errors == {"403 memory provider: 403"}


def test_per_recipient_failures_are_recorded_and_deferrals_retried(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    failing, deferred = delivery_seed.emails[0], delivery_seed.emails[1]
    deferred_once: list[str] = []

    def rule(batch: Batch) -> Outcome | None:
        emails = {r.email for r in batch.recipients}
        defer = [deferred] if deferred in emails and not deferred_once else []
        deferred_once.extend(defer)
        return per_recipient(fail=[failing], defer=defer)

    provider = MemoryProvider(rule=rule)
    _send(sessions, settings, provider, delivery_seed, config=FAST)
    assert failing not in provider.delivered
    assert provider.delivered[deferred] == 1
    assert provider.duplicates == 0
    with sessions() as session:
        assert recipient_status(session, delivery_seed.issue_id, failing).status == "failed"
        assert recipient_status(session, delivery_seed.issue_id, deferred).status == "accepted"


def test_a_batch_that_keeps_failing_is_failed_after_the_last_attempt(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    stuck = delivery_seed.emails[0]
    provider = MemoryProvider(
        rule=lambda b: transient() if any(r.email == stuck for r in b.recipients) else None
    )
    config = SendConfig(
        batch_size=4,
        concurrency=2,
        max_attempts=3,
        backoff_base_s=0.01,
        backoff_max_s=0.01,
        poll_s=0.01,
    )
    report = _send(sessions, settings, provider, delivery_seed, config=config)
    assert report.failed == 4
    assert len(provider.delivered) == 26
    with sessions() as session:
        status = recipient_status(session, delivery_seed.issue_id, stuck)
    assert status.status == "failed"
    assert status.error is not None and "after 3 attempts" in status.error
    assert _issue_status(sessions, delivery_seed.issue_id) == "sent_with_failures"


def test_the_breaker_pauses_a_failing_send_and_resume_finishes_it_once(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    failing = threading.Event()
    failing.set()
    provider = MemoryProvider(rule=lambda b: transient() if failing.is_set() else None)
    config = SendConfig(
        batch_size=4,
        concurrency=1,
        breaker_consecutive=3,
        backoff_base_s=0.5,  # other batches are tried while the first waits for its retry
        backoff_max_s=0.5,
        poll_s=0.01,
    )
    report = _send(sessions, settings, provider, delivery_seed, config=config)
    assert report.paused_reason == "3 batches failed in a row"
    assert _issue_status(sessions, delivery_seed.issue_id) == "paused"
    assert not provider.delivered
    with pytest.raises(StateError, match="paused"):
        _send(sessions, settings, provider, delivery_seed, config=config)

    failing.clear()
    with sessions.begin() as session:
        issue_state.resume_issue(session, delivery_seed.issue_id)
    _send(sessions, settings, provider, delivery_seed, config=config)
    assert set(provider.delivered) == set(delivery_seed.emails)
    assert provider.duplicates == 0
    assert _issue_status(sessions, delivery_seed.issue_id) == "sent"


def test_the_breaker_counts_a_retried_batch_once(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    """Two batches each answered 503 twice, then accepted: two failures, not four in a row."""
    tries: Counter[int] = Counter()

    def rule(batch: Batch) -> Outcome | None:
        tries[batch.batch_id] += 1
        return transient() if batch.batch_id in (1, 2) and tries[batch.batch_id] <= 2 else None

    provider = MemoryProvider(rule=rule)
    config = SendConfig(
        batch_size=4, concurrency=1, breaker_consecutive=3, backoff_base_s=0.01,
        backoff_max_s=0.01, poll_s=0.01,
    )  # fmt: skip
    report = _send(sessions, settings, provider, delivery_seed, config=config)
    assert report.paused_reason is None
    assert set(provider.delivered) == set(delivery_seed.emails)
    assert _issue_status(sessions, delivery_seed.issue_id) == "sent"


def test_a_subscriber_who_unsubscribes_during_the_send_is_skipped(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    leaving = delivery_seed.emails[-1]

    def rule(batch: Batch) -> Outcome | None:
        if batch.batch_id == 1:
            unsubscribe(sessions, leaving)
        return None

    config = SendConfig(batch_size=4, concurrency=1, poll_s=0.01)
    provider = MemoryProvider(rule=rule)
    report = _send(sessions, settings, provider, delivery_seed, config=config)
    assert leaving not in provider.delivered
    assert report.skipped == 1
    with sessions() as session:
        assert recipient_status(session, delivery_seed.issue_id, leaving).status == "skipped"


def test_a_suppressed_address_is_never_sent(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    suppress(sessions, delivery_seed.emails[3])
    provider = MemoryProvider()
    _send(sessions, settings, provider, delivery_seed)
    assert delivery_seed.emails[3] not in provider.delivered
    assert len(provider.delivered) == 29


def test_sending_a_sent_issue_again_sends_nothing(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    provider = MemoryProvider()
    _send(sessions, settings, provider, delivery_seed)
    calls = provider.calls
    with sessions.begin() as session:
        add_subscribers(session, delivery_seed.list_id, 1000, 2)  # joined after the send
    report = _send(sessions, settings, provider, delivery_seed)
    assert provider.calls == calls
    assert report.accepted == 0
    assert provider.duplicates == 0


def test_a_stop_request_finishes_the_batches_in_flight_and_returns(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    stop = threading.Event()

    def rule(batch: Batch) -> Outcome | None:
        stop.set()
        return accept(latency_s=0.05)

    provider = MemoryProvider(rule=rule)
    config = SendConfig(batch_size=4, concurrency=2, poll_s=0.01)
    report = _send(sessions, settings, provider, delivery_seed, config=config, stop=stop)
    assert 1 <= report.batches <= 2
    assert report.accepted == len(provider.delivered)
    with sessions() as session:
        status = send_status(session, delivery_seed.issue_id)
    assert status.recipients["accepted"] == report.accepted
    assert status.batches["claimed"] == status.batches["sending"] == 0
    assert status.issue_status == "sending"
    # Sending again finishes the rest, never repeating anyone.
    _send(sessions, settings, provider, delivery_seed)
    assert set(provider.delivered) == set(delivery_seed.emails)
    assert provider.duplicates == 0


def test_a_provider_crash_outside_its_contract_leaves_the_batch_in_doubt(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    def rule(batch: Batch) -> Outcome | None:
        if batch.batch_id == 1:
            raise RuntimeError("connection pool exploded")
        return None

    report = _send(sessions, settings, MemoryProvider(rule=rule), delivery_seed)
    assert report.in_doubt == 4
    assert report.status is not None and report.status.in_doubt_batches == [1]


def test_progress_is_reported_after_every_batch(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    seen: list[int] = []

    def progress(p: Progress) -> None:
        seen.append(p.settled)
        assert p.total == 30

    _send(sessions, settings, MemoryProvider(), delivery_seed, progress=progress)
    assert len(seen) == 9  # 10 recipients per language in batches of 4: 4 + 4 + 2, three times
    assert max(seen) == 30


def test_a_resumed_send_counts_its_progress_from_those_already_settled(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    stop = threading.Event()
    calls: list[int] = []

    def accept_one_then_fail_one_and_stop(batch: Batch) -> Outcome | None:
        calls.append(batch.batch_id)
        if len(calls) == 1:
            return None  # accepted: settled through its batch row
        stop.set()
        return permanent(status=403)  # failed: settled by the members' own rows

    config = SendConfig(batch_size=4, concurrency=1, poll_s=0.01)
    provider = MemoryProvider(rule=accept_one_then_fail_one_and_stop)
    first = _send(sessions, settings, provider, delivery_seed, config=config, stop=stop)
    assert (first.accepted, first.failed) == (4, 4)
    seen: list[tuple[int, int, int]] = []

    def progress(p: Progress) -> None:
        seen.append((p.total, p.done_before, p.settled))

    _send(sessions, settings, MemoryProvider(), delivery_seed, progress=progress)
    assert {(total, before) for total, before, _ in seen} == {(30, 8)}
    assert seen[-1][2] == 22


def test_the_ledger_holds_one_row_per_recipient(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    _send(sessions, settings, MemoryProvider(), delivery_seed)
    with sessions() as session:
        rows = session.scalar(select(func.count()).select_from(Delivery))
    assert rows == 30


def test_batches_planned_larger_than_the_provider_takes_are_halved_before_posting(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    with sessions.begin() as session:
        issue = session.get_one(Issue, delivery_seed.issue_id)
        enqueue_issue(session, issue, settings, SYSTEM_CLOCK, batch_size=10)
    sizes: list[int] = []
    provider = MemoryProvider(max_batch_size=3, rule=lambda b: sizes.append(len(b.recipients)))
    _send(sessions, settings, provider, delivery_seed)
    assert max(sizes) <= 3
    assert set(provider.delivered) == set(delivery_seed.emails) and provider.duplicates == 0


def test_the_request_rate_limit_spaces_the_batches(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    config = SendConfig(batch_size=4, concurrency=3, rate_requests_per_s=5, poll_s=0.01)
    started = time.monotonic()
    _send(sessions, settings, MemoryProvider(), delivery_seed, config=config)
    # 9 requests at 5/s with a burst of 5: the last 4 wait for tokens.
    assert time.monotonic() - started >= 0.7
