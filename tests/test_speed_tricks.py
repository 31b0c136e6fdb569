"""Speed tricks held equal to the plain code they replace (the index: docs/architecture.md)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select, text, update

from newsletter.clock import FixedClock
from newsletter.config import Secret, load_settings
from newsletter.db.fastpath import fetch_packed, fetch_plain
from newsletter.db.models import Delivery, Issue, SendBatch, Subscriber
from newsletter.db.session import make_engine, session_factory
from newsletter.db.types import UTCDateTime
from newsletter.delivery import ledger
from newsletter.delivery.planning import enqueue_issue
from subscribers.hashing import EmailHasher
from subscribers.importing import _sqlite_datetime
from tests.fixtures.delivery import seed_send, suppress, unsubscribe


def test_the_hand_encoded_sqlite_datetime_is_what_sqlalchemy_stores() -> None:
    table = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime)
    )
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    values = [
        datetime(2026, 6, 13, 7, 0, tzinfo=timezone(timedelta(hours=9))),
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 3, 8, 2, 30, 0, 5, tzinfo=timezone(timedelta(hours=-5))),
    ]
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": i, "at": v} for i, v in enumerate(values)])
        stored = [row[0] for row in conn.execute(text("SELECT at FROM t ORDER BY id"))]
    assert stored == [_sqlite_datetime(v) for v in values]


def test_the_keyed_email_hash_is_hmac() -> None:
    key = b"k" * 32
    hasher = EmailHasher(key)
    for address in ("a@example.com", "山田@例え.jp"):
        plain = hmac.new(key, address.encode("utf-8"), hashlib.sha256).hexdigest()
        assert hasher.of_key(address) == plain


def test_a_recipient_built_through_its_slots_is_the_dataclass_construction() -> None:
    from dataclasses import FrozenInstanceError, replace

    import pytest

    from newsletter.delivery.sender import new_recipient
    from newsletter.providers.base import Recipient

    values = (7, 11, "山田@例え.jp", "山田 太郎", "https://x.example/u/t", "https://x.example/p/t")
    fast, plain = new_recipient(*values), Recipient(*values)
    assert fast == plain and repr(fast) == repr(plain) and type(fast) is Recipient
    assert replace(fast, return_path="b@x.example") == replace(plain, return_path="b@x.example")
    with pytest.raises(FrozenInstanceError):
        fast.email = "other@example.com"  # type: ignore[misc]


def test_a_batch_row_built_without_its_constructor_is_the_named_tuple() -> None:
    from newsletter.delivery.ledger import RecipientRow

    row = (1, 2, "a@example.com", None, True)
    fast = tuple.__new__(RecipientRow, row[:4])
    assert fast == RecipientRow(1, 2, "a@example.com", None) and fast.email == "a@example.com"
    assert type(fast) is RecipientRow


def test_the_packed_batch_load_gives_the_plain_loads_rows(migrated_sqlite_url: str) -> None:
    """SQLite reads a batch as one JSON row (`fastpath.packed`): the same rows, values and
    order as the plain SELECT, for awkward names, a missing name, a suppressed address, an
    unsubscribed and an erased subscriber."""
    engine = make_engine(migrated_sqlite_url)
    sessions = session_factory(engine)
    seeded = seed_send(sessions, 30)
    names = ['"Quoted" \\ back', "山田 太郎", "tab\there", "nul\x01ctl", None, "emoji 📨"]
    with sessions.begin() as session:
        people = session.scalars(select(Subscriber).order_by(Subscriber.id)).all()
        for person, name in zip(people, names, strict=False):
            person.name = name
    clock = FixedClock(datetime(2026, 6, 12, 21, 30, tzinfo=UTC))
    settings = load_settings({}, database_url=migrated_sqlite_url, secret_keys=(Secret("k" * 32),))
    with sessions.begin() as session:
        issue = session.get_one(Issue, seeded.issue_id)
        enqueue_issue(session, issue, settings, clock, batch_size=4)
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == people[12].id)
            .values(subscriber_id=None)
        )
    suppress(sessions, seeded.emails[6])  # after planning: the load's re-check sees them
    unsubscribe(sessions, seeded.emails[9])
    with sessions() as session:
        batches = session.scalars(select(SendBatch.id).order_by(SendBatch.id)).all()
        for batch_id in batches:
            params = {"p_batch_id": batch_id}
            plain = fetch_plain(session, ledger._load_statement(seeded.list_id), params)
            unpacked = fetch_packed(session, ledger._load_statement_packed(seeded.list_id), params)
            assert unpacked == [list(row) for row in plain]
        everyone = [
            row
            for batch_id in batches
            for row in fetch_packed(
                session, ledger._load_statement_packed(seeded.list_id), {"p_batch_id": batch_id}
            )
        ]
    engine.dispose()
    assert len(everyone) == 30
    assert {row[3] for row in everyone} >= {n for n in names if n} | {None}
    assert sum(1 for row in everyone if not row[4]) == 3  # suppressed, unsubscribed, erased
    assert sum(1 for row in everyone if row[1] is None) == 1  # erased
