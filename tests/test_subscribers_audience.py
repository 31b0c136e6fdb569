"""No code path can mail a suppressed or unsubscribed address: the audience contract."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, literal, select
from sqlalchemy.orm import Session

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import Subscriber
from newsletter.types import SubscriptionStatus
from subscribers.audience import (
    eligible_recipients,
    is_mailable_address,
    mailable,
    still_eligible,
)
from subscribers.consent import start_signup
from subscribers.hashing import EmailHasher
from subscribers.importing import import_csv
from subscribers.service import unsubscribe
from subscribers.suppression import suppress
from tests.fixtures.subscribers import RecordingProvider, subscribe


@pytest.fixture
def engine(subscribers_engine: Engine) -> Engine:
    """This module's database: migrated once, emptied per test (see tests/fixtures)."""
    return subscribers_engine


def _eligible_emails(session: Session, list_id: int) -> set[str]:
    return {row.email for row in session.execute(eligible_recipients(list_id))}


def _mailable_expr(session: Session, list_id: int, subscriber_id: int) -> bool:
    """The SQL-expression form of the rule, alone and as the sender's batch load uses it (over
    the joined subscriber row's hash); both forms must say the same."""
    alone = bool(session.scalar(select(mailable(literal(subscriber_id), list_id))))
    joined = session.scalar(
        select(mailable(Subscriber.id, list_id, Subscriber.email_hash)).where(
            Subscriber.id == subscriber_id
        )
    )
    assert alone == bool(joined), "the joined form of the rule disagrees with the plain one"
    return alone


@pytest.mark.parametrize("status", [s.value for s in SubscriptionStatus])
def test_only_active_subscriptions_are_eligible(
    sub_session: Session, settings: Settings, clock: FixedClock, status: str
) -> None:
    subscription = subscribe(sub_session, settings, clock, "person@example.com", status=status)
    eligible = _eligible_emails(sub_session, subscription.list_id)
    still = still_eligible(sub_session, subscription.list_id, [subscription.subscriber_id])
    expr = _mailable_expr(sub_session, subscription.list_id, subscription.subscriber_id)
    if status == SubscriptionStatus.ACTIVE:
        assert eligible == {"person@example.com"}
        assert still == {subscription.subscriber_id}
        assert expr
    else:
        assert eligible == set()
        assert still == set()
        assert not expr


@pytest.mark.parametrize("reason", ["bounced", "complained", "unsubscribed", "manual", "erased"])
def test_an_address_suppressed_by_hash_alone_is_never_eligible(
    sub_session: Session, settings: Settings, clock: FixedClock, reason: str
) -> None:
    subscription = subscribe(sub_session, settings, clock, "Hash.Only@Example.com")
    email_hash = EmailHasher.load(sub_session)("hash.only@example.com")
    suppress(sub_session, clock, email_hash=email_hash, reason=reason, source="webhook")
    assert _eligible_emails(sub_session, subscription.list_id) == set()
    assert still_eligible(sub_session, subscription.list_id, [subscription.subscriber_id]) == set()
    assert not _mailable_expr(sub_session, subscription.list_id, subscription.subscriber_id)
    assert not is_mailable_address(sub_session, email_hash)


def test_an_unsubscribe_during_a_send_removes_the_person_from_the_next_batch(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    first = subscribe(sub_session, settings, clock, "a@example.com")
    second = subscribe(sub_session, settings, clock, "b@example.com")
    batch = [first.subscriber_id, second.subscriber_id]
    assert still_eligible(sub_session, first.list_id, batch) == set(batch)
    unsubscribe(
        sub_session, clock, subscriber_id=first.subscriber_id, list_id=first.list_id, source="web"
    )
    assert still_eligible(sub_session, first.list_id, batch) == {second.subscriber_id}


def test_transactional_mail_is_allowed_only_for_unsuppressed_addresses(
    sub_session: Session, clock: FixedClock
) -> None:
    hasher = EmailHasher.load(sub_session)
    suppress(sub_session, clock, email="gone@example.com", reason="bounced", source="admin")
    assert not is_mailable_address(sub_session, hasher("gone@example.com"))
    assert is_mailable_address(sub_session, hasher("fine@example.com"))


def test_a_suppressed_address_gets_no_confirmation_email(
    sub_session: Session,
    settings: Settings,
    clock: FixedClock,
    recording_provider: RecordingProvider,
) -> None:
    suppress(sub_session, clock, email="blocked@example.com", reason="complained", source="x")
    start_signup(
        sub_session,
        settings,
        clock,
        email="Blocked@example.com",
        name=None,
        language="ja",
        list_slug="daily",
        ip="192.0.2.1",
        user_agent="test",
        wording_version="v1",
        provider=recording_provider,
    )
    assert recording_provider.sent == []


def test_reimporting_an_unsubscribed_address_does_not_make_it_eligible(
    sub_session: Session, sessions, settings: Settings, clock: FixedClock, tmp_path
) -> None:
    subscription = subscribe(sub_session, settings, clock, "left@example.com")
    unsubscribe(
        sub_session,
        clock,
        subscriber_id=subscription.subscriber_id,
        list_id=subscription.list_id,
        source="web",
    )
    sub_session.commit()
    csv_file = tmp_path / "again.csv"
    csv_file.write_text("email\nLEFT@example.com\n", encoding="utf-8")
    summary = import_csv(sessions, clock, csv_file)
    assert summary.not_reactivated == 1
    sub_session.expire_all()
    assert _eligible_emails(sub_session, subscription.list_id) == set()
