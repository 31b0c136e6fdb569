"""Speed tricks held equal to the plain code they replace (the index: docs/architecture.md)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, text

from newsletter.db.types import UTCDateTime
from subscribers.hashing import EmailHasher
from subscribers.importing import _SQLITE_CONVERT


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
    assert stored == [_SQLITE_CONVERT["UTCDateTime"](v) for v in values]


def test_the_one_call_keyed_hash_is_hmac() -> None:
    key = b"k" * 32
    hasher = EmailHasher(key)
    for address in ("a@example.com", "山田@例え.jp"):
        plain = hmac.new(key, address.encode("utf-8"), hashlib.sha256).hexdigest()
        assert hasher.of_key(address) == plain
