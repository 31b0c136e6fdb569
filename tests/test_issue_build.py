"""Building the day's issue from the database: once per list and date, rebuilds, freezing."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.articles.ingest import import_sources
from newsletter.articles.queries import find_article
from newsletter.articles.samples import import_samples
from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import Issue, IssueArticle, IssueVariant, MailingList
from newsletter.db.session import transaction
from newsletter.errors import NotFoundError, StateError, UsageError
from newsletter.issues.assembly import (
    BuildResult,
    build_issue,
    freeze_issue,
    get_issue,
    issue_date_for,
)
from newsletter.issues.overrides import EXCLUDE, PIN, clear_override, set_order, set_override
from newsletter.types import IssueStatus
from tests.fixtures.articles import article_dict, store_articles, write_json

TOKYO = ZoneInfo("Asia/Tokyo")
JUNE_13 = date(2026, 6, 13)


def jst(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=TOKYO)


def build(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    **kwargs: object,
) -> BuildResult:
    with transaction(sessions) as session:
        return build_issue(session, settings, clock, **kwargs)  # type: ignore[arg-type]


def issue_article_ids(sessions: sessionmaker[Session], issue_date: date = JUNE_13) -> list[str]:
    with sessions() as session:
        issue = get_issue(session, issue_date.isoformat())
        return [item.article.external_id for item in issue.articles]


def mark(sessions: sessionmaker[Session], issue_date: date, status: IssueStatus) -> None:
    with transaction(sessions) as session:
        get_issue(session, issue_date.isoformat()).status = status.value


# --- issue dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now_jst", "expected"),
    [
        (jst(12, 23, 59), JUNE_13),  # late evening: tomorrow morning's issue
        (jst(13, 0, 0), JUNE_13),  # midnight: this morning's issue
        (jst(13, 10, 59), JUNE_13),  # before the catch-up deadline: still this morning's
        (jst(13, 11, 0), date(2026, 6, 14)),
    ],
)
def test_the_issue_date_follows_the_local_morning_send(
    settings: Settings, now_jst: datetime, expected: date
) -> None:
    assert issue_date_for(settings, None, now_jst.astimezone(UTC)) == expected


def test_a_list_in_new_york_has_its_own_issue_date(settings: Settings) -> None:
    ny_list = MailingList(slug="us", name="US", timezone="America/New_York", send_time="07:00")
    now = jst(13, 6, 30).astimezone(UTC)  # 17:30 on June 12 in New York
    assert issue_date_for(settings, None, now) == JUNE_13
    assert issue_date_for(settings, ny_list, now) == JUNE_13  # next NY morning is June 13
    assert issue_date_for(settings, ny_list, now - timedelta(hours=12)) == date(2026, 6, 12)


# --- building ---------------------------------------------------------------------------------


def test_build_creates_the_issue_with_window_positions_and_the_default_list(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(
        sessions,
        clock,
        [
            article_dict("low", jst(12, 9), importance=20),
            article_dict("high", jst(12, 23, 59), importance=90),
            article_dict("old", jst(12, 6, 59), importance=100),
        ],
    )
    result = build(sessions, settings, clock)
    assert result.created and result.issue is not None
    assert issue_article_ids(sessions) == ["high", "low"]
    with sessions() as session:
        issue = get_issue(session, "daily:2026-06-13")
        assert issue.window_start == jst(12, 7) and issue.cutoff_at == jst(13, 7)
        assert [i.position for i in issue.articles] == [1, 2]
        assert issue.status == IssueStatus.BUILT
        assert issue.mailing_list.name == settings.newsletter_name


def test_building_twice_returns_the_same_issue(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(sessions, clock, [article_dict("a", jst(12, 9))])
    first = build(sessions, settings, clock)
    store_articles(sessions, clock, [article_dict("b", jst(12, 10), importance=99)])
    second = build(sessions, settings, clock)
    assert not second.created and second.issue is not None and first.issue is not None
    assert second.issue.id == first.issue.id
    assert issue_article_ids(sessions) == ["a"]  # unchanged without --rebuild
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 1


def test_two_concurrent_builders_get_one_issue(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(sessions, clock, [article_dict("a", jst(12, 9))])
    first_session = sessions()
    first = build_issue(first_session, settings, clock)  # inserted, not yet committed
    outcome: list[BuildResult] = []

    def second_builder() -> None:
        outcome.append(build(sessions, settings, clock))

    thread = threading.Thread(target=second_builder)
    thread.start()
    thread.join(timeout=0.5)  # the second builder waits on the first one's insert
    first_session.commit()
    first_session.close()
    thread.join(timeout=20)
    assert outcome, "the second builder did not finish"
    assert outcome[0].issue is not None and first.issue is not None
    assert outcome[0].issue.id == first.issue.id and not outcome[0].created


def test_too_few_articles_builds_no_issue_and_says_why(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    result = build(sessions, settings, clock)
    assert result.issue is None and not result.created
    assert result.reason is not None and "minimum is 1" in result.reason
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 0


def test_the_list_cap_limits_the_issue(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(
        sessions, clock, [article_dict(f"a{i}", jst(12, 8 + i), importance=i) for i in range(5)]
    )
    with transaction(sessions) as session:
        session.add(MailingList(slug="brief", name="Brief", max_articles=2, created_at=clock.now()))
    result = build(sessions, settings, clock, list_slug="brief")
    assert result.issue is not None
    with sessions() as session:
        issue = get_issue(session, "brief:2026-06-13")
        assert [i.article.external_id for i in issue.articles] == ["a4", "a3"]


def test_an_article_sent_yesterday_is_not_selected_today(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(sessions, clock, [article_dict("early", jst(11, 9))])
    build(sessions, settings, clock, issue_date=date(2026, 6, 12))
    mark(sessions, date(2026, 6, 12), IssueStatus.SENT)
    # Re-dated into today's window by a re-import: still never sent twice.
    store_articles(
        sessions, clock, [article_dict("early", jst(12, 9)), article_dict("new", jst(12, 10))]
    )
    result = build(sessions, settings, clock, issue_date=JUNE_13)
    assert issue_article_ids(sessions) == ["new"]
    assert result.selection is not None
    reasons = {d.external_id: d.reason for d in result.selection.decisions}
    assert reasons["early"] == "already sent in issue 2026-06-12"


def test_consecutive_days_take_consecutive_windows(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(
        sessions,
        clock,
        [article_dict("d12", jst(12, 6, 59)), article_dict("d13", jst(12, 7, 1))],
    )
    build(sessions, settings, clock, issue_date=date(2026, 6, 12))
    build(sessions, settings, clock, issue_date=JUNE_13)
    assert issue_article_ids(sessions, date(2026, 6, 12)) == ["d12"]
    assert issue_article_ids(sessions, JUNE_13) == ["d13"]


# --- rebuilds and overrides -------------------------------------------------------------------


def test_rebuild_reselects_while_the_issue_is_built(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(sessions, clock, [article_dict("a", jst(12, 9))])
    first = build(sessions, settings, clock)
    store_articles(sessions, clock, [article_dict("b", jst(12, 10), importance=99)])
    again = build(sessions, settings, clock, rebuild=True)
    assert again.issue is not None and first.issue is not None
    assert again.issue.id == first.issue.id
    assert issue_article_ids(sessions) == ["b", "a"]


def test_rebuild_is_refused_once_sending_started(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(sessions, clock, [article_dict("a", jst(12, 9))])
    build(sessions, settings, clock)
    mark(sessions, JUNE_13, IssueStatus.SENDING)
    with pytest.raises(StateError, match="daily:2026-06-13 is sending: it is frozen"):
        build(sessions, settings, clock, rebuild=True)


def test_pin_exclude_and_reorder_shape_the_rebuilt_issue(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(
        sessions,
        clock,
        [
            article_dict("top", jst(12, 9), importance=90),
            article_dict("mid", jst(12, 9), importance=60),
            article_dict("low", jst(12, 9), importance=30),
            article_dict("stale", jst(10, 9), importance=10),
        ],
    )
    build(sessions, settings, clock)
    with transaction(sessions) as session:
        daily = session.scalars(select(MailingList)).one()
        ids = {r: find_article(session, r).id for r in ("top", "mid", "low", "stale")}
        set_override(session, clock, daily, JUNE_13, ids["stale"], PIN)
        set_override(session, clock, daily, JUNE_13, ids["top"], EXCLUDE)
        set_order(session, clock, daily, JUNE_13, [ids["low"], ids["mid"]])
    build(sessions, settings, clock, rebuild=True)
    assert issue_article_ids(sessions) == ["stale", "low", "mid"]
    with sessions() as session:
        assert [i.pinned for i in get_issue(session, "2026-06-13").articles] == [
            True,
            False,
            False,
        ]
    with transaction(sessions) as session:
        daily = session.scalars(select(MailingList)).one()
        assert clear_override(session, daily, JUNE_13, ids["stale"])
        assert clear_override(session, daily, JUNE_13, ids["top"])
    build(sessions, settings, clock, rebuild=True)
    assert issue_article_ids(sessions) == ["low", "mid", "top"]


def test_overrides_are_refused_for_a_frozen_issue(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(sessions, clock, [article_dict("a", jst(12, 9))])
    build(sessions, settings, clock)
    mark(sessions, JUNE_13, IssueStatus.SENT)
    with transaction(sessions) as session, pytest.raises(StateError, match="frozen"):
        daily = session.scalars(select(MailingList)).one()
        set_override(session, clock, daily, JUNE_13, find_article(session, "a").id, EXCLUDE)


# --- freezing ---------------------------------------------------------------------------------


def test_a_frozen_issue_keeps_its_snapshot_when_the_article_is_reimported(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    store_articles(sessions, clock, [article_dict("a", jst(12, 9), title="Original headline")])
    build(sessions, settings, clock)
    with transaction(sessions) as session:
        issue = get_issue(session, "2026-06-13")
        freeze_issue(session, issue, clock)
        freeze_issue(session, issue, clock)  # idempotent
        issue.status = IssueStatus.SENT.value
    changed = article_dict("a", jst(12, 9), title="Corrected headline")
    report = import_sources(sessions, [write_json(tmp_path / "fix.json", changed)], clock)
    assert report.updated == 1
    with sessions() as session:
        item = session.scalars(select(IssueArticle)).one()
        assert item.snapshot is not None
        assert item.snapshot["content"]["en"]["title"] == "Original headline"
        assert item.article.content("en").title == "Corrected headline"  # type: ignore[union-attr]


# --- references and samples -------------------------------------------------------------------


def test_issue_references_by_id_date_and_list_date(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(sessions, clock, [article_dict("a", jst(12, 9))])
    result = build(sessions, settings, clock)
    assert result.issue is not None
    with sessions() as session:
        assert get_issue(session, str(result.issue.id)).id == result.issue.id
        assert get_issue(session, "2026-06-13").id == result.issue.id
        assert get_issue(session, "daily:2026-06-13").id == result.issue.id
        for missing in ("2026-06-14", "other:2026-06-13", "999"):
            with pytest.raises(NotFoundError):
                get_issue(session, missing)
        for unreadable in ("yesterday", "2026-02-30"):  # a usage error (64), not "not found"
            with pytest.raises(UsageError):
                get_issue(session, unreadable)


def test_the_sample_articles_fill_todays_issue_and_reimport_idempotently(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    first = import_samples(sessions, clock, settings)
    assert first.ok and first.imported >= 8
    again = import_samples(sessions, clock, settings)
    assert (again.imported, again.unchanged) == (0, first.imported)
    result = build(sessions, settings, clock)
    assert result.issue is not None and result.selection is not None
    assert len(result.selection.chosen) == min(first.imported, settings.max_articles)


def test_samples_imported_in_the_evening_land_in_tomorrows_window(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    evening = FixedClock(jst(13, 20, 0))
    report = import_samples(sessions, evening, settings)
    result = build(sessions, settings, evening)
    assert result.issue is not None and result.issue.issue_date == date(2026, 6, 14)
    assert result.selection is not None
    assert len(result.selection.chosen) == min(report.imported, settings.max_articles)


def test_a_new_york_list_cuts_off_at_seven_eastern_time(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    ny = ZoneInfo("America/New_York")
    with transaction(sessions) as session:
        session.add(
            MailingList(
                slug="us",
                name="US morning",
                timezone="America/New_York",
                send_time="07:00",
                created_at=clock.now(),
            )
        )
    store_articles(
        sessions,
        clock,
        [
            article_dict("ny-in", datetime(2026, 6, 13, 6, 59, tzinfo=ny)),
            article_dict("ny-out", datetime(2026, 6, 13, 7, 1, tzinfo=ny)),
        ],
    )
    result = build(sessions, settings, clock, list_slug="us", issue_date=JUNE_13)
    assert result.issue is not None
    with sessions() as session:
        issue = get_issue(session, "us:2026-06-13")
        assert issue.cutoff_at == datetime(2026, 6, 13, 11, 0, tzinfo=UTC)  # 07:00 EDT
        assert [i.article.external_id for i in issue.articles] == ["ny-in"]


def test_a_rebuild_drops_rendered_variants_of_the_old_selection(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    store_articles(sessions, clock, [article_dict("a", jst(12, 9))])
    first = build(sessions, settings, clock)
    assert first.issue is not None
    with transaction(sessions) as session:
        session.add(
            IssueVariant(
                issue_id=first.issue.id,
                variant="ja",
                subject="s",
                preheader="p",
                html="<p>old</p>",
                text="old",
                trimmed=[],
                rendered_at=clock.now(),
            )
        )
    build(sessions, settings, clock, rebuild=True)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(IssueVariant)) == 0
