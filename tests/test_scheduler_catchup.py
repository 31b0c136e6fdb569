"""The catch-up rule at its boundaries, in Tokyo and in zones that change their clocks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from newsletter.catchup import CatchupAction, decide_catchup
from newsletter.errors import ConfigError

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
SEVEN = time(7, 0)
ELEVEN = time(11, 0)


def at(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)  # type: ignore[misc]


def test_one_second_before_the_send_time_waits() -> None:
    decision = decide_catchup(at(TOKYO, 2026, 6, 13, 6, 59, 59), TOKYO, SEVEN, ELEVEN, None)
    assert decision.action is CatchupAction.WAIT


def test_at_the_send_time_a_missing_issue_runs() -> None:
    decision = decide_catchup(at(TOKYO, 2026, 6, 13, 7, 0), TOKYO, SEVEN, ELEVEN, None)
    assert decision.action is CatchupAction.RUN
    assert decision.issue_date == date(2026, 6, 13)


def test_an_issue_built_ahead_runs_at_the_send_time() -> None:
    assert (
        decide_catchup(at(TOKYO, 2026, 6, 13, 7, 0), TOKYO, SEVEN, ELEVEN, "built").action
        is CatchupAction.RUN
    )


def test_one_second_before_the_deadline_still_catches_up() -> None:
    decision = decide_catchup(at(TOKYO, 2026, 6, 13, 10, 59, 59), TOKYO, SEVEN, ELEVEN, None)
    assert decision.action is CatchupAction.RUN


def test_at_the_deadline_the_day_is_skipped() -> None:
    decision = decide_catchup(at(TOKYO, 2026, 6, 13, 11, 0), TOKYO, SEVEN, ELEVEN, None)
    assert decision.action is CatchupAction.SKIP
    assert "07:00" in decision.reason and "11:00" in decision.reason


def test_late_at_night_a_built_issue_is_skipped_not_sent() -> None:
    assert (
        decide_catchup(at(TOKYO, 2026, 6, 13, 23, 0), TOKYO, SEVEN, ELEVEN, "built").action
        is CatchupAction.SKIP
    )


@pytest.mark.parametrize("status", ["sent", "skipped", "cancelled", "paused"])
def test_a_finished_or_paused_issue_is_left_alone(status: str) -> None:
    assert (
        decide_catchup(at(TOKYO, 2026, 6, 13, 8, 0), TOKYO, SEVEN, ELEVEN, status).action
        is CatchupAction.DONE
    )


def test_an_interrupted_send_resumes_before_the_deadline() -> None:
    decision = decide_catchup(at(TOKYO, 2026, 6, 13, 9, 0), TOKYO, SEVEN, ELEVEN, "sending")
    assert decision.action is CatchupAction.RESUME


def test_an_interrupted_send_is_not_resumed_after_the_deadline() -> None:
    decision = decide_catchup(at(TOKYO, 2026, 6, 13, 12, 0), TOKYO, SEVEN, ELEVEN, "sending")
    assert decision.action is CatchupAction.DONE
    assert "operator" in decision.reason


def test_the_issue_date_is_the_local_date_not_the_utc_date() -> None:
    # 22:30 UTC on June 12 is 07:30 on June 13 in Tokyo.
    decision = decide_catchup(datetime(2026, 6, 12, 22, 30, tzinfo=UTC), TOKYO, SEVEN, ELEVEN, None)
    assert decision.issue_date == date(2026, 6, 13)
    assert decision.action is CatchupAction.RUN
    assert decision.send_at == datetime(2026, 6, 12, 22, 0, tzinfo=UTC)


def test_a_send_time_in_the_spring_forward_gap_runs_an_hour_later_on_the_wall_clock() -> None:
    # 2026-03-08: New York clocks jump from 02:00 EST to 03:00 EDT; 02:30 does not exist.
    send, deadline = time(2, 30), time(6, 0)
    decision = decide_catchup(at(NEW_YORK, 2026, 3, 8, 3, 29), NEW_YORK, send, deadline, None)
    assert decision.action is CatchupAction.WAIT
    assert decision.send_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT
    assert decide_catchup(
        at(NEW_YORK, 2026, 3, 8, 3, 30), NEW_YORK, send, deadline, None
    ).action is (CatchupAction.RUN)


def test_the_deadline_follows_the_wall_clock_across_spring_forward() -> None:
    # London 2026-03-29: 01:00 GMT -> 02:00 BST. The deadline 11:00 is 10:00 UTC that day.
    decision = decide_catchup(datetime(2026, 3, 29, 9, 59, tzinfo=UTC), LONDON, SEVEN, ELEVEN, None)
    assert decision.action is CatchupAction.RUN
    decision = decide_catchup(datetime(2026, 3, 29, 10, 0, tzinfo=UTC), LONDON, SEVEN, ELEVEN, None)
    assert decision.action is CatchupAction.SKIP


def test_an_ambiguous_send_time_on_fall_back_day_is_its_first_occurrence() -> None:
    # 2026-11-01: New York 01:00-02:00 happens twice (EDT, then EST).
    send, deadline = time(1, 30), time(5, 0)
    first = at(NEW_YORK, 2026, 11, 1, 1, 30, fold=0)  # 05:30 UTC
    decision = decide_catchup(first, NEW_YORK, send, deadline, None)
    assert decision.action is CatchupAction.RUN
    assert decision.send_at == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    before = decide_catchup(
        datetime(2026, 11, 1, 5, 29, tzinfo=UTC), NEW_YORK, send, deadline, None
    )
    assert before.action is CatchupAction.WAIT


def test_the_deadline_after_fall_back_is_in_standard_time() -> None:
    # 11:00 EST on 2026-11-01 is 16:00 UTC (not 15:00 as in summer).
    decision = decide_catchup(
        datetime(2026, 11, 1, 15, 30, tzinfo=UTC), NEW_YORK, SEVEN, ELEVEN, None
    )
    assert decision.action is CatchupAction.RUN
    assert decision.deadline_at == datetime(2026, 11, 1, 16, 0, tzinfo=UTC)


def test_a_deadline_not_after_the_send_time_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_CATCHUP_DEADLINE"):
        decide_catchup(at(TOKYO, 2026, 6, 13, 8, 0), TOKYO, SEVEN, time(7, 0), None)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        decide_catchup(datetime(2026, 6, 13, 8, 0), TOKYO, SEVEN, ELEVEN, None)


def test_the_cron_trigger_fires_twice_on_fall_back_day_and_the_second_firing_does_nothing() -> None:
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger(hour=1, minute=30, timezone="America/New_York")
    first = trigger.get_next_fire_time(None, at(NEW_YORK, 2026, 11, 1, 0, 0))
    second = trigger.get_next_fire_time(first, first)
    assert first is not None and second is not None
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)  # EDT, then EST
    send, deadline = time(1, 30), time(5, 0)
    assert decide_catchup(first, NEW_YORK, send, deadline, None).action is CatchupAction.RUN
    assert decide_catchup(second, NEW_YORK, send, deadline, "sent").action is CatchupAction.DONE


def test_the_cron_trigger_and_the_catch_up_agree_on_a_send_time_in_the_spring_gap() -> None:
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger(hour=2, minute=30, timezone="America/New_York")
    fires = trigger.get_next_fire_time(None, at(NEW_YORK, 2026, 3, 8, 0, 0))
    decision = decide_catchup(
        at(NEW_YORK, 2026, 3, 8, 0, 0), NEW_YORK, time(2, 30), time(6, 0), None
    )
    assert fires is not None and fires.astimezone(UTC) == decision.send_at
