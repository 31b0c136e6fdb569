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
