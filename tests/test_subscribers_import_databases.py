"""The import writes through a different path on each database (SQLite: executemany on the
driver; PostgreSQL: COPY into a temporary table, then INSERT ... SELECT ... ON CONFLICT): the
same file must give the same summary, the same report and the same rows on both.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Secret, Settings, load_settings
from newsletter.db.migrate import upgrade
from newsletter.db.models import ConsentRecord, Subscriber, Subscription
from newsletter.db.session import make_engine, session_factory
from subscribers.hashing import EmailHasher, email_key
from subscribers.import_rows import Row
from subscribers.importing import _store_for, import_csv
from subscribers.service import add_subscriber, resolve_list
from subscribers.suppression import suppress
from tests.fixtures.subscribers import subscribe

# Japanese names, a bad address, an in-file duplicate, a suppressed address, a known
# subscriber (other case), an unsubscribed one, and attribute cells with what COPY's text
# format escapes: tab, line break, backslash, its NULL marker \N, quotes.
FILE = (
    "メールアドレス,名前,言語,会社,メモ\r\n"
    "taro@example.jp,山田 太郎,日本語,例示株式会社,\r\n"
    "not-an-address,壊れた行,ja,,\r\n"
    'Hanako@Example.JP,佐藤 花子,両方,"タブ\tと\r\n改行",C:\\Users\\hanako\r\n'
    "TARO@example.jp,二重,en,,\r\n"
    "Bounced@Example.com,止められた,ja,,\r\n"
    "KNOWN@example.com,新しい名前,,会社B,\\N\r\n"
    "ended@example.com,戻らない,en,,\r\n"
    'info@例え.jp,"「引用」""quoted""",英語,,\r\n'
    "kenji@example.com,高橋 健,,,\r\n"
)


def _settings(url: str, tmp_path: Path) -> Settings:
    return load_settings(
        {},
        database_url=url,
        outbox_dir=tmp_path / "outbox",
        var_dir=tmp_path / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
        base_url="https://news.example.com",
    )


def _prepare(engine: Engine, tmp_path: Path, clock: FixedClock) -> sessionmaker[Session]:
    upgrade(engine)
    sessions = session_factory(engine)
    settings = _settings(engine.url.render_as_string(hide_password=False), tmp_path)
    with sessions() as session, session.begin():
        subscribe(session, settings, clock, "Known@Example.com", name="古い名前")
        subscribe(session, settings, clock, "ended@example.com", status="unsubscribed")
        suppress(session, clock, email="bounced@example.com", reason="bounced", source="webhook")
    return sessions


