"""Retention: raw events past NEWSLETTER_EVENTS_RETENTION_DAYS fold into counts and go, per
issue, once; statistics read the same before and after. SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import ClickEvent, EngagementTotal, Issue, OpenEvent
from newsletter.engagement.retention import fold_issue, purge_events, retention_cutoff
from newsletter.engagement.stats import IssueEngagement, issue_engagement
from tests.engagement_support import add_events, click, standard_scene
from tests.fixtures.delivery import T0

LATER = FixedClock(T0 + timedelta(days=91))  # the scene's events are 91 days old


def _stats(sessions: sessionmaker[Session], issue_id: int) -> IssueEngagement:
    with sessions() as session:
        return issue_engagement(session, session.get_one(Issue, issue_id), "ja")


def _raw(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(ClickEvent)) or 0,
            session.scalar(select(func.count()).select_from(OpenEvent)) or 0,
        )


def test_statistics_are_the_same_before_and_after_the_purge(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    scene = standard_scene(sessions)
    before = _stats(sessions, scene.issue_id)
    report = purge_events(sessions, settings, LATER)
    assert (report.issues, report.clicks, report.opens) == ([scene.issue_id], 10, 6)
    assert _raw(sessions) == (0, 0)
    assert _stats(sessions, scene.issue_id) == before


def test_a_second_purge_changes_nothing(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    scene = standard_scene(sessions)
    purge_events(sessions, settings, LATER)
    with sessions() as session:
        totals = sorted(
            session.execute(select(EngagementTotal.metric, EngagementTotal.variant,
                                   EngagementTotal.article_id, EngagementTotal.kind,
                                   EngagementTotal.events, EngagementTotal.people))
        )  # fmt: skip
    again = purge_events(sessions, settings, LATER)
    assert again.issues == [] and (again.clicks, again.opens) == (0, 0)
    with sessions() as session:
        assert sorted(session.execute(select(EngagementTotal.metric, EngagementTotal.variant,
                                             EngagementTotal.article_id, EngagementTotal.kind,
                                             EngagementTotal.events, EngagementTotal.people))
                      ) == totals  # fmt: skip
    assert _stats(sessions, scene.issue_id).reader_clicks == 6


def test_an_issue_with_a_recent_event_keeps_all_its_raw_events(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    scene = standard_scene(sessions)
    with sessions.begin() as session:
        recent = LATER.now() - timedelta(days=1)
        add_events(session, [click(scene.issue_id, scene.deliveries[0], None, 0, at=recent)])
    report = purge_events(sessions, settings, LATER)
    assert (report.issues, report.kept_issues) == ([], 1)
    assert _raw(sessions) == (11, 6)


def test_a_dry_run_reports_what_would_go_and_deletes_nothing(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    scene = standard_scene(sessions)
    report = purge_events(sessions, settings, LATER, dry_run=True)
    assert (report.issues, report.clicks, report.opens) == ([scene.issue_id], 10, 6)
    assert _raw(sessions) == (10, 6)


def test_events_inside_the_retention_period_stay(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    standard_scene(sessions)
    short = replace(settings, events_retention_days=100)
    assert purge_events(sessions, short, LATER).issues == []
    assert _raw(sessions) == (10, 6)


def test_a_fold_that_fails_leaves_the_issue_untouched(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    scene = standard_scene(sessions)
    before = _stats(sessions, scene.issue_id)
    session = sessions()
    try:
        fold_issue(session, scene.issue_id, retention_cutoff(settings, LATER))
        session.rollback()  # a crash before the commit
    finally:
        session.close()
    assert _raw(sessions) == (10, 6)
    purge_events(sessions, settings, LATER)
    assert _stats(sessions, scene.issue_id) == before  # counted once, not twice


def test_a_late_click_after_the_fold_is_added_to_the_totals(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    scene = standard_scene(sessions)
    purge_events(sessions, settings, LATER)
    with sessions.begin() as session:
        late = LATER.now() + timedelta(hours=1)
        add_events(session, [click(scene.issue_id, scene.deliveries[5], scene.article_ids[2], 3,
                                   at=late)])  # fmt: skip
    assert _stats(sessions, scene.issue_id).reader_clicks == 7
    purge_events(sessions, settings, FixedClock(LATER.now() + timedelta(days=91)))
    assert _raw(sessions) == (0, 0)
    stats = _stats(sessions, scene.issue_id)
    assert (stats.reader_clicks, stats.articles[2].clicks) == (7, 1)
