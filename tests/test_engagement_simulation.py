"""`scripts/simulate_clicks.py`: invented reader and machine clicks on a demo issue, so that
`newsletter issue stats` and the chart have per-article numbers to show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from newsletter.db.models import Issue
from newsletter.engagement.stats import issue_engagement
from tests.engagement_support import deliver, make_articles, make_issue, make_list, subscribers_of
from tests.fixtures.delivery import add_subscribers

ROOT = Path(__file__).resolve().parent.parent


def _sent_issue(sessions: sessionmaker[Session], *, tracked: bool) -> int:
    with sessions.begin() as session:
        list_id = make_list(session, clicks=tracked, opens=tracked)
        issue_id = make_issue(session, list_id, make_articles(session))
        subs = subscribers_of(session, add_subscribers(session, list_id, 0, 60))
        deliver(session, issue_id, subs, tracked=tracked)
        return issue_id


def _simulate(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=database_url,
        NEWSLETTER_SECRET_KEY="test-secret-key-0123456789abcdef",
        NEWSLETTER_VAR_DIR=str(tmp_path / "var"),
        NEWSLETTER_CONFIG="",
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "simulate_clicks.py"), *args],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip


def test_simulated_clicks_give_every_top_article_readers_and_keep_machines_apart(
    sessions: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    issue_id = _sent_issue(sessions, tracked=True)
    done = _simulate(database_url, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["issue_id"] == issue_id and report["tracked_recipients"] == 60
    with sessions() as session:
        stats = issue_engagement(session, session.get_one(Issue, issue_id), "ja")
    assert stats.articles[0].unique_clickers > stats.articles[2].unique_clickers > 0
    assert stats.reader_clicks == report["reader_clicks"]
    assert stats.machine_clicks == report["machine_clicks"] > 0
    assert stats.opens is not None and stats.opens.apple_mpp > 0


def test_an_issue_sent_without_tracking_is_refused_with_the_reason(
    sessions: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    issue_id = _sent_issue(sessions, tracked=False)
    done = _simulate(database_url, tmp_path, str(issue_id))
    assert done.returncode == 64
    assert f"issue {issue_id} has no tracked recipients" in done.stderr
