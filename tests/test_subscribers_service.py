"""Adding, showing, listing, unsubscribing, suppressing and removing subscribers."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import ConsentRecord, Subscriber, Subscription
from newsletter.errors import NotFoundError, StateError, SuppressedError, ValidationError
from subscribers.lists import create_list, list_summaries
from subscribers.service import (
    add_subscriber,
    iter_subscriptions,
    remove_subscriber,
    set_preferences,
    show_subscriber,
    subscriber_stats,
    unsubscribe,
    unsubscribe_by_email,
)
from subscribers.suppression import is_suppressed, suppress, unsuppress
from tests.fixtures.subscribers import subscribe


@pytest.fixture
def engine(subscribers_engine: Engine) -> Engine:
    """This module's database: migrated once, emptied per test (see tests/fixtures)."""
    return subscribers_engine


def _actions(session: Session, subscriber_id: int) -> list[str]:
    return list(
        session.scalars(
            select(ConsentRecord.action)
            .where(ConsentRecord.subscriber_id == subscriber_id)
            .order_by(ConsentRecord.id)
        )
    )


def test_add_normalises_the_address_and_records_consent(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    subscription = add_subscriber(
        sub_session, settings, clock, email="  Taro.Yamada@EXAMPLE.jp ", name="山田 太郎"
    )
    subscriber = subscription.subscriber
    assert subscriber.email == "Taro.Yamada@example.jp"
    assert subscriber.email_key == "taro.yamada@example.jp"
    assert subscription.status == "active"
    assert subscription.confirmed_at == clock.now()
    record = sub_session.scalar(select(ConsentRecord))
    assert record is not None
    assert (record.action, record.source, record.at) == ("subscribe_active", "admin", clock.now())


def test_adding_the_same_address_in_another_case_does_not_create_a_second_subscriber(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    add_subscriber(sub_session, settings, clock, email="hanako@example.com")
    add_subscriber(sub_session, settings, clock, email="HANAKO@Example.com", language="en")
    subscribers = sub_session.scalars(select(Subscriber)).all()
    assert len(subscribers) == 1
    assert subscribers[0].language == "en"


def test_add_accepts_an_internationalised_domain(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    subscription = add_subscriber(sub_session, settings, clock, email="info@例え.jp")
    assert subscription.subscriber.email == "info@例え.jp"


def test_add_refuses_an_invalid_address_with_the_reason(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    with pytest.raises(ValidationError, match="@-sign"):
        add_subscriber(sub_session, settings, clock, email="not-an-address")


def test_add_refuses_an_unknown_language(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    with pytest.raises(ValidationError, match="language"):
        add_subscriber(sub_session, settings, clock, email="a@example.com", language="fr")


def test_add_refuses_a_suppressed_address(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    suppress(sub_session, clock, email="bounce@example.com", reason="bounced", source="webhook")
    with pytest.raises(SuppressedError):
        add_subscriber(sub_session, settings, clock, email="Bounce@Example.com")


def test_add_does_not_resubscribe_someone_who_unsubscribed(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    subscribe(sub_session, settings, clock, "left@example.com", status="unsubscribed")
    with pytest.raises(StateError, match="only the person"):
        add_subscriber(sub_session, settings, clock, email="left@example.com")


def test_add_to_an_unknown_list_names_the_list(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    with pytest.raises(NotFoundError, match="weekly"):
        add_subscriber(sub_session, settings, clock, email="a@example.com", list_slug="weekly")


def test_unsubscribe_is_idempotent_and_recorded_once(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    subscription = subscribe(sub_session, settings, clock, "bye@example.com")
    ids = {"subscriber_id": subscription.subscriber_id, "list_id": subscription.list_id}
    assert unsubscribe(sub_session, clock, **ids, source="web", ip="198.51.100.7") is True
    assert unsubscribe(sub_session, clock, **ids, source="web") is False
    assert subscription.status == "unsubscribed"
    assert subscription.unsubscribed_at == clock.now()
    assert _actions(sub_session, subscription.subscriber_id).count("unsubscribe") == 1


def test_unsubscribe_from_one_list_keeps_the_others(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    create_list(sub_session, clock, slug="weekly", name="Weekly")
    subscribe(sub_session, settings, clock, "two@example.com")
    subscribe(sub_session, settings, clock, "two@example.com", list_slug="weekly")
    ended = unsubscribe_by_email(
        sub_session, clock, email="two@example.com", list_slug="weekly", source="admin"
    )
    assert ended == 1
    statuses = {s["list"]: s["status"] for s in iter_subscriptions(sub_session)}
    assert statuses == {"daily": "active", "weekly": "unsubscribed"}
    assert not is_suppressed(sub_session, "two@example.com")


def test_unsubscribe_by_email_of_an_unknown_address_reveals_nothing(
    sub_session: Session, clock: FixedClock
) -> None:
    assert unsubscribe_by_email(sub_session, clock, email="who@example.com", source="email") == 0


@pytest.mark.parametrize(
    ("reason", "status"),
    [("bounced", "bounced"), ("complained", "complained"), ("manual", "unsubscribed")],
)
def test_suppression_moves_every_live_subscription_to_the_matching_status(
    sub_session: Session, settings: Settings, clock: FixedClock, reason: str, status: str
) -> None:
    create_list(sub_session, clock, slug="weekly", name="Weekly")
    subscribe(sub_session, settings, clock, "s@example.com")
    subscribe(sub_session, settings, clock, "s@example.com", list_slug="weekly", status="pending")
    assert suppress(sub_session, clock, email="S@example.com", reason=reason, source="admin")
    assert {s.status for s in sub_session.scalars(select(Subscription))} == {status}
    assert is_suppressed(sub_session, "s@example.com")


def test_suppressing_twice_reports_the_second_time_as_not_new(
    sub_session: Session, clock: FixedClock
) -> None:
    assert suppress(sub_session, clock, email="x@example.com", reason="manual", source="a")
    assert not suppress(sub_session, clock, email="x@example.com", reason="bounced", source="a")


def test_an_unknown_suppression_reason_is_refused(sub_session: Session, clock: FixedClock) -> None:
    with pytest.raises(ValidationError, match="expected one of"):
        suppress(sub_session, clock, email="x@example.com", reason="angry", source="a")


def test_only_a_manual_suppression_can_be_lifted(sub_session: Session, clock: FixedClock) -> None:
    suppress(sub_session, clock, email="m@example.com", reason="manual", source="admin")
    suppress(sub_session, clock, email="b@example.com", reason="bounced", source="webhook")
    assert unsuppress(sub_session, email="m@example.com")
    assert not is_suppressed(sub_session, "m@example.com")
    with pytest.raises(ValidationError, match="bounced"):
        unsuppress(sub_session, email="b@example.com")


def test_preferences_change_language_and_lists(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    weekly = create_list(sub_session, clock, slug="weekly", name="Weekly")
    daily_sub = subscribe(sub_session, settings, clock, "p@example.com")
    set_preferences(
        sub_session,
        clock,
        subscriber_id=daily_sub.subscriber_id,
        language="both",
        list_ids=[weekly.id],
    )
    data = show_subscriber(sub_session, email="p@example.com")
    assert data["language"] == "both"
    assert {s["list"]: s["status"] for s in data["subscriptions"]} == {
        "daily": "unsubscribed",
        "weekly": "active",
    }


def test_preferences_cannot_reactivate_a_suppressed_address(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    subscription = subscribe(sub_session, settings, clock, "sp@example.com")
    suppress(sub_session, clock, email="sp@example.com", reason="complained", source="webhook")
    with pytest.raises(SuppressedError):
        set_preferences(
            sub_session,
            clock,
            subscriber_id=subscription.subscriber_id,
            language="ja",
            list_ids=[subscription.list_id],
        )


def test_remove_deletes_live_subscriptions_but_keeps_opt_out_records(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    create_list(sub_session, clock, slug="weekly", name="Weekly")
    subscribe(sub_session, settings, clock, "r@example.com")
    subscribe(sub_session, settings, clock, "r@example.com", list_slug="weekly")
    unsubscribe_by_email(
        sub_session, clock, email="r@example.com", list_slug="weekly", source="web"
    )
    assert remove_subscriber(sub_session, email="r@example.com") == 1
    remaining = [s["status"] for s in iter_subscriptions(sub_session)]
    assert remaining == ["unsubscribed"]


def test_remove_of_an_unknown_address_is_a_not_found_error(sub_session: Session) -> None:
    with pytest.raises(NotFoundError):
        remove_subscriber(sub_session, email="nobody@example.com")


def test_stats_count_statuses_and_active_languages(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    subscribe(sub_session, settings, clock, "ja@example.com", language="ja")
    subscribe(sub_session, settings, clock, "en@example.com", language="en")
    subscribe(sub_session, settings, clock, "both@example.com", language="both")
    subscribe(sub_session, settings, clock, "p@example.com", status="pending", language="en")
    subscribe(sub_session, settings, clock, "u@example.com", status="unsubscribed")
    stats = subscriber_stats(sub_session, list_slug="daily")
    assert stats["total"] == 5
    assert stats["status"]["active"] == 3
    assert stats["status"]["pending"] == 1
    assert stats["status"]["unsubscribed"] == 1
    assert stats["active_by_language"] == {"ja": 1, "en": 1, "both": 1}


def test_list_filters_by_status(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    subscribe(sub_session, settings, clock, "a@example.com")
    subscribe(sub_session, settings, clock, "b@example.com", status="pending")
    pending = [row["email"] for row in iter_subscriptions(sub_session, status="pending")]
    assert pending == ["b@example.com"]


def test_lists_are_created_with_validated_schedule(sub_session: Session, clock: FixedClock) -> None:
    create_list(
        sub_session, clock, slug="en-weekly", name="Weekly", timezone="UTC", send_time="08:30"
    )
    with pytest.raises(ValidationError, match="time zone"):
        create_list(sub_session, clock, slug="x", name="X", timezone="Mars/Base")
    with pytest.raises(ValidationError, match="HH:MM"):
        create_list(sub_session, clock, slug="y", name="Y", send_time="25:00")
    with pytest.raises(StateError, match="already exists"):
        create_list(sub_session, clock, slug="en-weekly", name="Again")
    [summary] = list_summaries(sub_session)
    assert (summary["slug"], summary["send_time"], summary["timezone"]) == (
        "en-weekly",
        "08:30",
        "UTC",
    )


def test_the_unsubscribe_link_token_ends_exactly_its_list(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    from newsletter.errors import TokenError
    from subscribers.service import unsubscribe_with_token
    from subscribers.tokens import LinkSigner

    create_list(sub_session, clock, slug="weekly", name="Weekly")
    daily = subscribe(sub_session, settings, clock, "t@example.com")
    weekly = subscribe(sub_session, settings, clock, "t@example.com", list_slug="weekly")
    token = LinkSigner(settings).token(weekly.subscriber_id, weekly.list_id)
    assert unsubscribe_with_token(sub_session, settings, clock, token=token) is True
    assert unsubscribe_with_token(sub_session, settings, clock, token=token) is False
    assert (daily.status, weekly.status) == ("active", "unsubscribed")
    with pytest.raises(TokenError):
        unsubscribe_with_token(sub_session, settings, clock, token=token[:-2] + "xx")


@pytest.mark.parametrize("name", ["Eve\x00", "Eve\x1b[31m", "x" * 201])
def test_a_name_with_control_characters_or_too_long_is_refused_naming_the_field(
    sessions,
    settings,
    clock,
    name: str,  # type: ignore[no-untyped-def]
) -> None:
    from subscribers.service import add_subscriber

    with sessions() as session, pytest.raises(ValidationError, match="^name: "):
        add_subscriber(session, settings, clock, email="eve@example.com", name=name)
