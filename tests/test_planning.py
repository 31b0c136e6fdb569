"""How planning cuts an issue's audience into batches, on SQLite and PostgreSQL.

SQLite numbers each form's rows with counters as it inserts them, PostgreSQL numbers them
with a window function afterwards: the plans must be the same.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import Delivery, Issue, SendBatch, Subscriber
from newsletter.delivery.planning import EnqueueReport, enqueue_issue
from tests.fixtures.delivery import SeededSend, add_subscribers, suppress


def _enqueue(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, seed: SeededSend
) -> EnqueueReport:
    with sessions.begin() as session:
        issue = session.get_one(Issue, seed.issue_id)
        return enqueue_issue(session, issue, settings, clock, batch_size=4)


def _batches(sessions: sessionmaker[Session]) -> dict[int, tuple[str, int, list[int]]]:
    """batch id -> (variant, size, its subscribers by id)."""
    with sessions() as session:
        batches = {
            b.id: (b.variant, b.size, [])
            for b in session.scalars(select(SendBatch).order_by(SendBatch.id))
        }
        for batch_id, subscriber_id in session.execute(
            select(Delivery.batch_id, Delivery.subscriber_id).order_by(Delivery.subscriber_id)
        ):
            batches[batch_id][2].append(subscriber_id)
    return batches


def _by_language(sessions: sessionmaker[Session]) -> dict[str, list[int]]:
    with sessions() as session:
        found: dict[str, list[int]] = defaultdict(list)
        for subscriber_id, language in session.execute(
            select(Subscriber.id, Subscriber.language).order_by(Subscriber.id)
        ):
            found[language].append(subscriber_id)
    return found


def test_each_batch_is_the_next_run_of_its_variants_subscribers_by_id(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    suppress(sessions, delivery_seed.emails[4])  # the run of its language closes the gap
    _enqueue(sessions, settings, clock, delivery_seed)
    with sessions() as session:
        suppressed = session.scalar(
            select(Subscriber.id).where(Subscriber.email == delivery_seed.emails[4])
        )
    expected = {
        language: [s for s in ids if s != suppressed]
        for language, ids in _by_language(sessions).items()
    }
    planned: dict[str, list[list[int]]] = defaultdict(list)
    for variant, size, members in _batches(sessions).values():
        assert size == len(members)
        planned[variant].append(members)
    for variant, runs in planned.items():
        runs.sort()
        ids = expected[variant]
        assert runs == [ids[i : i + 4] for i in range(0, len(ids), 4)]
    assert set(planned) == {"ja", "en", "both"}


def test_planning_again_puts_only_newcomers_in_new_batches_after_the_old_ones(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    _enqueue(sessions, settings, clock, delivery_seed)
    first = _batches(sessions)
    with sessions.begin() as session:
        newcomers = add_subscribers(session, delivery_seed.list_id, 500, 6)
    report = _enqueue(sessions, settings, clock, delivery_seed)
    after = _batches(sessions)
    new = {b: after[b] for b in after.keys() - first.keys()}
    assert (report.added, report.batches, report.total) == (6, 3, 36)
    assert {b: after[b] for b in first} == first
    assert min(new) > max(first)
    assert sorted((variant, size) for variant, size, _ in new.values()) == [
        ("both", 2),
        ("en", 2),
        ("ja", 2),
    ]
    with sessions() as session:
        newcomer_ids = set(
            session.scalars(select(Subscriber.id).where(Subscriber.email.in_(newcomers)))
        )
    assert {s for _, _, members in new.values() for s in members} == newcomer_ids
