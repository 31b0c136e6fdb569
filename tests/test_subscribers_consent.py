"""Double opt-in: sign-up, the confirmation email, confirming, and expiry."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import ConsentRecord, Subscription
from newsletter.errors import ProviderError, SuppressedError, TokenError, ValidationError
from subscribers.consent import confirm, expire_pending, start_signup
from subscribers.lists import create_list
from subscribers.service import unsubscribe
from subscribers.suppression import suppress
from tests.fixtures.subscribers import RecordingProvider, subscribe


@pytest.fixture
def engine(subscribers_engine: Engine) -> Engine:
    """This module's database: migrated once, emptied per test (see tests/fixtures)."""
    return subscribers_engine


CONFIRM_LINK = re.compile(r"https://news\.example\.com/confirm/([A-Za-z0-9_.\-]+)")


def _signup(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    provider: RecordingProvider,
    email: str = "new@example.com",
    *,
    language: str = "ja",
    name: str | None = "佐藤 花子",
    list_slug: str = "daily",
) -> None:
    start_signup(
        session,
        settings,
        clock,
        email=email,
        name=name,
        language=language,
        list_slug=list_slug,
        ip="203.0.113.9",
        user_agent="Mozilla/5.0 (test)",
        wording_version="signup-2026-06",
        provider=provider,
    )


def _token(provider: RecordingProvider) -> str:
    match = CONFIRM_LINK.search(provider.sent[-1].message.text)
    assert match, provider.sent[-1].message.text
    return match.group(1)