def _stored(sessions: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the import writes, without ids, in id order (the order rows went in)."""
    with sessions() as session:
        emails = dict(session.execute(select(Subscriber.id, Subscriber.email)).all())
        return {
            "subscribers": [
                tuple(r)
                for r in session.execute(
                    select(
                        Subscriber.email,
                        Subscriber.email_key,
                        Subscriber.email_hash,
                        Subscriber.name,
                        Subscriber.language,
                        Subscriber.attributes,
                        Subscriber.created_at,
                        Subscriber.updated_at,
                    ).order_by(Subscriber.id)
                )
            ],
            "subscriptions": [
                (emails[r.subscriber_id], r.list_id, r.status, r.source, r.created_at)
                + (r.updated_at, r.confirmed_at, r.unsubscribed_at)
                for r in session.scalars(select(Subscription).order_by(Subscription.id))
            ],
            "consent": [
                (emails.get(r.subscriber_id), r.list_id, r.action, r.source, r.detail, r.at)
                for r in session.scalars(select(ConsentRecord).order_by(ConsentRecord.id))
            ],
        }


def _import(
    sessions: sessionmaker[Session], source: Path, report: Path, clock: FixedClock
) -> tuple[dict[str, Any], list[list[str]]]:
    summary = import_csv(sessions, clock, source, report_path=report, chunk_size=3).to_dict()
    summary.pop("report")
    with report.open(encoding="utf-8", newline="") as handle:
        return summary, list(csv.reader(handle))


@pytest.mark.postgres
def test_postgresql_imports_the_same_rows_and_report_as_sqlite(
    sqlite_url: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "会員.csv"
    source.write_bytes(FILE.encode("utf-8"))
    results = []
    for name, url in (("sqlite", sqlite_url), ("postgresql", postgres_schema_url)):
        clock = FixedClock(datetime.fromisoformat("2026-06-12T21:30:00+00:00"))
        engine = make_engine(url)
        try:
            sessions = _prepare(engine, tmp_path / name, clock)
            first = _import(sessions, source, tmp_path / f"{name}-1.csv", clock)
            clock.advance(minutes=5)
            again = _import(sessions, source, tmp_path / f"{name}-2.csv", clock)
            stored = _stored(sessions)
        finally:
            engine.dispose()
        for row in stored["subscribers"]:
            assert len(row[2]) == 64  # the keyed hash: its key differs per installation
        stored["subscribers"] = [r[:2] + r[3:] for r in stored["subscribers"]]
        results.append((first, again, stored))
    (first, again, stored), (pg_first, pg_again, pg_stored) = results
    assert pg_first == first
    assert pg_again == again
    assert pg_stored == stored
    # What both say, once: the rows a reader of the report and of the list sees.
    summary, report = first
    assert (summary["imported"], summary["updated"], summary["rejected"]) == (4, 1, 1)
    assert (summary["duplicates"], summary["suppressed"], summary["not_reactivated"]) == (1, 1, 1)
    assert [line[:3] for line in report[1:]] == [
        ["3", "not-an-address", "rejected"],
        ["6", "TARO@example.jp", "duplicate"],
        ["7", "Bounced@example.com", "suppressed"],
        ["9", "ended@example.com", "not_reactivated"],
    ]
    assert again[0]["unchanged"] == 5 and again[0]["imported"] == 0
    by_email = {r[0]: r for r in stored["subscribers"]}
    assert by_email["Hanako@example.jp"][2:5] == (
        "佐藤 花子",
        "both",
        {"会社": "タブ\tと\r\n改行", "メモ": "C:\\Users\\hanako"},
    )
    assert by_email["Known@example.com"][2:5] == (
        "新しい名前",
        "ja",
        {"会社": "会社B", "メモ": "\\N"},
    )
    assert by_email["info@例え.jp"][2:4] == ('「引用」"quoted"', "en")
    assert len(stored["consent"]) == 2 + 4  # the two set up, one per new subscription


def test_subscribers_someone_else_inserted_first_keep_their_own_ids(
    subscribers_engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    """The insert's ids are exact whether every row went in (SQLite works them out from the
    rowids) or some address was taken between the lookup and the insert."""
    sessions = session_factory(subscribers_engine)
    with sessions() as session, session.begin():
        resolve_list(session, clock, "daily")
        add_subscriber(session, settings, clock, email="taken@example.com")
        hasher = EmailHasher.load(session)

    def rows(*emails: str) -> list[Row]:
        return [
            Row(n + 2, e, email_key(e), hasher(e), None, None, {}) for n, e in enumerate(emails)
        ]

    for batch in (
        rows("a@example.com", "b@example.com", "c@example.com"),
        rows("d@example.com", "taken@example.com", "e@example.com"),
        rows("f@example.com"),
    ):
        with sessions() as session, session.begin():
            ids, taken = _store_for(session).insert_subscribers(batch, "ja", clock.now())
        with sessions() as session:
            stored = dict(session.execute(select(Subscriber.email_key, Subscriber.id)).all())
        assert ids == {r.key: stored[r.key] for r in batch}
        assert ("taken@example.com" in taken) == any(r.key == "taken@example.com" for r in batch)
        assert set(taken) <= {r.key for r in batch}
