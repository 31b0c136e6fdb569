"""The scheduler's jobs and its catch-up, driven in-process with a fixed clock."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, time, timedelta
from time import sleep
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.catchup import CatchupAction
from newsletter.clock import FixedClock
from newsletter.db.models import Issue, MailingList, Meta
from newsletter.delivery.send_claim import claim_send
from newsletter.errors import ConfigError
from newsletter.pipeline import Outcome
from newsletter.runtime import Runtime
from newsletter.schedule import local_instant
from newsletter.scheduler import (
    HEARTBEAT_KEY,
    Scheduler,
    catch_up_list,
    list_plans,
    write_heartbeat,
)
from tests.fixtures.scheduler import outbox_recipients, seed_articles, seed_subscribers

JST = timedelta(hours=9)


def _at_jst(hour: int, minute: int = 0) -> datetime:
    """June 13, 2026 at hour:minute in Tokyo, as UTC."""
    return datetime(2026, 6, 13, hour, minute, tzinfo=UTC) - JST


def _statuses(runtime: Runtime) -> list[tuple[str, str | None]]:
    with runtime.sessions() as session:
        return [(i.status, i.note) for i in session.scalars(select(Issue))]


def test_before_the_send_time_the_catch_up_waits(
    runtime: Runtime, clock: FixedClock, todays_articles: list[int]
) -> None:
    seed_subscribers(runtime.sessions, clock, 2)
    result = catch_up_list(runtime, "daily")  # the clock says 06:30 JST
    assert result.decision.action is CatchupAction.WAIT
    assert _statuses(runtime) == []


def test_started_after_the_send_time_it_sends_todays_issue_once(
    runtime: Runtime, clock: FixedClock, todays_articles: list[int]
) -> None:
    addresses = seed_subscribers(runtime.sessions, clock, 3)
    clock.advance(hours=2)  # 08:30 JST: down at 07:00, back before the 11:00 deadline
    first = catch_up_list(runtime, "daily")
    assert first.decision.action is CatchupAction.RUN
    assert first.run is not None and first.run.outcome == Outcome.SENT
    second = catch_up_list(runtime, "daily")
    assert second.decision.action is CatchupAction.DONE
    assert outbox_recipients(runtime.settings.outbox_dir) == dict.fromkeys(addresses, 1)


def test_started_after_the_deadline_it_records_a_skip_and_mails_nobody(
    runtime: Runtime, clock: FixedClock, todays_articles: list[int]
) -> None:
    seed_subscribers(runtime.sessions, clock, 3)
    clock.advance(hours=14, minutes=30)  # 21:00 JST
    result = catch_up_list(runtime, "daily")
    assert result.decision.action is CatchupAction.SKIP
    [(status, note)] = _statuses(runtime)
    assert status == "skipped"
    assert note and "11:00" in note
    assert not list(runtime.settings.outbox_dir.rglob("*.eml"))


def test_an_interrupted_send_is_resumed_on_start(
    runtime: Runtime, clock: FixedClock, todays_articles: list[int]
) -> None:
    addresses = seed_subscribers(runtime.sessions, clock, 3)
    clock.advance(minutes=35)  # 07:05 JST
    queued = dataclasses.replace(runtime.settings, workers="external")
    from newsletter.pipeline import run_daily

    report = run_daily(dataclasses.replace(runtime, settings=queued), list_slug="daily")
    assert report.status == "sending"  # as if the process died right after planning
    claim_send(runtime.sessions, report.issue_id or 0, "dead-host:9", clock.now())
    clock.advance(minutes=10)  # the dead owner's lease has expired
    result = catch_up_list(runtime, "daily")
    assert result.decision.action is CatchupAction.RESUME
    assert result.run is not None and result.run.outcome == Outcome.SENT
    assert outbox_recipients(runtime.settings.outbox_dir) == dict.fromkeys(addresses, 1)


def test_each_list_is_scheduled_in_its_own_zone_with_the_catch_up_window_as_grace(
    runtime: Runtime, clock: FixedClock
) -> None:
    with runtime.sessions() as session:
        session.add(MailingList(slug="daily", name="AI日報", created_at=clock.now()))
        session.add(
            MailingList(
                slug="ny",
                name="AI Daily NY",
                timezone="America/New_York",
                send_time="06:30",
                created_at=clock.now(),
            )
        )
        session.commit()
    plans = {p.slug: p for p in list_plans(runtime)}
    assert (plans["daily"].tz_name, plans["daily"].hour, plans["daily"].minute) == (
        "Asia/Tokyo",
        7,
        0,
    )
    assert plans["daily"].grace_seconds == 4 * 3600  # 07:00 -> 11:00
    assert (plans["ny"].tz_name, plans["ny"].hour, plans["ny"].minute) == (
        "America/New_York",
        6,
        30,
    )
    scheduler = Scheduler(runtime)
    scheduler.sync_jobs()
    job = scheduler._aps.get_job("daily:ny")
    assert job is not None
    assert job.misfire_grace_time == 4 * 3600 + 1800
    assert job.coalesce is True
    assert "hour='6', minute='30'" in str(job.trigger)
    assert str(job.trigger.timezone) == "America/New_York"
    daily = scheduler._aps.get_job("daily:daily")
    assert daily is not None
    next_fire = daily.trigger.get_next_fire_time(None, clock.now())  # from 06:30 JST
    assert next_fire == datetime(2026, 6, 12, 22, 0, tzinfo=UTC)  # 07:00 JST


def test_a_list_sending_after_the_catch_up_deadline_is_a_config_error(
    runtime: Runtime, clock: FixedClock
) -> None:
    with runtime.sessions() as session:
        session.add(
            MailingList(slug="late", name="Late", send_time="12:00", created_at=clock.now())
        )
        session.commit()
    with pytest.raises(ConfigError, match="'late'"):
        list_plans(runtime)


def test_with_no_list_yet_the_default_list_is_scheduled(runtime: Runtime) -> None:
    assert [p.slug for p in list_plans(runtime)] == ["daily"]


def test_the_heartbeat_is_one_row_updated_in_place(runtime: Runtime, clock: FixedClock) -> None:
    write_heartbeat(runtime, "host-a:1", ["daily"])
    clock.advance(seconds=30)
    write_heartbeat(runtime, "host-a:1", ["daily"])
    with runtime.sessions() as session:
        rows = session.scalars(select(Meta.value).where(Meta.key == HEARTBEAT_KEY)).all()
    assert len(rows) == 1
    beat = json.loads(rows[0])
    assert beat["owner"] == "host-a:1"
    assert datetime.fromisoformat(beat["at"]) == clock.now()


def test_a_run_that_raises_is_logged_and_the_scheduler_keeps_going(
    runtime: Runtime, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    with runtime.sessions() as session:
        session.add(
            MailingList(slug="bad", name="Bad", timezone="Mars/Olympus", created_at=clock.now())
        )
        session.commit()
    scheduler = Scheduler(runtime, only_list="bad")
    scheduler.tick("bad")  # must not raise
    assert any(r.getMessage() == "scheduler.job_failed" for r in caplog.records)


def test_catch_up_uses_the_list_send_time(runtime: Runtime, clock: FixedClock) -> None:
    with runtime.sessions() as session:
        session.add(
            MailingList(slug="daily", name="AI日報", send_time="06:00", created_at=clock.now())
        )
        session.commit()
    runtime.settings = dataclasses.replace(runtime.settings, catchup_deadline=time(6, 15))
    result = catch_up_list(runtime, "daily")  # 06:30 JST: past the list's own 06:15 deadline
    assert result.decision.action is CatchupAction.SKIP


def test_a_list_with_an_impossible_schedule_does_not_stop_the_others(
    runtime: Runtime, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    with runtime.sessions() as session:
        session.add(MailingList(slug="daily", name="AI日報", created_at=clock.now()))
        session.add(
            MailingList(slug="late", name="Late", send_time="12:00", created_at=clock.now())
        )
        session.commit()
    scheduler = Scheduler(runtime)
    scheduler.sync_jobs()
    assert scheduler._aps.get_job("daily:daily") is not None
    assert scheduler._aps.get_job("daily:late") is None
    assert any(r.getMessage() == "scheduler.list_not_scheduled" for r in caplog.records)


def test_a_day_without_enough_articles_is_skipped_with_the_last_reason(
    runtime: Runtime, clock: FixedClock
) -> None:
    clock.advance(hours=1)  # 07:30 JST, no articles at all
    scheduler = Scheduler(runtime)
    scheduler.sync_jobs()
    scheduler.tick("daily")
    assert _statuses(runtime) == []  # nothing to build yet: retried at the next check
    clock.advance(hours=4)  # 11:30 JST, past the deadline
    scheduler.tick("daily")
    [(status, note)] = _statuses(runtime)
    assert status == "skipped"
    assert note and "last attempt:" in note and "minimum is 1" in note


def test_a_stop_before_the_scheduler_runs_makes_start_return(runtime: Runtime) -> None:
    scheduler = Scheduler(runtime)
    scheduler.stop()
    scheduler.stop()  # a second signal changes nothing
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (scheduler.start(install_signals=False), done.set()), daemon=True
    )
    thread.start()
    assert done.wait(10), "start() did not return after stop()"


def test_a_one_off_run_that_fails_is_counted_for_the_exit_code(runtime: Runtime) -> None:
    at = datetime.now(UTC) - timedelta(seconds=1)  # already due: runs as soon as it starts
    day = at.astimezone(runtime.settings.timezone).date()
    seed_articles(runtime.sessions, [local_instant(day, time(6, 0), runtime.settings.timezone)])
    runtime.settings = dataclasses.replace(runtime.settings, provider="nonsense")
    scheduler = Scheduler(runtime, run_at=at)
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (scheduler.start(install_signals=False), done.set()), daemon=True
    )
    thread.start()
    assert done.wait(20), "a --at run did not exit after its run"
    assert scheduler.failures == 1


def test_starting_for_an_unknown_list_is_an_error(runtime: Runtime) -> None:
    from newsletter.errors import NotFoundError

    with pytest.raises(NotFoundError, match="'nope'"):
        Scheduler(runtime, only_list="nope").start(install_signals=False)


def test_a_stop_while_a_job_asks_the_scheduler_something_does_not_hang(
    runtime: Runtime,
) -> None:
    """APScheduler's shutdown holds its job-store lock while it waits for running jobs: a
    heartbeat that reads the next run times at that moment must not wait for it forever."""
    scheduler = Scheduler(runtime)
    inside, real_get_job = threading.Event(), scheduler._aps.get_job

    def slow_get_job(job_id: str, jobstore: str | None = None) -> Any:
        inside.set()
        sleep(0.5)  # the stop arrives while the heartbeat is here
        return real_get_job(job_id, jobstore)

    scheduler._aps.get_job = slow_get_job  # type: ignore[method-assign]
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (scheduler.start(install_signals=False), done.set()), daemon=True
    )
    thread.start()
    assert inside.wait(10), "the heartbeat never ran"
    scheduler.stop()
    assert done.wait(15), "the scheduler hung in shutdown"
