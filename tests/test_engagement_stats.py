"""An issue's engagement statistics as an editor reads them, on SQLite and PostgreSQL: readers
apart from machines, rates per tracked recipient, per article, variant, kind and position, how
far opens can be trusted, a list's trend, and the CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db.models import Issue, MailingList
from newsletter.engagement.export import COLUMNS, engagement_csv
from newsletter.engagement.stats import IssueEngagement, issue_engagement, list_trends
from tests.engagement_support import (
    Scene,
    add_events,
    click,
    deliver,
    make_articles,
    make_issue,
    make_list,
    scene_sessions,
    standard_scene,
    subscribers_of,
)
from tests.fixtures.delivery import T0, add_subscribers


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[sessionmaker[Session], Scene]]:
    """The standard scene, written once per database for the read-only tests below."""
    yield from scene_sessions(request, tmp_path_factory)


def _of(shared: tuple[sessionmaker[Session], Scene]) -> tuple[sessionmaker[Session], int]:
    return shared[0], shared[1].issue_id


def _stats(sessions: sessionmaker[Session], issue_id: int, lang: str = "en") -> IssueEngagement:
    with sessions() as session:
        return issue_engagement(session, session.get_one(Issue, issue_id), lang)


def test_reader_clicks_and_machine_clicks_are_counted_apart(
    shared: tuple[sessionmaker[Session], Scene],
) -> None:
    sessions, scene = shared
    stats = _stats(sessions, scene.issue_id)
    assert (stats.reader_clicks, stats.unique_clickers) == (6, 5)
    assert stats.machine_clicks == 4
    assert stats.machine_by_reason["head"] == 3 and stats.machine_by_reason["early"] == 1
    assert stats.other_clicks == 1  # the web-version link, no article's


def test_the_click_through_rate_counts_only_tracked_recipients(
    shared: tuple[sessionmaker[Session], Scene],
) -> None:
    stats = _stats(*_of(shared))
    assert (stats.recipients, stats.tracked_recipients, stats.untracked_recipients) == (12, 10, 2)
    assert stats.ctr == 0.5  # 5 readers who clicked / 10 tracked, not / 12
    assert "2 recipients had tracking off" in stats.notes[0]


def test_articles_come_in_issue_order_with_clicks_by_variant_and_kind(
    shared: tuple[sessionmaker[Session], Scene],
) -> None:
    stats = _stats(*_of(shared))
    first, second, third = stats.articles
    assert [a.position for a in stats.articles] == [1, 2, 3]
    assert (first.title, first.clicks, first.unique_clickers, first.ctr) == (
        "The next model arrives", 4, 3, 0.3
    )  # fmt: skip
    assert first.clicks_by_variant == {"ja": 3, "en": 1, "both": 0, "both-en": 0}
    assert first.unique_by_variant["ja"] == 2
    assert first.clicks_by_kind == {"article": 3, "source": 1, "related": 0}
    assert (second.clicks, second.clicks_by_variant["both"]) == (1, 1)
    assert second.clicks_by_kind["related"] == 1
    assert (third.clicks, third.ctr) == (0, 0.0)  # only a scanner touched it


def test_titles_are_in_the_editors_language(
    shared: tuple[sessionmaker[Session], Scene],
) -> None:
    stats = _stats(*_of(shared), "ja")
    assert [a.title for a in stats.articles] == [
        "次世代モデルが登場",
        "AI半導体の供給",
        "AI規制の新方針",
    ]


def test_variant_rates_use_each_variants_tracked_recipients(
    shared: tuple[sessionmaker[Session], Scene],
) -> None:
    stats = _stats(*_of(shared))
    by = {v.variant: v for v in stats.variants}
    assert (by["ja"].tracked_recipients, by["ja"].unique_clickers, by["ja"].ctr) == (4, 2, 0.5)
    assert (by["en"].tracked_recipients, by["en"].ctr) == (3, 0.6667)


def test_opens_keep_apple_and_proxy_fetches_apart_and_say_how_reliable_they_are(
    shared: tuple[sessionmaker[Session], Scene],
) -> None:
    opens = _stats(*_of(shared)).opens
    assert opens is not None
    assert (opens.reader_opens, opens.unique_openers, opens.open_rate) == (3, 2, 0.2)
    assert (opens.apple_mpp, opens.proxy, opens.machine) == (2, 1, 0)
    assert opens.automated_share == 0.5
    assert opens.reliability.startswith("50.0% of pixel fetches came from Apple Mail Privacy")


def test_a_list_without_the_pixel_shows_no_opens(sessions: sessionmaker[Session]) -> None:
    assert _stats(sessions, standard_scene(sessions, opens=False).issue_id).opens is None


def test_an_issue_without_events_has_zero_clicks_and_no_rate_to_divide(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        list_id = make_list(session, clicks=False)
        issue_id = make_issue(session, list_id, make_articles(session))
    stats = _stats(sessions, issue_id)
    assert (stats.recipients, stats.reader_clicks, stats.ctr) == (0, 0, None)
    assert [a.clicks for a in stats.articles] == [0, 0, 0]


def test_trends_show_each_sent_issue_oldest_first_with_its_top_article(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        list_id = make_list(session)
        emails = add_subscribers(session, list_id, 0, 4)
        subs = subscribers_of(session, emails)
        for day, clickers in ((13, 1), (14, 3), (15, 0)):
            articles = make_articles(session, prefix=f"d{day}-")
            issue_id = make_issue(session, list_id, articles, date(2026, 6, day))
            deliveries = deliver(session, issue_id, subs)
            second = articles[1][0]  # the second article is the one people click
            add_events(session, [click(issue_id, d, second, 2) for d in deliveries[:clickers]])
        built = make_issue(session, list_id, make_articles(session, "draft-"), date(2026, 6, 16))
        session.get_one(Issue, built).status = "built"  # not sent: not in the trend
        mailing_list = session.get_one(MailingList, list_id)
        trends = list_trends(session, mailing_list, "ja")
    assert [t.date.day for t in trends.issues] == [13, 14, 15]
    assert [t.ctr for t in trends.issues] == [0.25, 0.75, 0.0]
    assert [t.recipients for t in trends.issues] == [4, 4, 4]
    assert trends.issues[1].top_article == "AI半導体の供給"
    assert (trends.issues[1].top_article_clickers, trends.issues[2].top_article) == (3, None)


def test_the_csv_has_one_row_per_article_and_japanese_titles_round_trip(
    shared: tuple[sessionmaker[Session], Scene],
) -> None:
    stats = _stats(*_of(shared), "ja")
    data = engagement_csv(stats).encode("utf-8")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert tuple(rows[0]) == COLUMNS
    assert [r["title"] for r in rows] == ["次世代モデルが登場", "AI半導体の供給", "AI規制の新方針"]
    assert (rows[0]["clicks"], rows[0]["unique_clickers"], rows[0]["ctr"]) == ("4", "3", "0.3000")
    assert (rows[0]["clicks_ja"], rows[0]["clicks_source"]) == ("3", "1")


def test_late_machine_clicks_do_not_change_the_reader_numbers(
    sessions: sessionmaker[Session],
) -> None:
    scene = standard_scene(sessions)
    with sessions.begin() as session:
        later = [
            click(scene.issue_id, scene.deliveries[0], scene.article_ids[0], 1, machine=True,
                  reason="agent", at=T0 + timedelta(hours=3))
        ]  # fmt: skip
        add_events(session, later)
    after = _stats(sessions, scene.issue_id)
    assert (after.reader_clicks, after.unique_clickers, after.ctr) == (6, 5, 0.5)
    assert after.machine_by_reason["agent"] == 1
