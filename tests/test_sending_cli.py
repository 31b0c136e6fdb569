"""The `issue send|status|pause|resume|cancel|resolve` commands, through the real outbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli.main import cli
from tests.fixtures.delivery import SECRET, SeededSend


@pytest.fixture
def run(database_url: str, tmp_path: Path, engine: object):  # type: ignore[no-untyped-def]
    env = {
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_PROVIDER": "outbox",
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_CONFIG": str(tmp_path / "none.toml"),
        "NEWSLETTER_FROM": "AI日報 <news@example.com>",
    }
    (tmp_path / "none.toml").write_text("", encoding="utf-8")

    def invoke(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def test_issue_send_json_reports_what_was_sent(run, delivery_seed: SeededSend) -> None:  # type: ignore[no-untyped-def]
    report = json.loads(run("issue", "send", str(delivery_seed.issue_id), "--json"))
    assert report["accepted"] == 30
    assert report["status"]["issue_status"] == "sent"


def test_issue_send_with_two_processes_sends_everyone_once(
    run, delivery_seed: SeededSend, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    issue = str(delivery_seed.issue_id)
    report = json.loads(
        run("issue", "send", issue, "--processes", "2", "--batch-size", "3", "--json")
    )
    assert report["accepted"] == 30
    assert report["status"]["issue_status"] == "sent"
    files = list((tmp_path / "outbox").rglob("*.eml"))
    assert len(files) == 30
    assert "0 accepted" in run("issue", "send", issue, "--processes", "2")  # nothing twice


def test_issue_status_counts_recipients_and_shows_one_recipient(
    run, delivery_seed: SeededSend
) -> None:  # type: ignore[no-untyped-def]
    run("issue", "send", str(delivery_seed.issue_id), "--enqueue")
    status = json.loads(run("issue", "status", str(delivery_seed.issue_id), "--json"))
    assert status["recipients"]["queued"] == 30 and status["total"] == 30
    one = run(
        "issue", "status", str(delivery_seed.issue_id), "--recipient", delivery_seed.emails[0]
    )
    assert "r***@example.com: queued" in one
    assert delivery_seed.emails[0] not in one


def test_pause_then_resume_and_the_errors_name_the_state(run, delivery_seed: SeededSend) -> None:  # type: ignore[no-untyped-def]
    issue = str(delivery_seed.issue_id)
    run("issue", "send", issue, "--enqueue")
    run("issue", "pause", issue)
    assert "paused" in run("issue", "send", issue, code=64)
    run("issue", "resume", issue)
    assert "paused" in run("issue", "pause", issue)
    assert "is paused" in run("issue", "send", issue, code=64)


def test_cancel_needs_confirmation_and_stops_the_queue(
    run, delivery_seed: SeededSend, sessions: sessionmaker[Session]
) -> None:  # type: ignore[no-untyped-def]
    issue = str(delivery_seed.issue_id)
    run("issue", "send", issue, "--enqueue")
    assert "30 queued recipients will not get it" in run("issue", "cancel", issue, "--yes")
    status = json.loads(run("issue", "status", issue, "--json"))
    assert status["recipients"]["cancelled"] == 30


def test_resolve_asks_for_a_decision(run, delivery_seed: SeededSend) -> None:  # type: ignore[no-untyped-def]
    assert "choose --resend or --skip" in run(
        "issue", "resolve", str(delivery_seed.issue_id), code=64
    )
    out = json.loads(run("issue", "resolve", str(delivery_seed.issue_id), "--skip", "--json"))
    assert out == {"issue_id": delivery_seed.issue_id, "reconciled": 0, "requeued": 0, "skipped": 0}


# --- through SendGrid (the local stand-in): preflight, truthful exit codes, retry ------------


@pytest.fixture
def run_sendgrid(database_url: str, tmp_path: Path, engine: object, sendgrid_server):  # type: ignore[no-untyped-def]
    from tests.fixtures.providers import SENDGRID_TEST_KEY

    env = {
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_PROVIDER": "sendgrid",
        "SENDGRID_API_KEY": SENDGRID_TEST_KEY,
        "NEWSLETTER_SENDGRID_HOST": sendgrid_server.url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_CONFIG": str(tmp_path / "none.toml"),
        "NEWSLETTER_FROM": "AI日報 <news@example.com>",
        "NEWSLETTER_BASE_URL": "https://news.example.com",
    }
    (tmp_path / "none.toml").write_text("", encoding="utf-8")

    def invoke(*args: str, code: int = 0, **overrides: str) -> tuple[str, str]:
        result = CliRunner().invoke(
            cli, list(args), env={**env, **overrides}, catch_exceptions=False
        )
        assert result.exit_code == code, result.output + result.stderr
        return result.stdout, result.stderr

    return invoke


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("NEWSLETTER_FROM", "AI日報 <newsletter@localhost>", "NEWSLETTER_FROM"),
        ("NEWSLETTER_BASE_URL", "http://news.example.com", "NEWSLETTER_BASE_URL"),
        ("SENDGRID_API_KEY", "revoked-key", "SENDGRID_API_KEY"),
    ],
    ids=["from-at-localhost", "base-url-not-https", "key-refused"],
)
def test_a_setting_that_would_fail_every_batch_stops_the_send_before_planning(
    run_sendgrid, delivery_seed: SeededSend, sendgrid_server, setting: str, value: str, named: str
) -> None:  # type: ignore[no-untyped-def]
    issue = str(delivery_seed.issue_id)
    _, err = run_sendgrid("issue", "send", issue, code=78, **{setting: value})
    assert named in err and len(err.strip().splitlines()) == 1
    status = json.loads(run_sendgrid("issue", "status", issue, "--json")[0])
    assert status["total"] == 0  # nothing was planned
    assert sendgrid_server.stats()["requests"] == 0


def test_health_provider_runs_the_same_checks_without_sending(
    run_sendgrid, sendgrid_server
) -> None:  # type: ignore[no-untyped-def]
    out, _ = run_sendgrid("health", "--provider", "--json", code=2, SENDGRID_API_KEY="revoked")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["provider"]["status"] == "failing"
    assert "SendGrid refused the key" in checks["provider"]["detail"]
    assert sendgrid_server.stats()["accepted_requests"] == 0


def test_a_send_refused_for_everyone_exits_69_and_retry_sends_everyone_once(
    run_sendgrid, delivery_seed: SeededSend, sendgrid_server
) -> None:  # type: ignore[no-untyped-def]
    issue = str(delivery_seed.issue_id)
    sendgrid_server.configure(script=[403] * 20)  # e.g. a From the account may not use
    _, err = run_sendgrid("issue", "send", issue, code=69)
    assert "failed for every recipient" in err and f"issue retry {issue}" in err
    status = json.loads(run_sendgrid("issue", "status", issue, "--json")[0])
    assert status["issue_status"] == "failed"

    dry, _ = run_sendgrid("issue", "retry", issue, "--dry-run")
    assert "30 recipients would be sent again" in dry
    assert sendgrid_server.stats()["accepted_recipients"] == 0
    sendgrid_server.configure()
    out, _ = run_sendgrid("issue", "retry", issue)
    assert "30 recipients queued again" in out
    stats = sendgrid_server.stats()
    assert (stats["unique_recipients"], stats["duplicates"]) == (30, 0)
    status = json.loads(run_sendgrid("issue", "status", issue, "--json")[0])
    assert status["issue_status"] == "sent"


def test_a_send_with_refused_addresses_exits_3_and_says_what_retry_would_do(
    run_sendgrid, delivery_seed: SeededSend, sendgrid_server
) -> None:  # type: ignore[no-untyped-def]
    issue = str(delivery_seed.issue_id)
    sendgrid_server.configure(reject_addresses=delivery_seed.emails[:1])
    _, err = run_sendgrid("issue", "send", issue, code=3)
    assert "sent with failures (1 failed)" in err
    out, _ = run_sendgrid("issue", "retry", issue, "--dry-run")
    assert "0 recipients would be sent again" in out and "1 refused address stays failed" in out
