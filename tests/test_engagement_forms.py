"""Which form of the issue each recipient gets: tracked links or direct ones, and a subject-line
test's arm. Planning and sending, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import SYSTEM_CLOCK
from newsletter.config import Settings
from newsletter.db.models import (
    Delivery,
    Issue,
    IssueVariant,
    MailingList,
    SendBatch,
    SubjectTest,
    Subscriber,
)
from newsletter.delivery.planning import enqueue_issue
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sending import send_issue
from newsletter.engagement.tokens import TrackingSigner
from newsletter.errors import TokenError
from newsletter.providers.base import Batch
from newsletter.testing.memory_provider import MemoryProvider
from newsletter.types import SLOT_TRACKING_TOKEN, VARIANTS
from tests.fixtures.delivery import T0, SeededSend

FAST = SendConfig(batch_size=4, concurrency=2, backoff_base_s=0.01, backoff_max_s=0.02, poll_s=0.01)


def _track(sessions: sessionmaker[Session], seed: SeededSend, *opted_out: str) -> None:
    """Turn the list's click tracking on, store the tracked variants, opt some readers out."""
    with sessions.begin() as session:
        session.execute(
            update(MailingList).where(MailingList.id == seed.list_id).values(click_tracking=True)
        )
        for variant in VARIANTS:
            session.add(
                IssueVariant(
                    issue_id=seed.issue_id,
                    variant=variant,
                    tracked=True,
                    subject=f"AI日報 {variant} tracked",
                    preheader="today",
                    html=f"<a href='https://n.example/c/{SLOT_TRACKING_TOKEN}/1'>{variant}</a>",
                    text=f"https://n.example/c/{SLOT_TRACKING_TOKEN}/1",
                    trimmed=[],
                    rendered_at=T0 + timedelta(minutes=1),
                )
            )
        session.execute(
            update(Subscriber).where(Subscriber.email.in_(opted_out)).values(tracking_off=True)
        )


def _enqueue(sessions: sessionmaker[Session], settings: Settings, seed: SeededSend, **kw):  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        issue = session.get_one(Issue, seed.issue_id)
        return enqueue_issue(session, issue, settings, SYSTEM_CLOCK, batch_size=4, **kw)


def _send(sessions: sessionmaker[Session], settings: Settings, seed: SeededSend) -> list[Batch]:
    batches: list[Batch] = []
    provider = MemoryProvider(rule=lambda b: batches.append(b) or None)
    send_issue(
        sessions, settings, provider, seed.issue_id, SYSTEM_CLOCK, worker_id="t", config=FAST
    )
    assert provider.duplicates == 0
    return batches


def test_a_tracking_list_plans_the_tracked_form_except_for_readers_who_opted_out(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    opted_out = delivery_seed.emails[:3]
    _track(sessions, delivery_seed, *opted_out)
    report = _enqueue(sessions, settings, delivery_seed)
    assert report.total == 30
    with sessions() as session:
        forms = dict(
            session.execute(
                select(Subscriber.email, Delivery.tracked).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            ).all()
        )
        mixed = session.scalar(
            select(func.count(func.distinct(Delivery.tracked)))
            .group_by(Delivery.batch_id)
            .order_by(func.count(func.distinct(Delivery.tracked)).desc())
            .limit(1)
        )
        wrong_form = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .join(SendBatch, Delivery.batch_id == SendBatch.id)
            .where(SendBatch.tracked != Delivery.tracked)
        )
    assert {e for e, tracked in forms.items() if not tracked} == set(opted_out)
    assert mixed == 1  # a batch never mixes tracked and direct links
    assert wrong_form == 0  # the batch says the form its deliveries get


def test_a_list_without_tracking_plans_everyone_untracked(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    _enqueue(sessions, settings, delivery_seed)
    with sessions() as session:
        assert session.scalar(select(func.count()).where(Delivery.tracked.is_(True))) == 0
        assert session.scalar(select(func.count()).where(SendBatch.tracked.is_(True))) == 0


def test_tracked_recipients_carry_a_signed_token_of_their_own_delivery(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    opted_out = delivery_seed.emails[:2]
    _track(sessions, delivery_seed, *opted_out)
    batches = _send(sessions, settings, delivery_seed)
    signer = TrackingSigner(settings)
    seen = 0
    for batch in batches:
        for r in batch.recipients:
            seen += 1
            if r.email in opted_out:
                assert not batch.message.tracked and r.tracking_token == ""
                assert SLOT_TRACKING_TOKEN not in batch.message.html
            else:
                assert batch.message.tracked
                assert signer.verify(r.tracking_token) == r.delivery_id
    assert seen == 30


def test_the_tracking_token_refuses_tampering_and_survives_key_rotation(
    settings: Settings,
) -> None:
    from dataclasses import replace

    from newsletter.config import Secret

    signer = TrackingSigner(settings)
    token = signer.token(12345)
    value, _, signature = token.partition(".")
    for forged in (f"{12346:x}.{signature}", f"{value}.{signature[:-1]}A", value, "", "x.y"):
        with pytest.raises(TokenError):
            signer.verify(forged)
    rotated = replace(
        settings, secret_keys=(Secret("a-new-key-" + "k" * 32), *settings.secret_keys)
    )
    assert TrackingSigner(rotated).verify(token) == 12345
    assert TrackingSigner(rotated).token(12345) != token


def test_a_subject_test_arm_sends_the_arms_subject(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    with sessions.begin() as session:
        session.add(
            SubjectTest(
                issue_id=delivery_seed.issue_id,
                subjects={
                    "ja": ["件名A", "件名B"],
                    "en": ["Subject A", "Subject B"],
                    "variants": {v: [f"{v} A", f"{v} B"] for v in VARIANTS},
                },
                sample_percent=20,
                wait_seconds=0,
                metric="clicks",
                status="decided",
                created_by="test",
                created_at=T0,
                winner_arm=1,
            )
        )
    _enqueue(sessions, settings, delivery_seed, subject_arm=1)
    batches = _send(sessions, settings, delivery_seed)
    assert {b.message.subject for b in batches} == {f"{v} B" for v in ("ja", "en", "both")}
