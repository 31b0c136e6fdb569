"""record_events on its own: effects that need more than one event, and concurrent redelivery."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from newsletter.config import Secret, load_settings
from newsletter.db.models import ConsentRecord, Event, Subscription, Suppression
from newsletter.db.session import transaction
from newsletter.runtime import Runtime
from newsletter.webhooks import sendgrid
from newsletter.webhooks.recording import record_events
from subscribers.hashing import EmailHasher
from tests.fixtures.web import (
    Seeded,
    add_delivery,
    add_issue,
    add_list,
    add_subscriber,
    sendgrid_event,
)


def _record(runtime: Runtime, events: list[dict]) -> dict:
    parsed = [sendgrid.parse_event(e) for e in events]
    with transaction(runtime.sessions) as session:
        return record_events(
            session, parsed, received_at=runtime.clock.now(), hash_email=EmailHasher.load(session)
        ).as_dict()


def test_a_bounce_for_an_unknown_address_is_still_suppressed(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    event = sendgrid_event("bounce", web_seed, clock.now(), type="bounce", email="gone@example.org")
    del event["subscriber_id"], event["delivery_id"]
    assert _record(web_runtime, [event])["suppressed"] == 1
    with web_runtime.sessions() as session:
        hashed = EmailHasher.load(session)("GONE@example.org")
        assert session.scalar(select(Suppression.email_hash)) == hashed


def test_an_event_without_an_address_is_matched_through_its_subscriber(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    event = sendgrid_event("spamreport", web_seed, clock.now())
    del event["email"]
    assert _record(web_runtime, [event])["complained"] == 1
    with web_runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1


def test_a_complaint_in_the_same_batch_as_a_bounce_wins(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    at = clock.now()
    _record(
        web_runtime,
        [
            sendgrid_event("bounce", web_seed, at, type="bounce"),
            sendgrid_event("spamreport", web_seed, at + timedelta(seconds=1)),
        ],
    )
    with web_runtime.sessions() as session:
        assert session.scalar(select(Suppression.reason)) == "complained"
        assert session.scalar(select(Subscription.status)) == "complained"


def test_a_suppression_ends_every_live_subscription_of_the_address(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    with transaction(web_runtime.sessions) as session:
        weekly = add_list(session, clock, "weekly", "AI週報")
        session.add(
            Subscription(
                subscriber_id=web_seed.subscriber_id,
                list_id=weekly,
                status="active",
                source="admin",
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    _record(web_runtime, [sendgrid_event("bounce", web_seed, clock.now(), type="bounce")])
    with web_runtime.sessions() as session:
        assert set(session.scalars(select(Subscription.status))) == {"bounced"}
        actions = session.scalars(select(ConsentRecord.action)).all()
    assert actions == ["suppress", "suppress"]


def test_an_unsubscribe_touches_only_the_issue_list(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    with transaction(web_runtime.sessions) as session:
        weekly = add_list(session, clock, "weekly", "AI週報")
        other = add_subscriber(session, clock, "other@example.jp", weekly)
        session.add(
            Subscription(
                subscriber_id=web_seed.subscriber_id,
                list_id=weekly,
                status="active",
                source="admin",
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    _record(web_runtime, [sendgrid_event("unsubscribe", web_seed, clock.now())])
    with web_runtime.sessions() as session:
        rows = dict(
            (row[0], row[1])
            for row in session.execute(
                select(Subscription.list_id, Subscription.status).where(
                    Subscription.subscriber_id == web_seed.subscriber_id
                )
            )
        )
        assert rows == {web_seed.list_id: "unsubscribed", weekly: "active"}
        other_status = session.scalar(
            select(Subscription.status).where(Subscription.subscriber_id == other.id)
        )
    assert other_status == "active"  # another reader of that list is untouched


@pytest.mark.postgres
def test_two_concurrent_redeliveries_store_each_event_once(
    postgres_schema_url: str, tmp_path, clock
) -> None:
    """The second writer waits on the first one's row, then skips it (ON CONFLICT DO NOTHING)."""
    settings = load_settings(
        {},
        database_url=postgres_schema_url,
        var_dir=tmp_path / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
    )
    runtime = Runtime.open(settings, migrate=True, clock=clock)
    with transaction(runtime.sessions) as session:
        list_id = add_list(session, clock)
        subscriber = add_subscriber(session, clock, "reader@example.jp", list_id)
        issue_id = add_issue(session, clock, list_id)
        delivery_id = add_delivery(session, clock, issue_id, subscriber.id)
    web_seed = Seeded(list_id, subscriber.id, subscriber.email, issue_id, delivery_id)
    events = [sendgrid.parse_event(sendgrid_event("open", web_seed, clock.now()))]
    first = runtime.sessions()
    result_first = record_events(
        first, events, received_at=clock.now(), hash_email=EmailHasher.load(first)
    )
    first.flush()
    second_result: dict = {}

    def redeliver() -> None:
        with transaction(runtime.sessions) as session:
            outcome = record_events(
                session, events, received_at=clock.now(), hash_email=EmailHasher.load(session)
            )
            second_result.update(outcome.as_dict())

    thread = threading.Thread(target=redeliver)
    thread.start()
    thread.join(timeout=1)
    assert thread.is_alive()  # waits on the first transaction's row
    first.commit()
    first.close()
    thread.join(timeout=10)
    assert result_first.stored == 1 and second_result["stored"] == 0
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1
    runtime.close()


def _blocked(seed: Seeded, at, n: int) -> dict:
    return sendgrid_event("bounce", seed, at, type="blocked", sg_event_id=f"blocked-{n}")


def test_a_blocked_bounce_is_a_soft_bounce_and_changes_nothing_alone(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    assert _record(web_runtime, [_blocked(web_seed, clock.now(), 1)])["suppressed"] == 0
    with web_runtime.sessions() as session:
        assert session.scalar(select(Subscription.status)) == "active"


def test_blocked_bounces_on_three_days_suppress_as_bounced(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    for day in range(3):
        _record(web_runtime, [_blocked(web_seed, clock.now(), day)])
        clock.advance(days=1)
    with web_runtime.sessions() as session:
        assert session.scalar(select(Suppression.reason)) == "bounced"
        assert session.scalar(select(Subscription.status)) == "bounced"


def test_a_delivery_between_soft_bounces_starts_the_count_again(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    for day in range(4):
        _record(web_runtime, [_blocked(web_seed, clock.now(), day)])
        if day == 1:
            delivered = sendgrid_event("delivered", web_seed, clock.now(), sg_event_id="ok")
            _record(web_runtime, [delivered])
        clock.advance(days=1)
    with web_runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_soft_bounces_older_than_thirty_days_do_not_count(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    for day in range(3):
        _record(web_runtime, [_blocked(web_seed, clock.now(), day)])
        clock.advance(days=20)
    with web_runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0
