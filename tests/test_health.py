"""`newsletter health`: each check, and the exit code a monitor acts on."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from newsletter.cli.main import cli
from newsletter.clock import FixedClock
from newsletter.config import Secret
from newsletter.db.models import Issue, SendBatch
from newsletter.health import Level, check_health
from newsletter.pipeline import record_skip, run_daily
from newsletter.providers.outbox import OutboxProvider
from newsletter.runtime import Runtime
from newsletter.scheduler import write_heartbeat
from tests.fixtures.scheduler import seed_subscribers


def _check(report, name: str):  # type: ignore[no-untyped-def]
    return next(c for c in report.checks if c.name == name)


def _healthy(runtime: Runtime) -> None:
    write_heartbeat(runtime, "host:1", ["daily"])


def test_a_fresh_installation_is_ok_and_says_no_scheduler_has_run_yet(runtime: Runtime) -> None:
    report = check_health(runtime.settings, runtime.clock, engine=runtime.engine)
    assert _check(report, "database").level is Level.OK
    assert _check(report, "provider").level is Level.OK
    scheduler = _check(report, "scheduler")
    assert scheduler.level is Level.OK and "no scheduler has run here yet" in scheduler.detail
    assert report.exit_code == 0


def test_before_any_scheduler_a_day_sent_by_hand_is_not_a_missed_send(
    runtime: Runtime, clock: FixedClock
) -> None:
    """Right after `newsletter demo` (or sending by hand), nothing was missed: no schedule has
    run yet. Once a scheduler has run, the same day is reported missed (below)."""
    record_skip(runtime, "daily", date(2026, 6, 12), "missed")
    clock.advance(hours=6)  # past today's deadline
    report = check_health(runtime.settings, clock, engine=runtime.engine)
    check = _check(report, "list daily")
    assert check.level is Level.OK and "no schedule has run yet" in check.detail
    assert report.exit_code == 0


def test_with_a_fresh_heartbeat_everything_is_ok(runtime: Runtime) -> None:
    _healthy(runtime)
    report = check_health(runtime.settings, runtime.clock, engine=runtime.engine)
    assert report.level is Level.OK and report.exit_code == 0


def test_a_stale_heartbeat_is_degraded(runtime: Runtime, clock: FixedClock) -> None:
    _healthy(runtime)
    clock.advance(minutes=5)
    check = _check(check_health(runtime.settings, clock, engine=runtime.engine), "scheduler")
    assert check.level is Level.DEGRADED
    assert "300 s ago" in check.detail


def test_an_unreachable_database_is_failing(tmp_path: Path, runtime: Runtime) -> None:
    settings = dataclasses.replace(
        runtime.settings,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
    )
    report = check_health(settings, runtime.clock)
    assert _check(report, "database").level is Level.FAILING
    assert report.exit_code == 2


def test_a_database_without_the_schema_is_failing(tmp_path: Path, runtime: Runtime) -> None:
    settings = dataclasses.replace(runtime.settings, database_url=f"sqlite:///{tmp_path}/empty.db")
    check = _check(check_health(settings, runtime.clock), "database")
    assert check.level is Level.FAILING
    assert "newsletter init" in check.detail


def test_an_older_sqlite_database_is_ok_and_points_to_compact(
    sqlite_path_with_4_kib_pages: Path, runtime: Runtime
) -> None:
    url = f"sqlite:///{sqlite_path_with_4_kib_pages}"
    settings = dataclasses.replace(runtime.settings, database_url=url)
    check = _check(check_health(settings, runtime.clock), "database")
    assert check.level is Level.OK
    assert check.data["page_size"] == 4096
    assert "4 KiB pages: `newsletter compact`" in check.detail


def test_a_new_database_has_nothing_to_compact(runtime: Runtime) -> None:
    check = _check(check_health(runtime.settings, runtime.clock, engine=runtime.engine), "database")
    assert "compact" not in check.detail


def test_the_last_issue_of_each_list_is_reported(
    runtime: Runtime, clock: FixedClock, todays_articles: list[int]
) -> None:
    seed_subscribers(runtime.sessions, clock, 2)
    run_daily(runtime, list_slug="daily", provider=OutboxProvider(runtime.settings.outbox_dir))
    _healthy(runtime)
    check = _check(check_health(runtime.settings, clock, engine=runtime.engine), "list daily")
    assert check.level is Level.OK
    assert check.data["last_issue"] == "2026-06-13" and check.data["last_status"] == "sent"


def test_a_skipped_day_shows_its_reason(runtime: Runtime) -> None:
    record_skip(runtime, "daily", date(2026, 6, 12), "missed: scheduler down")
    check = _check(
        check_health(runtime.settings, runtime.clock, engine=runtime.engine), "list daily"
    )
    assert "missed: scheduler down" in check.detail


def test_an_overdue_issue_is_degraded(runtime: Runtime, clock: FixedClock) -> None:
    record_skip(runtime, "daily", date(2026, 6, 12), "missed")  # the list exists
    clock.advance(hours=1)  # 07:30 JST and nothing sent today
    _healthy(runtime)
    check = _check(check_health(runtime.settings, clock, engine=runtime.engine), "list daily")
    assert check.level is Level.DEGRADED
    assert "overdue" in check.detail


def _queued_issue(runtime: Runtime, clock: FixedClock) -> int:
    seed_subscribers(runtime.sessions, clock, 3)
    external = dataclasses.replace(
        runtime, settings=dataclasses.replace(runtime.settings, workers="external")
    )
    report = run_daily(external, list_slug="daily")
    assert report.issue_id is not None
    return report.issue_id


def test_in_doubt_batches_are_degraded_and_named(
    runtime: Runtime, clock: FixedClock, todays_articles: list[int]
) -> None:
    issue_id = _queued_issue(runtime, clock)
    with runtime.sessions() as session:
        session.execute(update(SendBatch).values(status="in_doubt"))
        session.commit()
    check = _check(check_health(runtime.settings, clock, engine=runtime.engine), "in-doubt batches")
    assert check.level is Level.DEGRADED
    assert check.data["recipients_by_issue"] == {str(issue_id): 3}
    assert "issue resolve" in check.detail


def test_a_send_without_progress_is_reported_stuck(
    runtime: Runtime, clock: FixedClock, todays_articles: list[int]
) -> None:
    issue_id = _queued_issue(runtime, clock)
    fresh = _check(check_health(runtime.settings, clock, engine=runtime.engine), "stuck sends")
    assert fresh.level is Level.OK
    clock.advance(minutes=20)
    stuck = _check(check_health(runtime.settings, clock, engine=runtime.engine), "stuck sends")
    assert stuck.level is Level.DEGRADED and stuck.data["issues"] == [issue_id]


def test_health_json_and_exit_code_from_the_command_line(
    runtime: Runtime, monkeypatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _healthy(runtime)  # heartbeat at the fixed clock: stale by real time, so degraded
    monkeypatch.chdir(tmp_path)
    env = {
        "NEWSLETTER_DATABASE_URL": runtime.settings.database_url,
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef",
    }
    result = CliRunner().invoke(cli, ["health", "--json"], env=env)
    data = json.loads(result.output)
    assert result.exit_code == 1
    assert data["status"] == "degraded"
    assert {c["name"] for c in data["checks"]} >= {"database", "provider", "scheduler"}


def test_a_paused_send_is_degraded_with_the_way_to_resume_it(
    runtime: Runtime, clock: FixedClock
) -> None:
    record_skip(runtime, "daily", date(2026, 6, 13), "x")
    with runtime.sessions() as session:
        session.execute(update(Issue).values(status="paused"))
        session.commit()
    _healthy(runtime)
    check = _check(check_health(runtime.settings, clock, engine=runtime.engine), "list daily")
    assert check.level is Level.DEGRADED and "issue resume" in check.detail


def test_times_in_the_heartbeat_are_utc(runtime: Runtime, clock: FixedClock) -> None:
    _healthy(runtime)
    check = _check(check_health(runtime.settings, clock, engine=runtime.engine), "scheduler")
    assert datetime.fromisoformat(check.data["heartbeat_at"]) == datetime(
        2026, 6, 12, 21, 30, tzinfo=UTC
    )
    assert check.data["age_s"] == 0


def test_a_day_missed_without_a_scheduler_is_degraded(runtime: Runtime, clock: FixedClock) -> None:
    record_skip(runtime, "daily", date(2026, 6, 12), "missed")  # the list exists
    clock.advance(hours=6)  # 12:30 JST: past the deadline, nothing recorded for today
    _healthy(runtime)
    check = _check(check_health(runtime.settings, clock, engine=runtime.engine), "list daily")
    assert check.level is Level.DEGRADED
    assert "not sent by the deadline 11:00" in check.detail


def test_a_scheduler_that_stopped_cleanly_is_reported_as_stopped(
    runtime: Runtime, clock: FixedClock
) -> None:
    write_heartbeat(runtime, "host:1", ["daily"], stopped=True)
    check = _check(check_health(runtime.settings, clock, engine=runtime.engine), "scheduler")
    assert check.level is Level.DEGRADED
    assert "stopped cleanly" in check.detail


@pytest.mark.parametrize(
    ("status", "level"), [("failed", Level.FAILING), ("sent_with_failures", Level.DEGRADED)]
)
def test_a_send_that_did_not_reach_everyone_is_reported_with_the_way_to_retry(
    runtime: Runtime, clock: FixedClock, todays_articles: list[int], status: str, level: Level
) -> None:
    issue_id = _queued_issue(runtime, clock)
    with runtime.sessions() as session:
        session.execute(
            update(Issue).where(Issue.id == issue_id).values(status=status, sent_at=clock.now())
        )
        session.commit()
    check = _check(check_health(runtime.settings, clock, engine=runtime.engine), "send outcomes")
    assert check.level is level
    assert str(issue_id) in check.detail and "issue retry" in check.detail


def test_a_from_address_that_cannot_send_fails_the_provider_check(runtime: Runtime) -> None:
    settings = dataclasses.replace(runtime.settings, provider="sendgrid")
    settings = dataclasses.replace(settings, sendgrid_api_key=Secret("k"))
    check = _check(check_health(settings, runtime.clock, engine=runtime.engine), "provider")
    assert check.level is Level.FAILING
    assert "NEWSLETTER_FROM" in check.detail and "localhost" in check.detail
