"""The admin scripts run end to end against a real database, as cron would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsletter.clock import FixedClock
from newsletter.config import Secret, load_settings
from newsletter.db.migrate import upgrade
from newsletter.db.session import make_engine, session_factory, transaction
from subscribers.service import add_subscriber

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-key-0123456789abcdef"


def _run(script: str, tmp_path: Path, url: str, *args: str) -> dict[str, int]:
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NEWSLETTER_PROVIDER": "outbox",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _database_with_pending(tmp_path: Path, sqlite_url: str, created: datetime) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    settings = load_settings(
        {}, database_url=sqlite_url, var_dir=tmp_path / "var", secret_keys=(Secret(SECRET),)
    )
    with transaction(session_factory(engine)) as session:
        for n in range(3):
            add_subscriber(
                session,
                settings,
                FixedClock(created),
                email=f"pending{n}@example.com",
                status="pending",
            )
    engine.dispose()


def test_repermission_writes_one_confirmation_per_pending_subscription(
    tmp_path: Path, sqlite_url: str
) -> None:
    _database_with_pending(tmp_path, sqlite_url, datetime.now(UTC))
    assert _run("repermission.py", tmp_path, sqlite_url, "--dry-run") == {"pending": 3, "sent": 0}
    assert _run("repermission.py", tmp_path, sqlite_url) == {"list": "daily", "sent": 3}
    assert len(list((tmp_path / "outbox" / "transactional").glob("*.eml"))) == 3


def test_cleanup_expires_old_pending_signups(tmp_path: Path, sqlite_url: str) -> None:
    _database_with_pending(tmp_path, sqlite_url, datetime.now(UTC) - timedelta(days=10))
    assert _run("cleanup_inactive.py", tmp_path, sqlite_url) == {"expired": 3, "purged": 0}
    result = _run("cleanup_inactive.py", tmp_path, sqlite_url, "--purge-days", "0")
    assert result == {"expired": 0, "purged": 3}
