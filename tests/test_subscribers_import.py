"""CSV import: encodings, header aliases, validation, duplicates, suppression, re-runs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import ConsentRecord, Subscriber, Subscription
from newsletter.errors import ValidationError
from subscribers.csv_source import detect_encoding
from subscribers.importing import import_csv
from subscribers.service import show_subscriber
from subscribers.suppression import suppress
from tests.fixtures.subscribers import subscribe


@pytest.fixture
def engine(subscribers_engine: Engine) -> Engine:
    """This module's database: migrated once, emptied per test (see tests/fixtures)."""
    return subscribers_engine


MIXED = (
    "メールアドレス,名前,言語,会社\r\n"
    "Taro@Example.COM,山田 太郎,日本語,例示株式会社\r\n"
    "not-an-address,壊れた行,ja,\r\n"
    "taro@example.com,二重,en,\r\n"
    "hanako@例え.jp,花子,両方,\r\n"
    'formula@example.com,"=HYPERLINK(""http://evil.example"")",en,\r\n'
    "lang@example.com,言語が変,klingon,\r\n"
    ",空のアドレス,ja,\r\n"
)


def _write(tmp_path: Path, text: str, encoding: str, name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _report(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _emails(session: Session) -> set[str]:
    return set(session.scalars(select(Subscriber.email)))


def test_a_cp932_file_from_japanese_excel_imports_with_every_bad_row_reported(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = _write(tmp_path, MIXED, "cp932")
    report = tmp_path / "report.csv"
    summary = import_csv(sessions, clock, source, report_path=report)
    assert summary.encoding == "cp932"
    assert (summary.imported, summary.rejected, summary.duplicates) == (3, 3, 1)
    rows = _report(report)
    assert [(r["line"], r["outcome"]) for r in rows] == [
        ("3", "rejected"),
        ("4", "duplicate"),
        ("7", "rejected"),
        ("8", "rejected"),
    ]
    assert "@-sign" in rows[0]["reason"]
    assert "same address as line 2" in rows[1]["reason"]
    assert "language" in rows[2]["reason"]
    with sessions() as session:
        assert _emails(session) == {
            "Taro@example.com",
            "hanako@例え.jp",
            "formula@example.com",
        }
        taro = show_subscriber(session, email="taro@example.com")
    assert (taro["name"], taro["language"]) == ("山田 太郎", "ja")
    assert taro["attributes"] == {"会社": "例示株式会社"}


def test_a_utf8_file_with_a_bom_is_detected_and_its_header_matched(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = _write(tmp_path, MIXED, "utf-8-sig")
    summary = import_csv(sessions, clock, source)
    assert summary.encoding == "utf-8-sig"
    assert summary.imported == 3
    with sessions() as session:
        assert show_subscriber(session, email="hanako@例え.jp")["language"] == "both"


def test_encoding_detection_prefers_utf8_then_cp932(tmp_path: Path) -> None:
    assert detect_encoding(_write(tmp_path, "email\nа@example.com\n", "utf-8")) == "utf-8"
    assert detect_encoding(_write(tmp_path, "email,名前\n", "cp932")) == "cp932"
    assert detect_encoding(_write(tmp_path, "email\n", "utf-8-sig")) == "utf-8-sig"


def test_a_wrong_encoding_given_by_hand_is_a_clear_error(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = _write(tmp_path, MIXED, "cp932")
    with pytest.raises(ValidationError, match="not valid utf-8 text"):
        import_csv(sessions, clock, source, encoding="utf-8")


def test_a_file_without_an_email_column_names_what_it_found(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = _write(tmp_path, "who,when\na,b\n", "utf-8")
    with pytest.raises(ValidationError, match=r"line 1: no email column.*'who', 'when'"):
        import_csv(sessions, clock, source)


def test_rows_matching_existing_subscribers_update_them_case_insensitively(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    with sessions() as session, session.begin():
        subscribe(session, settings, clock, "Known@Example.com", name="Old name")
        subscribe(session, settings, clock, "same@example.com", name="Same")
    source = _write(
        tmp_path, "email,name\nKNOWN@example.com,New name\nsame@example.com,Same\n", "utf-8"
    )
    summary = import_csv(sessions, clock, source)
    assert (summary.imported, summary.updated, summary.unchanged) == (0, 1, 1)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 2
        assert show_subscriber(session, email="known@example.com")["name"] == "New name"


def test_suppressed_addresses_are_reported_and_never_imported(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    with sessions() as session, session.begin():
        suppress(session, clock, email="bounced@example.com", reason="bounced", source="webhook")
    source = _write(tmp_path, "email\nBounced@Example.com\nok@example.com\n", "utf-8")
    report = tmp_path / "report.csv"
    summary = import_csv(sessions, clock, source, report_path=report)
    assert (summary.imported, summary.suppressed) == (1, 1)
    assert _report(report)[0]["outcome"] == "suppressed"
    with sessions() as session:
        assert _emails(session) == {"ok@example.com"}


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained", "expired"])
def test_an_ended_subscription_is_never_reactivated_by_import(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    tmp_path: Path,
    status: str,
) -> None:
    with sessions() as session, session.begin():
        subscribe(session, settings, clock, "ended@example.com", status=status)
    source = _write(tmp_path, "email\nended@example.com\n", "utf-8")
    summary = import_csv(sessions, clock, source)
    assert summary.not_reactivated == 1
    with sessions() as session:
        assert session.scalar(select(Subscription.status)) == status


def test_each_new_subscription_gets_an_import_consent_record_naming_the_file(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = _write(tmp_path, "email\na@example.com\nb@example.com\n", "utf-8", "crm-2026.csv")
    import_csv(sessions, clock, source, source="crm export")
    with sessions() as session:
        records = session.scalars(select(ConsentRecord)).all()
    assert len(records) == 2
    assert {(r.action, r.source, r.detail, r.at) for r in records} == {
        ("subscribe_active", "crm export", "file crm-2026.csv", clock.now())
    }


def test_an_interrupted_import_can_be_run_again_without_doubling_anything(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    lines = ["email,name"] + [f"user{n}@example.com,User {n}" for n in range(25)]
    full = _write(tmp_path, "\n".join(lines) + "\n", "utf-8", "full.csv")
    partial = _write(tmp_path, "\n".join(lines[:11]) + "\n", "utf-8", "partial.csv")
    first = import_csv(sessions, clock, partial, chunk_size=4)  # as far as a crash got
    assert first.imported == 10
    rerun = import_csv(sessions, clock, full, chunk_size=4)
    assert (rerun.imported, rerun.unchanged) == (15, 10)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscription)) == 25
        assert session.scalar(select(func.count()).select_from(ConsentRecord)) == 25


def test_a_row_with_too_many_columns_is_rejected_without_losing_the_rest(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = _write(
        tmp_path, "email,name\na@example.com,Suzuki, Ichiro\nb@example.com,Ok\n", "utf-8"
    )
    summary = import_csv(sessions, clock, source)
    assert (summary.imported, summary.rejected) == (1, 1)
    assert "expected 2 columns" in summary.problems[0]["reason"]


def test_pending_imports_are_pending_and_use_the_default_language(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = _write(tmp_path, "email\na@example.com\n", "utf-8")
    import_csv(sessions, clock, source, status="pending", default_language="en")
    with sessions() as session:
        data = show_subscriber(session, email="a@example.com")
    assert data["language"] == "en"
    assert data["subscriptions"][0]["status"] == "pending"


def test_the_report_neutralises_formula_like_cells(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = _write(tmp_path, "email\n\"=cmd|' /C calc'!A0\"\n", "utf-8")
    report = tmp_path / "report.csv"
    import_csv(sessions, clock, source, report_path=report)
    assert _report(report)[0]["email"].startswith("'=")


def test_the_sample_file_imports_cleanly(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    from newsletter.paths import SAMPLES_DIR

    summary = import_csv(sessions, clock, SAMPLES_DIR / "subscribers.csv")
    assert summary.rows >= 24
    assert summary.rejected == 0
    assert summary.imported == summary.rows


def test_importing_known_subscribers_into_another_list_subscribes_them_there(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    from subscribers.lists import create_list

    with sessions() as session, session.begin():
        create_list(session, clock, slug="weekly", name="Weekly")
        subscribe(session, settings, clock, "both.lists@example.com", name="Old")
    source = _write(tmp_path, "email,name\nboth.lists@example.com,New\n", "utf-8")
    summary = import_csv(sessions, clock, source, list_slug="weekly")
    assert (summary.imported, summary.updated) == (1, 0)
    with sessions() as session:
        data = show_subscriber(session, email="both.lists@example.com")
    assert data["name"] == "New"
    assert {s["list"]: s["status"] for s in data["subscriptions"]} == {
        "daily": "active",
        "weekly": "active",
    }


def test_a_bom_read_as_plain_utf8_and_full_width_headers_still_match(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = _write(tmp_path, "Ｅメールアドレス,氏名\nzen@example.jp,全角\n", "utf-8-sig")
    summary = import_csv(sessions, clock, source, encoding="utf-8")
    assert summary.imported == 1
    with sessions() as session:
        assert show_subscriber(session, email="zen@example.jp")["name"] == "全角"
