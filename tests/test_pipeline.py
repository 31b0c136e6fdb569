"""The daily pipeline: build once, render, send (or enqueue), and say what happened."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.db.models import Delivery, Issue, SendClaim
from newsletter.delivery.send_claim import CLAIM_LEASE, claim_send
from newsletter.pipeline import Outcome, record_skip, run_daily
from newsletter.providers.outbox import OutboxProvider
from newsletter.runtime import Runtime
from tests.fixtures.scheduler import outbox_recipients, seed_subscribers

ISSUE_DATE = date(2026, 6, 13)


def _outbox(runtime: Runtime) -> OutboxProvider:
    return OutboxProvider(runtime.settings.outbox_dir)


def _issues(sessions: sessionmaker[Session]) -> list[Issue]:
    with sessions() as session:
        return list(session.scalars(select(Issue)))


def test_a_run_builds_renders_and_mails_every_subscriber_once(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    addresses = seed_subscribers(runtime.sessions, clock, 6)
    report = run_daily(runtime, list_slug="daily", provider=_outbox(runtime))
    assert report.outcome == Outcome.SENT
    assert report.built and not report.reused
    assert report.issue_date == ISSUE_DATE
    assert report.status == "sent"
    assert report.send["accepted"] == 6
    assert outbox_recipients(runtime.settings.outbox_dir) == dict.fromkeys(addresses, 1)


def test_a_second_run_reuses_the_sent_issue_and_mails_nobody(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    seed_subscribers(runtime.sessions, clock, 3)
    run_daily(runtime, list_slug="daily", provider=_outbox(runtime))
    again = run_daily(runtime, list_slug="daily", provider=_outbox(runtime))
    assert again.outcome == Outcome.ALREADY_DONE
    assert again.reused and not again.built
    assert len(_issues(runtime.sessions)) == 1
    assert sum(outbox_recipients(runtime.settings.outbox_dir).values()) == 3


def test_without_articles_no_issue_is_built_and_the_reason_is_given(
    runtime: Runtime, clock: FixedClock
) -> None:
    seed_subscribers(runtime.sessions, clock, 2)
    report = run_daily(runtime, list_slug="daily", provider=_outbox(runtime))
    assert report.outcome == Outcome.NOT_BUILT
    assert report.reason
    assert _issues(runtime.sessions) == []
    assert not runtime.settings.outbox_dir.exists() or not list(
        runtime.settings.outbox_dir.rglob("*.eml")
    )


def test_with_external_workers_the_run_only_queues_the_send(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    seed_subscribers(runtime.sessions, clock, 4)
    runtime.settings = dataclasses.replace(runtime.settings, workers="external")
    report = run_daily(runtime, list_slug="daily")
    assert report.outcome == Outcome.ENQUEUED
    assert report.status == "sending"
    with runtime.sessions() as session:
        queued = session.scalar(select(func.count()).select_from(Delivery))
    assert queued == 4
    assert not list(runtime.settings.outbox_dir.rglob("*.eml"))


def test_a_send_claimed_by_a_live_process_is_left_to_it(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    seed_subscribers(runtime.sessions, clock, 2)
    runtime.settings = dataclasses.replace(runtime.settings, workers="external")
    first = run_daily(runtime, list_slug="daily")  # builds and queues: status sending
    assert first.issue_id is not None
    assert claim_send(runtime.sessions, first.issue_id, "other-host:42", clock.now()) is None
    runtime.settings = dataclasses.replace(runtime.settings, workers="inline")
    report = run_daily(runtime, list_slug="daily", provider=_outbox(runtime))
    assert report.outcome == Outcome.CLAIMED_ELSEWHERE
    assert "other-host:42" in (report.reason or "")
    assert not list(runtime.settings.outbox_dir.rglob("*.eml"))


def test_a_crashed_senders_claim_expires_and_the_next_run_finishes_the_send(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    addresses = seed_subscribers(runtime.sessions, clock, 3)
    runtime.settings = dataclasses.replace(runtime.settings, workers="external")
    first = run_daily(runtime, list_slug="daily")
    assert first.issue_id is not None
    claim_send(runtime.sessions, first.issue_id, "crashed-host:1", clock.now())
    clock.advance(seconds=CLAIM_LEASE.total_seconds() + 1)
    runtime.settings = dataclasses.replace(runtime.settings, workers="inline")
    report = run_daily(runtime, list_slug="daily", issue_date=ISSUE_DATE, provider=_outbox(runtime))
    assert report.outcome == Outcome.SENT
    assert outbox_recipients(runtime.settings.outbox_dir) == dict.fromkeys(addresses, 1)


def test_a_stopped_run_leaves_the_send_for_the_next_run(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    addresses = seed_subscribers(runtime.sessions, clock, 3)
    stop = threading.Event()
    stop.set()  # SIGTERM arrived before the first batch
    report = run_daily(runtime, list_slug="daily", provider=_outbox(runtime), stop=stop)
    assert report.outcome == Outcome.INTERRUPTED
    assert report.status == "sending"
    with runtime.sessions() as session:
        claim = session.get_one(SendClaim, report.issue_id)
    assert claim.released_at is not None  # released, so a restart can take over at once
    resumed = run_daily(runtime, list_slug="daily", provider=_outbox(runtime))
    assert resumed.outcome == Outcome.SENT
    assert outbox_recipients(runtime.settings.outbox_dir) == dict.fromkeys(addresses, 1)


def test_a_missed_day_is_recorded_as_skipped_with_the_reason(runtime: Runtime) -> None:
    report = record_skip(runtime, "daily", ISSUE_DATE, "missed: scheduler down")
    assert report.outcome == Outcome.SKIPPED
    [issue] = _issues(runtime.sessions)
    assert (issue.issue_date, issue.status, issue.note) == (
        ISSUE_DATE,
        "skipped",
        "missed: scheduler down",
    )


def test_a_built_issue_that_never_went_out_is_skipped(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    from newsletter.issues.assembly import build_issue

    with runtime.sessions() as session:
        build_issue(session, runtime.settings, clock, issue_date=ISSUE_DATE)
        session.commit()
    report = record_skip(runtime, "daily", ISSUE_DATE, "missed")
    assert report.outcome == Outcome.SKIPPED and report.reused
    assert [i.status for i in _issues(runtime.sessions)] == ["skipped"]


def test_a_sent_issue_is_never_turned_into_a_skip(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    seed_subscribers(runtime.sessions, clock, 1)
    run_daily(runtime, list_slug="daily", provider=_outbox(runtime))
    report = record_skip(runtime, "daily", ISSUE_DATE, "missed")
    assert report.outcome == Outcome.ALREADY_DONE
    assert [i.status for i in _issues(runtime.sessions)] == ["sent"]


def test_newsletter_run_prints_the_report_as_json(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from newsletter.cli.main import cli

    seed_subscribers(runtime.sessions, clock, 2)
    monkeypatch.chdir(tmp_path)
    env = {
        "NEWSLETTER_DATABASE_URL": runtime.settings.database_url,
        "NEWSLETTER_OUTBOX_DIR": str(runtime.settings.outbox_dir),
        "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef",
    }
    result = CliRunner().invoke(cli, ["run", "--date", "2026-06-13", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{") :])
    assert data["outcome"] == "sent" and data["issue_date"] == "2026-06-13"
    assert data["send"]["accepted"] == 2


def test_newsletter_run_for_an_unknown_list_says_so(
    runtime: Runtime, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from newsletter.cli.main import cli

    monkeypatch.chdir(tmp_path)
    env = {
        "NEWSLETTER_DATABASE_URL": runtime.settings.database_url,
        "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef",
    }
    result = CliRunner().invoke(cli, ["run", "--list", "nope"], env=env)
    assert result.exit_code == 66
    assert "no list 'nope'" in result.output


def test_a_queued_send_is_finished_by_a_worker(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    from newsletter.delivery.sendconfig import SendConfig
    from newsletter.worker import run_worker

    addresses = seed_subscribers(runtime.sessions, clock, 5)
    runtime.settings = dataclasses.replace(runtime.settings, workers="external")
    report = run_daily(runtime, list_slug="daily")
    assert report.outcome == Outcome.ENQUEUED
    run_worker(runtime, _outbox(runtime), SendConfig.from_settings(runtime.settings), once=True)
    assert outbox_recipients(runtime.settings.outbox_dir) == dict.fromkeys(addresses, 1)
    again = run_daily(runtime, list_slug="daily")
    assert again.outcome == Outcome.ALREADY_DONE and again.status == "sent"
