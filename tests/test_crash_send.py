"""A send killed with SIGKILL mid-flight and restarted: nobody gets the issue twice.

`newsletter issue send` runs in its own process against the local SendGrid-compatible server
(with latency, so the kill lands while batches are in flight). After the restart every
recipient was accepted exactly once, except the in-doubt batches the ledger reports: those
were posted by the killed process, whose outcome it never recorded.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from newsletter.delivery.status import send_status
from tests.fixtures.delivery import (
    SendGridProcess,
    newsletter_command,
    newsletter_env,
    seed_send,
)

SUBSCRIBERS = 1500


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_a_send_killed_mid_flight_resumes_without_sending_anyone_twice(
    sessions: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
    sendgrid_process: Callable[..., SendGridProcess],
) -> None:
    seeded = seed_send(sessions, SUBSCRIBERS)
    server = sendgrid_process("--latency", "0.05")
    env = newsletter_env(database_url, server.url, tmp_path)
    command = newsletter_command(
        "issue", "send", str(seeded.issue_id), "--json",
        "--batch-size", "25", "--concurrency", "3", "--lease", "2",
    )  # fmt: skip

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: server.stats()["accepted_recipients"] >= 300, 30, "the send to start")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    sent_before_restart = server.stats()["accepted_recipients"]
    assert sent_before_restart < SUBSCRIBERS, "the kill came too late to test anything"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)

    with sessions() as session:
        status = send_status(session, seeded.issue_id)
    stats = server.stats()
    in_doubt = status.recipients["in_doubt"]
    accepted = status.recipients["accepted"]
    assert stats["duplicates"] == 0
    assert accepted + in_doubt == SUBSCRIBERS
    # The server saw every accepted recipient once, plus some (or all) of the in-doubt ones.
    assert accepted <= stats["unique_recipients"] <= accepted + in_doubt
    assert in_doubt <= 3 * 25  # bounded by the batches in flight when the process died
    assert report["in_doubt"] == in_doubt
    assert status.issue_status == "sent"
