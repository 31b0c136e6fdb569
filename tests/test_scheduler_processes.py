"""Real `newsletter scheduler` processes against SQLite and PostgreSQL, mailing to the outbox.

The time zone of each test is chosen (an `Etc/GMT±N` zone) so that the local time now is where
the test needs it relative to the send time and the catch-up deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.db.models import Delivery, Issue, Meta, SendBatch, delivery_status
from newsletter.scheduler import HEARTBEAT_KEY
from tests.fixtures.scheduler import outbox_recipients, seed_articles, seed_subscribers

pytestmark = pytest.mark.slow

SECRET = "test-secret-key-0123456789abcdef"
DRIVER = "from newsletter.cli.main import main; main()"


def zone_at_local_hour(hour: int) -> str:
    """A fixed-offset zone in which the wall clock now shows `hour`."""
    offset = hour - datetime.now(UTC).hour
    if offset > 14:
        offset -= 24
    elif offset < -12:
        offset += 24
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX signs are inverted


def scheduler_env(database_url: str, tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=database_url,
        NEWSLETTER_PROVIDER="outbox",
        NEWSLETTER_OUTBOX_DIR=str(tmp_path / "outbox"),
        NEWSLETTER_VAR_DIR=str(tmp_path / "var"),
        NEWSLETTER_SECRET_KEY=SECRET,
        NEWSLETTER_BASE_URL="https://news.example.com",
        NEWSLETTER_LOG_FORMAT="json",
    )
    env.update({f"NEWSLETTER_{k.upper()}": v for k, v in settings.items()})
    return env


@pytest.fixture
def start_scheduler(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, "scheduler", *args],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def issue_statuses(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(Issue.status)))


def heartbeat(sessions: sessionmaker[Session]) -> dict[str, Any] | None:
    with sessions() as session:
        raw = session.scalar(select(Meta.value).where(Meta.key == HEARTBEAT_KEY))
    return json.loads(raw) if raw else None


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.fixture
def real_now_clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


def test_two_schedulers_firing_at_once_send_one_issue_to_each_subscriber_once(
    database_url: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    start_scheduler: Callable[..., subprocess.Popen[str]],
    real_now_clock: FixedClock,
) -> None:
    now = real_now_clock.now()
    seed_articles(sessions, [now - timedelta(hours=1), now - timedelta(hours=2)])
    addresses = seed_subscribers(sessions, real_now_clock, 30)
    env = scheduler_env(
        database_url,
        tmp_path,
        timezone=zone_at_local_hour(4),
        send_time="22:00",
        catchup_deadline="23:00",
        send_batch_size="5",
    )
    at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    procs = [start_scheduler(env, "--at", at) for _ in range(2)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert issue_statuses(sessions) == ["sent"]
    assert outbox_recipients(tmp_path / "outbox") == dict.fromkeys(addresses, 1)
    senders = [e for _, err in outputs for e in events(err) if e["event"] == "pipeline.sent"]
    assert len(senders) == 1
    logs = "".join(err for _, err in outputs)
    assert not [a for a in addresses if a in logs]  # the logs never hold a full address


@pytest.mark.parametrize(
    ("deadline", "expected"), [("15:00", "sent"), ("10:00", "skipped")], ids=["before", "after"]
)
def test_a_scheduler_started_after_the_send_time_catches_up_or_skips_by_the_deadline(
    deadline: str,
    expected: str,
    database_url: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    start_scheduler: Callable[..., subprocess.Popen[str]],
    real_now_clock: FixedClock,
) -> None:
    now = real_now_clock.now()
    seed_articles(sessions, [now - timedelta(hours=4), now - timedelta(hours=5)])
    addresses = seed_subscribers(sessions, real_now_clock, 6)
    env = scheduler_env(
        database_url,
        tmp_path,
        timezone=zone_at_local_hour(12),  # down at 09:00, started at 12:xx
        send_time="09:00",
        catchup_deadline=deadline,
    )
    proc = start_scheduler(env)
    wait_for(lambda: issue_statuses(sessions) == [expected], 30, f"a {expected} issue")
    wait_for(lambda: heartbeat(sessions) is not None, 10, "the heartbeat")
    beat = heartbeat(sessions)
    assert beat is not None and "T09:00:00" in beat["next_runs"]["daily"]
    code, err = stop(proc)
    assert code == 0, err[-2000:]
    mailed = outbox_recipients(tmp_path / "outbox")
    assert mailed == (dict.fromkeys(addresses, 1) if expected == "sent" else {})
    names = [e["event"] for e in events(err)]
    assert "scheduler.started" in names and "scheduler.stopped" in names
    assert (heartbeat(sessions) or {}).get("stopped") is True


def test_sigterm_mid_send_records_the_batch_in_flight_and_a_restart_finishes_the_send(
    database_url: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    start_scheduler: Callable[..., subprocess.Popen[str]],
    real_now_clock: FixedClock,
) -> None:
    now = real_now_clock.now()
    seed_articles(sessions, [now - timedelta(hours=4)])
    addresses = seed_subscribers(sessions, real_now_clock, 120)
    env = scheduler_env(
        database_url,
        tmp_path,
        timezone=zone_at_local_hour(12),
        send_time="09:00",
        catchup_deadline="15:00",
        send_batch_size="10",
        send_concurrency="2",
        rate_messages="25",  # 25 at once, then 25 a second: time to stop it half-way, loaded too
    )
    outbox = tmp_path / "outbox"
    proc = start_scheduler(env)
    wait_for(lambda: len(list(outbox.glob("issue-*/*.eml"))) >= 10, 30, "the send to start")
    code, err = stop(proc)
    assert code == 0, err[-2000:]
    mailed = outbox_recipients(outbox)
    with sessions() as session:
        accepted = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .outerjoin(SendBatch, SendBatch.id == Delivery.batch_id)
            .where(delivery_status() == "accepted")
        )
    assert issue_statuses(sessions) == ["sending"]
    assert 0 < sum(mailed.values()) < len(addresses)
    assert accepted == sum(mailed.values())  # everything mailed is in the ledger
    restarted = start_scheduler(env)
    wait_for(lambda: issue_statuses(sessions) == ["sent"], 30, "the resumed send to finish")
    code, err = stop(restarted)
    assert code == 0, err[-2000:]
    assert outbox_recipients(outbox) == dict.fromkeys(addresses, 1)
