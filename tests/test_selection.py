"""The daily selection as a pure function: windows, ranking, caps, minimums, overrides."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from newsletter.articles.selection import (
    Candidate,
    Overrides,
    Selection,
    select_articles,
)
from newsletter.schedule import cutoff_for, window_for

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
SEVEN = time(7, 0)
JUNE_13 = date(2026, 6, 13)


def jst(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, second, tzinfo=TOKYO)


def cand(article_id: int, published_at: datetime, importance: int = 50) -> Candidate:
    return Candidate(article_id, f"a{article_id}", published_at.astimezone(UTC), importance)


def run(
    candidates: list[Candidate],
    *,
    issue_date: date = JUNE_13,
    tz: ZoneInfo = TOKYO,
    previous_cutoff: datetime | None = None,
    sent: dict[int, date] | None = None,
    overrides: Overrides | None = None,
    max_articles: int = 8,
    min_articles: int = 1,
) -> Selection:
    return select_articles(
        candidates,
        issue_date=issue_date,
        tz=tz,
        send_time=SEVEN,
        previous_cutoff=previous_cutoff,
        already_sent_ids=sent or {},
        overrides=overrides or Overrides(),
        max_articles=max_articles,
        min_articles=min_articles,
    )


def reason(selection: Selection, article_id: int) -> str:
    return next(d.reason for d in selection.decisions if d.article_id == article_id)


# --- the window ------------------------------------------------------------------------------


def test_cutoff_is_the_send_time_on_the_issue_date_in_tokyo_expressed_in_utc() -> None:
    assert cutoff_for(JUNE_13, TOKYO, SEVEN) == datetime(2026, 6, 12, 22, 0, tzinfo=UTC)


def test_without_a_previous_issue_the_window_is_the_24_hours_before_the_cutoff() -> None:
    start, cutoff = window_for(JUNE_13, TOKYO, SEVEN, None)
    assert start == jst(12, 7) and cutoff == jst(13, 7)


def test_articles_at_2359_and_0000_jst_both_belong_to_the_next_mornings_issue() -> None:
    selection = run([cand(1, jst(12, 23, 59)), cand(2, jst(13, 0, 0))])
    assert selection.article_ids == [2, 1]  # same importance: newer first


def test_an_article_at_exactly_the_cutoff_is_in_and_one_second_later_is_out() -> None:
    at_cutoff, after = cand(1, jst(13, 7)), cand(2, jst(13, 7, 0, 1))
    selection = run([at_cutoff, after])
    assert selection.article_ids == [1]
    assert reason(selection, 2).startswith("outside window (published 2026-06-13 07:00 JST")


def test_an_article_at_exactly_the_previous_cutoff_belonged_to_the_previous_issue() -> None:
    previous = cutoff_for(date(2026, 6, 12), TOKYO, SEVEN)
    selection = run([cand(1, jst(12, 7)), cand(2, jst(12, 7, 0, 1))], previous_cutoff=previous)
    assert selection.article_ids == [2]
    assert reason(selection, 1).startswith("outside window")


def test_consecutive_windows_tile_time_without_gap_or_overlap() -> None:
    day1_start, day1_cutoff = window_for(date(2026, 6, 12), TOKYO, SEVEN, None)
    day2_start, _ = window_for(date(2026, 6, 13), TOKYO, SEVEN, day1_cutoff)
    assert day2_start == day1_cutoff
    assert day1_start < day1_cutoff


def test_a_missed_day_widens_the_next_window_back_to_the_last_issue() -> None:
    previous = cutoff_for(date(2026, 6, 11), TOKYO, SEVEN)
    start, _ = window_for(JUNE_13, TOKYO, SEVEN, previous)
    assert start == jst(11, 7)


def test_a_very_old_previous_issue_does_not_flood_the_window() -> None:
    previous = cutoff_for(date(2026, 5, 1), TOKYO, SEVEN)
    start, _ = window_for(JUNE_13, TOKYO, SEVEN, previous)
    assert start == jst(6, 7)


def test_new_york_window_spans_23_hours_on_the_spring_forward_day() -> None:
    # DST starts 2026-03-08 02:00 local: 07:00 EST on the 7th to 07:00 EDT on the 8th.
    start, cutoff = window_for(date(2026, 3, 8), NEW_YORK, SEVEN, None)
    assert cutoff - start == timedelta(hours=23)
    assert cutoff == datetime(2026, 3, 8, 11, 0, tzinfo=UTC)


def test_new_york_window_spans_25_hours_on_the_fall_back_day() -> None:
    start, cutoff = window_for(date(2026, 11, 1), NEW_YORK, SEVEN, None)
    assert cutoff - start == timedelta(hours=25)


def test_new_york_list_takes_articles_by_its_own_local_morning() -> None:
    ny = ZoneInfo("America/New_York")
    before = cand(1, datetime(2026, 6, 13, 6, 59, tzinfo=ny))
    after = cand(2, datetime(2026, 6, 13, 7, 1, tzinfo=ny))
    selection = run([before, after], tz=ny)
    assert selection.article_ids == [1]
    assert "EDT" in reason(selection, 2)


# --- ranking, caps, minimums -----------------------------------------------------------------


def test_ranking_is_by_importance_then_recency() -> None:
    candidates = [
        cand(1, jst(12, 9), importance=50),
        cand(2, jst(12, 20), importance=90),
        cand(3, jst(12, 22), importance=50),
    ]
    selection = run(candidates)
    assert selection.article_ids == [2, 3, 1]
    assert [d.position for d in selection.chosen] == [1, 2, 3]
    assert selection.chosen[0].reason == "selected #1 (importance 90)"


def test_the_cap_keeps_the_top_articles_and_explains_the_rest() -> None:
    candidates = [cand(i, jst(12, 8 + i), importance=i * 10) for i in range(1, 6)]
    selection = run(candidates, max_articles=3)
    assert selection.article_ids == [5, 4, 3]
    assert reason(selection, 2) == "below cap (3 articles)"


def test_below_the_minimum_the_selection_says_why_no_issue_should_be_built() -> None:
    selection = run([cand(1, jst(12, 9))], min_articles=2)
    assert not selection.buildable
    assert selection.reason is not None
    assert "only 1 article selectable" in selection.reason and "minimum is 2" in selection.reason


def test_an_empty_day_is_not_buildable_with_the_default_minimum() -> None:
    selection = run([])
    assert not selection.buildable


def test_an_article_sent_in_an_earlier_issue_is_never_selected_again() -> None:
    selection = run([cand(1, jst(12, 9)), cand(2, jst(12, 10))], sent={1: date(2026, 6, 12)})
    assert selection.article_ids == [2]
    assert reason(selection, 1) == "already sent in issue 2026-06-12"


def test_every_candidate_gets_an_explanation() -> None:
    candidates = [cand(i, jst(12, 8 + i)) for i in range(1, 5)] + [cand(9, jst(11, 9))]
    selection = run(candidates, max_articles=2, overrides=Overrides(excludes=frozenset({1})))
    assert {d.article_id for d in selection.decisions} == {1, 2, 3, 4, 9}
    assert all(d.reason for d in selection.decisions)


# --- editor overrides ------------------------------------------------------------------------


def test_pins_come_first_in_pin_order_even_outside_the_window() -> None:
    candidates = [
        cand(1, jst(12, 9), importance=90),
        cand(2, jst(12, 10), importance=10),
        cand(3, jst(10, 10), importance=10),  # two days old
    ]
    selection = run(candidates, overrides=Overrides(pins=(3, 2)))
    assert selection.article_ids == [3, 2, 1]
    assert [d.pinned for d in selection.chosen] == [True, True, False]
    assert selection.chosen[0].reason == "selected #1 (pinned by editor)"


def test_pins_are_in_even_beyond_the_cap() -> None:
    candidates = [cand(i, jst(12, 8 + i)) for i in range(1, 4)]
    selection = run(candidates, max_articles=1, overrides=Overrides(pins=(1, 2)))
    assert selection.article_ids == [1, 2]
    assert reason(selection, 3) == "below cap (1 articles)"


def test_an_excluded_article_is_out_whatever_its_importance() -> None:
    candidates = [cand(1, jst(12, 9), importance=100), cand(2, jst(12, 10))]
    selection = run(candidates, overrides=Overrides(excludes=frozenset({1})))
    assert selection.article_ids == [2]
    assert reason(selection, 1) == "excluded by editor"


def test_reorder_places_the_named_articles_first_in_the_given_order_after_pins() -> None:
    candidates = [cand(i, jst(12, 8 + i), importance=i * 10) for i in range(1, 5)]
    selection = run(candidates, overrides=Overrides(pins=(2,), order=(1, 3)))
    assert selection.article_ids == [2, 1, 3, 4]
    assert selection.chosen[1].reason == "selected #2 (placed by editor)"


def test_reorder_does_not_bring_back_an_article_from_outside_the_window() -> None:
    selection = run([cand(1, jst(10, 9)), cand(2, jst(12, 9))], overrides=Overrides(order=(1,)))
    assert selection.article_ids == [2]
    assert reason(selection, 1).startswith("outside window")


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York", "Europe/London"])
def test_over_consecutive_days_every_article_goes_out_exactly_once(zone: str) -> None:
    tz = ZoneInfo(zone)
    rng = random.Random(7)
    first_day = date(2026, 3, 5)  # spans the US (Mar 8) and UK (Mar 29) spring changes
    days = [first_day + timedelta(days=n) for n in range(30)]
    start, _ = window_for(first_day, tz, SEVEN, None)
    span = (cutoff_for(days[-1], tz, SEVEN) - start).total_seconds()
    candidates = [
        cand(i, start + timedelta(seconds=1 + rng.random() * (span - 1))) for i in range(600)
    ]
    sent: dict[int, date] = {}
    previous = None
    for day in days:
        selection = run(
            candidates,
            issue_date=day,
            tz=tz,
            previous_cutoff=previous,
            sent=sent,
            max_articles=50,
            min_articles=0,
        )
        for article_id in selection.article_ids:
            assert article_id not in sent
            sent[article_id] = day
        previous = selection.cutoff_at
    assert len(sent) == len(candidates)
