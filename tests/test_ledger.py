"""The send ledger's state machine, step by step with a fixed clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import Delivery, Issue, SendBatch
from newsletter.delivery import in_doubt, issue_state, ledger
from newsletter.delivery.planning import enqueue_issue
from newsletter.delivery.status import recipient_status, send_status
from tests.fixtures.delivery import SeededSend, add_subscribers, suppress

LEASE_S = 60


def _enqueue(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
    batch_size: int = 4,
) -> ledger.EnqueueReport:
    with sessions.begin() as session:
        issue = session.get_one(Issue, delivery_seed.issue_id)
        return enqueue_issue(session, issue, settings, clock, batch_size=batch_size)


def _claim(sessions: sessionmaker[Session], worker: str, clock: FixedClock):  # type: ignore[no-untyped-def]
    with sessions() as session:
        return ledger.claim_batch(session, worker, clock, LEASE_S)


def test_enqueue_plans_one_delivery_per_eligible_subscriber_in_batches_per_language(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    suppress(sessions, delivery_seed.emails[0])
    report = _enqueue(sessions, settings, clock, delivery_seed)
    assert (report.added, report.total) == (29, 29)
    with sessions() as session:
        sizes = session.execute(
            select(SendBatch.variant, SendBatch.size).order_by(SendBatch.id)
        ).all()
        issue = session.get_one(Issue, delivery_seed.issue_id)
        mixed = session.scalar(
            select(func.count(func.distinct(Delivery.variant)))
            .group_by(Delivery.batch_id)
            .order_by(func.count(func.distinct(Delivery.variant)).desc())
            .limit(1)
        )
    assert sorted(sizes) == sorted(
        [
            ("ja", 4),
            ("ja", 4),
            ("ja", 1),
            ("en", 4),
            ("en", 4),
            ("en", 2),
            ("both", 4),
            ("both", 4),
            ("both", 2),
        ]
    )
    assert mixed == 1  # a batch never mixes languages
    assert issue.status == "sending" and issue.send_started_at == clock.now()


def test_enqueue_again_adds_only_subscribers_who_joined_since(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    _enqueue(sessions, settings, clock, delivery_seed)
    with sessions.begin() as session:
        add_subscribers(session, delivery_seed.list_id, 500, 5)
    report = _enqueue(sessions, settings, clock, delivery_seed)
    assert (report.added, report.total) == (5, 35)
    with sessions() as session:
        unbatched = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.batch_id.is_(None))
        )
        batched = session.scalar(select(func.sum(SendBatch.size)))
        members = session.execute(
            select(SendBatch.id, SendBatch.variant, SendBatch.size, Delivery.variant, func.count())
            .join(Delivery, Delivery.batch_id == SendBatch.id)
            .group_by(SendBatch.id, SendBatch.variant, SendBatch.size, Delivery.variant)
        ).all()
    assert unbatched == 0 and batched == 35
    # Each batch holds exactly the recipients it counts, all of its own language.
    assert all(v == dv and size == n for _, v, size, dv, n in members)
    assert len({batch_id for batch_id, *_ in members}) == len(members)


def test_a_claimed_batch_is_not_claimed_twice_until_its_lease_expires(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    _enqueue(sessions, settings, clock, delivery_seed, batch_size=10)
    first = [_claim(sessions, "a", clock) for _ in range(3)]
    assert all(first) and len({b.id for b in first}) == 3
    assert _claim(sessions, "b", clock) is None
    clock.advance(seconds=LEASE_S + 1)
    again = _claim(sessions, "b", clock)
    assert again is not None and again.id == first[0].id


def test_a_worker_that_lost_its_lease_does_not_send(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    _enqueue(sessions, settings, clock, delivery_seed, batch_size=10)
    mine = _claim(sessions, "slow", clock)
    clock.advance(seconds=LEASE_S + 1)
    theirs = _claim(sessions, "fast", clock)
    assert mine is not None and theirs is not None and mine.id == theirs.id
    with sessions() as session:
        assert ledger.prepare_batch(session, mine, "slow", clock, LEASE_S) is None
        assert ledger.prepare_batch(session, theirs, "fast", clock, LEASE_S) is not None


def test_a_batch_left_sending_past_its_lease_becomes_in_doubt_and_is_reported(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    _enqueue(sessions, settings, clock, delivery_seed, batch_size=10)
    batch = _claim(sessions, "dies", clock)
    assert batch is not None
    with sessions() as session:
        assert ledger.prepare_batch(session, batch, "dies", clock, LEASE_S) is not None
    clock.advance(seconds=LEASE_S + 1)
    with sessions() as session:
        assert in_doubt.reap_expired(session, clock) == 1
        status = send_status(session, delivery_seed.issue_id)
    assert status.in_doubt_batches == [batch.id]
    assert status.recipients["in_doubt"] == 10
    assert _claim(sessions, "next", clock).id != batch.id  # never re-sent on its own


def _in_doubt(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> int:
    _enqueue(sessions, settings, clock, delivery_seed, batch_size=10)
    batch = _claim(sessions, "dies", clock)
    with sessions() as session:
        ledger.prepare_batch(session, batch, "dies", clock, LEASE_S)
    clock.advance(seconds=LEASE_S + 1)
    with sessions() as session:
        in_doubt.reap_expired(session, clock)
    return batch.id


def test_resolve_with_resend_queues_in_doubt_recipients_again(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    batch_id = _in_doubt(sessions, settings, clock, delivery_seed)
    with sessions.begin() as session:
        report = in_doubt.resolve_in_doubt(
            session, delivery_seed.issue_id, resend=True, clock=clock
        )
    assert (report.requeued, report.skipped) == (10, 0)
    again = _claim(sessions, "next", clock)
    assert again is not None and again.id == batch_id


def test_resolve_with_skip_marks_in_doubt_recipients_skipped(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    _in_doubt(sessions, settings, clock, delivery_seed)
    with sessions.begin() as session:
        report = in_doubt.resolve_in_doubt(
            session, delivery_seed.issue_id, resend=False, clock=clock
        )
        status = send_status(session, delivery_seed.issue_id)
    assert (report.requeued, report.skipped) == (0, 10)
    assert status.recipients["in_doubt"] == 0 and status.recipients["skipped"] == 10


def test_provider_events_settle_in_doubt_recipients_as_accepted(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    batch_id = _in_doubt(sessions, settings, clock, delivery_seed)
    with sessions.begin() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.batch_id == batch_id)
            .values(last_event="delivered", last_event_at=clock.now())
        )
    with sessions.begin() as session:
        report = in_doubt.resolve_in_doubt(
            session, delivery_seed.issue_id, resend=True, clock=clock
        )
        status = send_status(session, delivery_seed.issue_id)
    assert (report.reconciled, report.requeued) == (10, 0)
    assert status.in_doubt_batches == [] and status.recipients["accepted"] == 10


def test_cancel_stops_queued_recipients_for_good(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    _enqueue(sessions, settings, clock, delivery_seed)
    with sessions.begin() as session:
        cancelled = issue_state.cancel_issue(session, delivery_seed.issue_id, clock)
    assert cancelled == 30
    assert _claim(sessions, "a", clock) is None
    with sessions() as session:
        assert send_status(session, delivery_seed.issue_id).issue_status == "cancelled"


def test_a_paused_issue_has_nothing_to_claim_until_resumed(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    _enqueue(sessions, settings, clock, delivery_seed)
    with sessions.begin() as session:
        issue_state.pause_issue(session, delivery_seed.issue_id, "operator")
    assert _claim(sessions, "a", clock) is None
    with sessions.begin() as session:
        issue_state.resume_issue(session, delivery_seed.issue_id)
    assert _claim(sessions, "a", clock) is not None


def test_a_recipients_outcome_is_shown_with_a_masked_address(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    _enqueue(sessions, settings, clock, delivery_seed)
    with sessions() as session:
        outcome = recipient_status(session, delivery_seed.issue_id, delivery_seed.emails[4].upper())
    assert outcome.status == "queued"
    assert outcome.email == "r***@example.com"
