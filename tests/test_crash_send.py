"""A send killed with SIGKILL mid-flight and restarted: nobody gets the issue twice.

`newsletter issue send` runs in its own process against the local SendGrid-compatible server
(with latency, so the kill lands while batches are in flight). After the restart every
recipient was accepted exactly once, except the in-doubt batches the ledger reports: those
were posted by the killed process, whose outcome it never recorded. With `newsletter serve`
receiving the provider's events, those settle too, with no operator command.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session, sessionmaker

from newsletter.delivery.status import send_status
from tests.fixtures.delivery import (
    SendGridProcess,
    newsletter_command,
    newsletter_env,
    seed_send,
)
from tests.fixtures.web import free_port, make_webhook_key

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
    # No webhook here, so nothing can settle them: the send says so instead of "sent".
    if in_doubt:
        assert second.returncode == 75, second.stderr
        assert status.issue_status == "sending"
        assert "in doubt" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    else:
        assert second.returncode == 0, second.stderr
        assert status.issue_status == "sent"


@pytest.mark.slow
def test_with_events_flowing_back_a_killed_send_settles_everyone_exactly_once(
    sessions: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
    sendgrid_process: Callable[..., SendGridProcess],
) -> None:
    """The defaults (batches of 1000, as many in flight as the adaptive concurrency allows),
    SIGKILL mid-send, `issue send` again, with `newsletter serve` receiving the signed events:
    nobody twice, nobody missing, nothing in doubt, and no operator command."""
    total = 6000
    seeded = seed_send(sessions, total)
    key = make_webhook_key()
    key_file = tmp_path / "events-key.pem"
    key_file.write_bytes(
        key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    port = free_port()
    serve_env = newsletter_env(database_url, "http://unused", tmp_path)
    serve_env["NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY"] = key.public_b64
    serve = subprocess.Popen(
        newsletter_command("serve", "--port", str(port)),
        env=serve_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        webhook = f"http://127.0.0.1:{port}/webhooks/sendgrid"
        _wait_for(lambda: _answers(webhook), 30, "newsletter serve to start")
        server = sendgrid_process(
            "--latency", "0.4", "--events-url", webhook, "--events-key-file", str(key_file)
        )
        env = {**serve_env, "NEWSLETTER_SENDGRID_HOST": server.url}
        env["NEWSLETTER_RECONCILE_AFTER"] = "30"
        command = newsletter_command("issue", "send", str(seeded.issue_id), "--json")
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for(lambda: server.stats()["accepted_recipients"] >= 1000, 60, "the first batch")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert server.stats()["accepted_recipients"] < total, "the kill came too late"

        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        stats = server.stats()
        with sessions() as session:
            status = send_status(session, seeded.issue_id)
    finally:
        serve.terminate()
        serve.wait(10)
    assert stats["duplicates"] == 0
    assert stats["unique_recipients"] == total
    assert status.recipients["accepted"] == total
    assert status.recipients["in_doubt"] == 0
    assert status.issue_status == "sent"


def _answers(url: str) -> bool:
    try:
        httpx.post(url, content=b"[]", timeout=1)
    except httpx.TransportError:
        return False
    return True