def test_signup_creates_a_pending_subscription_and_sends_one_transactional_email(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    _signup(sub_session, settings, clock, recording_provider)
    subscription = sub_session.scalar(select(Subscription))
    assert subscription is not None and subscription.status == "pending"
    [sent] = recording_provider.sent
    assert sent.recipient.email == "new@example.com"
    assert sent.message.bulk is False
    assert sent.message.issue_id is None
    assert "登録を確認する" in sent.message.html
    assert "佐藤 花子 様" in sent.message.text
    assert "Confirm my subscription" not in sent.message.html


def test_the_confirmation_email_is_in_english_or_both_languages_as_asked(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    _signup(sub_session, settings, clock, recording_provider, "en@example.com", language="en")
    _signup(sub_session, settings, clock, recording_provider, "bi@example.com", language="both")
    english, both = recording_provider.sent
    assert "Confirm my subscription" in english.message.html
    assert "登録を確認する" not in english.message.html
    assert "please confirm" in english.message.subject
    assert "登録を確認する" in both.message.html and "Confirm my subscription" in both.message.html
    assert "June 20, 2026" in english.message.text  # the link's expiry, in the reader's terms


def test_the_confirmation_email_escapes_the_name_it_shows(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    _signup(
        sub_session,
        settings,
        clock,
        recording_provider,
        name='<script>alert("x")</script>',
    )
    html = recording_provider.sent[0].message.html
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html


def test_confirming_activates_and_records_ip_time_and_wording(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    _signup(sub_session, settings, clock, recording_provider)
    clock.advance(hours=2)
    subscription = confirm(
        sub_session,
        settings,
        clock,
        token=_token(recording_provider),
        ip="203.0.113.10",
        user_agent="Mail app",
    )
    assert subscription.status == "active"
    assert subscription.confirmed_at == clock.now()
    record = sub_session.scalar(select(ConsentRecord).where(ConsentRecord.action == "confirm"))
    assert record is not None
    assert (record.ip, record.wording_version, record.at, record.source) == (
        "203.0.113.10",
        "signup-2026-06",
        clock.now(),
        "web",
    )


def test_confirming_twice_is_harmless(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    _signup(sub_session, settings, clock, recording_provider)
    token = _token(recording_provider)
    confirm(sub_session, settings, clock, token=token, ip=None, user_agent=None)
    again = confirm(sub_session, settings, clock, token=token, ip=None, user_agent=None)
    assert again.status == "active"
    actions = sub_session.scalars(select(ConsentRecord.action)).all()
    assert actions.count("confirm") == 1


def test_a_tampered_token_is_refused(sub_session: Session, settings: Settings, clock) -> None:
    with pytest.raises(TokenError):
        confirm(sub_session, settings, clock, token="abc.def.ghi", ip=None, user_agent=None)


def test_an_active_address_signing_up_again_gets_nothing_and_no_error(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    subscribe(sub_session, settings, clock, "here@example.com", name="Original")
    _signup(sub_session, settings, clock, recording_provider, "Here@Example.com", name="Changed")
    assert recording_provider.sent == []
    subscription = sub_session.scalar(select(Subscription))
    assert subscription is not None and subscription.subscriber.name == "Original"


def test_a_pending_address_signing_up_again_gets_a_fresh_confirmation(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    _signup(sub_session, settings, clock, recording_provider)
    _signup(sub_session, settings, clock, recording_provider)
    assert len(recording_provider.sent) == 2
    assert len(sub_session.scalars(select(Subscription)).all()) == 1


def test_signup_of_an_invalid_address_is_a_validation_error(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    with pytest.raises(ValidationError):
        _signup(sub_session, settings, clock, recording_provider, "no-at-sign")
    assert recording_provider.sent == []


def test_someone_who_unsubscribed_stays_unsubscribed_until_they_confirm_again(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    subscription = subscribe(sub_session, settings, clock, "back@example.com")
    unsubscribe(
        sub_session,
        clock,
        subscriber_id=subscription.subscriber_id,
        list_id=subscription.list_id,
        source="web",
    )
    clock.advance(days=1)
    _signup(sub_session, settings, clock, recording_provider, "back@example.com")
    assert subscription.status == "unsubscribed"
    confirm(
        sub_session, settings, clock, token=_token(recording_provider), ip=None, user_agent=None
    )
    assert subscription.status == "active"


def test_a_confirmation_link_clicked_after_unsubscribing_no_longer_counts(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    _signup(sub_session, settings, clock, recording_provider)
    token = _token(recording_provider)
    subscription = sub_session.scalar(select(Subscription))
    assert subscription is not None
    unsubscribe(
        sub_session,
        clock,
        subscriber_id=subscription.subscriber_id,
        list_id=subscription.list_id,
        source="web",
    )
    with pytest.raises(TokenError, match="no longer valid"):
        confirm(sub_session, settings, clock, token=token, ip=None, user_agent=None)


def test_an_address_suppressed_after_signing_up_cannot_confirm(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    _signup(sub_session, settings, clock, recording_provider)
    suppress(sub_session, clock, email="new@example.com", reason="bounced", source="webhook")
    with pytest.raises(SuppressedError):
        confirm(
            sub_session,
            settings,
            clock,
            token=_token(recording_provider),
            ip=None,
            user_agent=None,
        )


def test_a_single_opt_in_list_activates_without_an_email(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    create_list(sub_session, clock, slug="open", name="Open", double_opt_in=False)
    _signup(sub_session, settings, clock, recording_provider, list_slug="open")
    subscription = sub_session.scalar(select(Subscription))
    assert subscription is not None and subscription.status == "active"
    assert recording_provider.sent == []


def test_a_provider_refusal_is_reported_not_swallowed(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    recording_provider.refuse = "550 no such mailbox"
    with pytest.raises(ProviderError, match="550"):
        _signup(sub_session, settings, clock, recording_provider)


def test_pending_signups_older_than_the_limit_expire(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    _signup(sub_session, settings, clock, recording_provider, "old@example.com")
    clock.advance(days=8)
    _signup(sub_session, settings, clock, recording_provider, "recent@example.com")
    assert expire_pending(sub_session, clock, older_than=timedelta(days=7)) == 1
    statuses = {
        s.subscriber.email: s.status for s in sub_session.scalars(select(Subscription)).all()
    }
    assert statuses == {"old@example.com": "expired", "recent@example.com": "pending"}
    assert expire_pending(sub_session, clock, older_than=timedelta(days=7)) == 0


def test_repermission_mails_each_pending_subscription_and_the_link_activates_it(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    from subscribers.consent import resend_confirmations

    subscribe(sub_session, settings, clock, "p1@example.com", status="pending", language="en")
    subscribe(sub_session, settings, clock, "p2@example.com", status="pending")
    subscribe(sub_session, settings, clock, "active@example.com")
    subscribe(sub_session, settings, clock, "bad@example.com", status="pending")
    suppress(sub_session, clock, email="bad@example.com", reason="manual", source="admin")
    sent = resend_confirmations(
        sub_session, settings, clock, list_slug="daily", provider=recording_provider
    )
    assert sent == 2
    assert sorted(s.recipient.email for s in recording_provider.sent) == [
        "p1@example.com",
        "p2@example.com",
    ]
    first = recording_provider.to("p1@example.com")[0]
    assert "Confirm my subscription" in first.message.html
    token = CONFIRM_LINK.search(first.message.text).group(1)  # type: ignore[union-attr]
    assert confirm(sub_session, settings, clock, token=token, ip=None, user_agent=None).status == (
        "active"
    )


def test_purge_deletes_long_expired_signups_and_orphaned_subscribers(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    from newsletter.db.models import Subscriber
    from subscribers.consent import purge_expired

    _signup(sub_session, settings, clock, recording_provider, "never@example.com")
    subscribe(sub_session, settings, clock, "stays@example.com")
    clock.advance(days=8)
    expire_pending(sub_session, clock, older_than=timedelta(days=7))
    assert purge_expired(sub_session, clock, older_than=timedelta(days=30)) == 0
    clock.advance(days=31)
    assert purge_expired(sub_session, clock, older_than=timedelta(days=30)) == 1
    assert set(sub_session.scalars(select(Subscriber.email))) == {"stays@example.com"}
    orphaned = sub_session.scalars(
        select(ConsentRecord).where(ConsentRecord.subscriber_id.is_(None))
    ).all()
    assert orphaned and all(r.ip is None for r in orphaned)


def test_a_single_opt_in_list_still_asks_someone_who_unsubscribed_to_confirm(
    sub_session: Session, settings: Settings, clock: FixedClock, recording_provider
) -> None:
    create_list(sub_session, clock, slug="open", name="Open", double_opt_in=False)
    subscription = subscribe(sub_session, settings, clock, "left@example.com", list_slug="open")
    unsubscribe(
        sub_session,
        clock,
        subscriber_id=subscription.subscriber_id,
        list_id=subscription.list_id,
        source="web",
    )
    _signup(sub_session, settings, clock, recording_provider, "left@example.com", list_slug="open")
    assert subscription.status == "unsubscribed"
    assert len(recording_provider.sent) == 1
