"""Workers: in-process on both databases, and as processes sharing an issue on PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import SYSTEM_CLOCK
from newsletter.config import Settings
from newsletter.db.migrate import upgrade
from newsletter.db.models import Issue
from newsletter.db.session import make_engine, session_factory
from newsletter.delivery.planning import enqueue_issue
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.status import send_status
from newsletter.runtime import Runtime
from newsletter.testing.memory_provider import MemoryProvider, accept
from newsletter.worker import run_worker
from tests.fixtures.delivery import (
    SeededSend,
    SendGridProcess,
    newsletter_command,
    newsletter_env,
    seed_send,
)

CONFIG = SendConfig(batch_size=4, concurrency=2, poll_s=0.01)


def _enqueue(sessions: sessionmaker[Session], settings: Settings, issue_id: int) -> None:
    with sessions.begin() as session:
        issue = session.get_one(Issue, issue_id)
        enqueue_issue(session, issue, settings, SYSTEM_CLOCK, batch_size=4)


def _runtime(sessions: sessionmaker[Session], settings: Settings) -> Runtime:
    engine = sessions.kw["bind"]
    return Runtime(settings=settings, engine=engine, sessions=sessions, clock=SYSTEM_CLOCK)


def test_a_worker_sends_every_queued_batch_once_and_marks_the_issue_sent(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    _enqueue(sessions, settings, delivery_seed.issue_id)
    provider = MemoryProvider()
    progress = run_worker(_runtime(sessions, settings), provider, CONFIG, once=True)
    assert progress.accepted == 30
    assert set(provider.delivered) == set(delivery_seed.emails) and provider.duplicates == 0
    with sessions() as session:
        assert send_status(session, delivery_seed.issue_id).issue_status == "sent"


def test_a_worker_with_nothing_queued_exits_at_once_with_once(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    progress = run_worker(_runtime(sessions, settings), MemoryProvider(), CONFIG, once=True)
    assert progress.batches == 0


def test_a_stopped_worker_records_its_batches_in_flight_before_it_returns(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    _enqueue(sessions, settings, delivery_seed.issue_id)
    stop = threading.Event()

    def rule(_batch: object) -> object:
        stop.set()
        return accept(latency_s=0.05)

    provider = MemoryProvider(rule=rule)  # type: ignore[arg-type]
    run_worker(_runtime(sessions, settings), provider, CONFIG, stop=stop)
    with sessions() as session:
        status = send_status(session, delivery_seed.issue_id)
    assert status.recipients["accepted"] == len(provider.delivered) > 0
    assert status.batches["claimed"] == status.batches["sending"] == 0
    assert status.recipients["in_doubt"] == 0


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_makes_a_worker_process_finish_its_batch_and_exit_0(
    sessions: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
    sendgrid_process: Callable[..., SendGridProcess],
) -> None:
    seeded = seed_send(sessions, 600)
    server = sendgrid_process("--latency", "0.2")
    env = newsletter_env(database_url, server.url, tmp_path)
    enqueue = newsletter_command(
        "issue", "send", str(seeded.issue_id), "--enqueue", "--batch-size", "20"
    )
    subprocess.run(enqueue, env=env, check=True, capture_output=True, timeout=60)
    worker = subprocess.Popen(
        newsletter_command("worker", "--concurrency", "2", "--json"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for(lambda: server.stats()["requests"] >= 2, 30, "the worker to start")
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    totals = json.loads(out)
    with sessions() as session:
        status = send_status(session, seeded.issue_id)
    assert status.recipients["in_doubt"] == 0
    assert status.batches["claimed"] == status.batches["sending"] == 0
    assert (
        status.recipients["accepted"] == totals["accepted"] == server.stats()["unique_recipients"]
    )
    assert 0 < totals["accepted"] < 600


@pytest.mark.slow
@pytest.mark.postgres
def test_three_worker_processes_share_50000_recipients_and_survive_a_sigkill(
    postgres_schema_url: str,
    tmp_path: Path,
    sendgrid_process: Callable[..., SendGridProcess],
) -> None:
    total = 50_000
    engine = make_engine(postgres_schema_url)
    upgrade(engine)
    sessions = session_factory(engine)
    seeded = seed_send(sessions, total)
    server = sendgrid_process("--latency", "0.02")
    env = newsletter_env(postgres_schema_url, server.url, tmp_path)
    enqueue = newsletter_command(
        "issue", "send", str(seeded.issue_id), "--enqueue", "--batch-size", "250"
    )
    subprocess.run(enqueue, env=env, check=True, capture_output=True, timeout=60)
    worker = newsletter_command("worker", "--issue", str(seeded.issue_id), "--concurrency", "2",
                                "--lease", "3", "--json")  # fmt: skip
    workers = [
        subprocess.Popen(worker, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    _wait_for(lambda: server.stats()["accepted_recipients"] >= total // 4, 60, "the send to start")
    workers[0].send_signal(signal.SIGKILL)
    for survivor in workers[1:]:
        _, err = survivor.communicate(timeout=90)
        assert survivor.returncode == 0, err
    workers[0].wait(5)

    with sessions() as session:
        status = send_status(session, seeded.issue_id)
    engine.dispose()
    stats = server.stats()
    accepted, in_doubt = status.recipients["accepted"], status.recipients["in_doubt"]
    # Without provider events the killed worker's batches stay in doubt, and the send with
    # them: it is not called sent while nobody knows whether they went out.
    assert status.issue_status == ("sent" if in_doubt == 0 else "sending")
    assert stats["duplicates"] == 0
    assert accepted + in_doubt == total
    assert accepted <= stats["unique_recipients"] <= accepted + in_doubt
    assert in_doubt <= 2 * 250  # at most the killed worker's batches in flight
    assert len(status.workers) == 3  # the work was really shared
