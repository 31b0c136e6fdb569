"""Speed tricks held equal to the plain code they replace (the index: docs/architecture.md)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, text

from newsletter.db.types import UTCDateTime
from subscribers.hashing import EmailHasher
from subscribers.importing import _sqlite_datetime


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
