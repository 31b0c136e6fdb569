"""The right to be forgotten and the right of access."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import (
    Article,
    ClickEvent,
    ConsentRecord,
    Event,
    Issue,
    IssueLink,
    OpenEvent,
    Subscriber,
    Suppression,
)
from newsletter.errors import SuppressedError
from subscribers.erasure import erase, export_personal_data
from subscribers.hashing import EmailHasher
from subscribers.importing import import_csv
from subscribers.service import add_subscriber
from subscribers.suppression import is_suppressed
from tests.fixtures.events import ARTICLE_URL, add_click, add_link, add_open
from tests.fixtures.subscribers import subscribe
from tests.fixtures.web import add_delivery, add_issue


@pytest.fixture
def engine(subscribers_engine: Engine) -> Engine:
    """This module's database: migrated once, emptied per test (see tests/fixtures)."""
    return subscribers_engine


def _event(session: Session, clock: FixedClock, email: str, subscriber_id: int | None) -> None:
    session.add(
        Event(
            provider="sendgrid",
            event_id=f"ev-{email}",
            type="open",
            subscriber_id=subscriber_id,
            email_hash=EmailHasher.load(session)(email),
            occurred_at=clock.now(),
            received_at=clock.now(),
            payload={"email": email, "event": "open", "ip": "192.0.2.44", "sg_event_id": "x1"},
        )
    )
    session.flush()


def test_erase_removes_the_person_and_keeps_only_a_suppression_hash(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    subscription = subscribe(sub_session, settings, clock, "forget.me@example.com", name="Me")
    _event(sub_session, clock, "forget.me@example.com", subscription.subscriber_id)
    clock.advance(minutes=5)
    assert erase(sub_session, clock, email="Forget.Me@example.com") is True
    assert sub_session.scalars(select(Subscriber)).all() == []
    records = sub_session.scalars(select(ConsentRecord)).all()
    assert records and all(r.subscriber_id is None and r.ip is None for r in records)
    event = sub_session.scalar(select(Event))
    assert event is not None
    assert event.payload == {"event": "open", "sg_event_id": "x1"}
    assert event.subscriber_id is None
    [suppression] = sub_session.scalars(select(Suppression)).all()
    assert suppression.reason == "erased"
    assert "forget" not in suppression.email_hash


def test_an_erased_address_is_never_added_or_imported_again(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, tmp_path
) -> None:
    with sessions() as session, session.begin():
        subscribe(session, settings, clock, "gone@example.com")
        erase(session, clock, email="gone@example.com")
    with sessions() as session:
        assert is_suppressed(session, "GONE@example.com")
        with pytest.raises(SuppressedError):
            add_subscriber(session, settings, clock, email="gone@example.com")
    source = tmp_path / "again.csv"
    source.write_text("email\ngone@example.com\n", encoding="utf-8")
    assert import_csv(sessions, clock, source).suppressed == 1


def test_erasing_an_unknown_address_still_suppresses_it(
    sub_session: Session, clock: FixedClock
) -> None:
    assert erase(sub_session, clock, email="never.here@example.com") is False
    assert is_suppressed(sub_session, "never.here@example.com")


def test_export_personal_data_gives_everything_stored_about_one_person(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    subscription = subscribe(sub_session, settings, clock, "me@example.com", name="私")
    subscription.subscriber.attributes = {"会社": "例示"}
    _event(sub_session, clock, "me@example.com", subscription.subscriber_id)
    clock.advance(days=1)
    data = export_personal_data(sub_session, email="ME@example.com")
    assert data["found"] is True
    assert data["email"] == "me@example.com"
    assert data["subscriber"]["name"] == "私"
    assert data["subscriber"]["attributes"] == {"会社": "例示"}
    assert [s["status"] for s in data["subscriptions"]] == ["active"]
    assert [c["action"] for c in data["consent"]] == ["subscribe_active"]
    assert data["events"][0]["payload"]["email"] == "me@example.com"
    assert data["suppression"] is None


def test_export_personal_data_for_an_unknown_address_says_so(sub_session: Session) -> None:
    data = export_personal_data(sub_session, email="nobody@example.com")
    assert data == {"email": "nobody@example.com", "found": False, "suppression": None}


# --- engagement events: erased with the person, exported to them ------------------------------


def _engaged(session: Session, settings: Settings, clock: FixedClock, email: str) -> int:
    """A subscriber with a delivery of a sent issue, one click on an article link and one open;
    returns the issue id."""
    subscription = subscribe(session, settings, clock, email)
    issue_id = session.scalar(select(Issue.id).where(Issue.list_id == subscription.list_id))
    if issue_id is None:
        issue_id = add_issue(session, clock, subscription.list_id, variants=False)
        article = Article(
            external_id="2026-06-12-openai-o5",
            url="https://example.com/o5",
            published_at=clock.now(),
            content_hash="0" * 64,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(article)
        session.flush()
        add_link(session, issue_id, 1, ARTICLE_URL, article_id=article.id, position=1)
    delivery_id = add_delivery(session, clock, issue_id, subscription.subscriber_id)
    article_id = session.scalar(select(IssueLink.article_id).where(IssueLink.link_no == 1))
    ids = (issue_id, subscription.subscriber_id, delivery_id)
    add_click(session, *ids, clock.now(), article_id=article_id)
    add_open(session, *ids, clock.now())
    return issue_id


def test_erase_deletes_the_persons_clicks_and_opens_and_no_one_elses(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    _engaged(sub_session, settings, clock, "forget.me@example.com")
    _engaged(sub_session, settings, clock, "stay@example.com")
    assert erase(sub_session, clock, email="forget.me@example.com") is True
    stay = sub_session.scalar(select(Subscriber.id).where(Subscriber.email == "stay@example.com"))
    assert sub_session.scalars(select(ClickEvent.subscriber_id)).all() == [stay]
    assert sub_session.scalars(select(OpenEvent.subscriber_id)).all() == [stay]


def test_export_personal_data_includes_the_persons_clicks_and_opens(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    _engaged(sub_session, settings, clock, "me@example.com")
    data = export_personal_data(sub_session, email="me@example.com")
    assert data["clicks"] == [
        {
            "list": "daily",
            "issue_date": "2026-06-13",
            "link": 1,
            "kind": "article",
            "position": 1,
            "article": "2026-06-12-openai-o5",
            "url": ARTICLE_URL,
            "at": clock.now().isoformat(),
            "machine": False,
            "reason": None,
        }
    ]
    assert data["opens"] == [
        {
            "list": "daily",
            "issue_date": "2026-06-13",
            "variant": "ja",
            "at": clock.now().isoformat(),
            "source": "reader",
        }
    ]
