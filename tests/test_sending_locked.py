"""A SQLite database locked by another process for longer than its busy timeout: the sender
waits and retries, and at worst the command ends with one line and exit 69, not a traceback."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update
from sqlalchemy.orm import Session

from newsletter.cli.main import cli
from newsletter.clock import SYSTEM_CLOCK
from newsletter.config import Secret, load_settings
from newsletter.db.models import SendBatch
from newsletter.db.session import make_engine, session_factory
from newsletter.delivery import sender as sender_module
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sender import Sender
from newsletter.errors import DatabaseError
from newsletter.testing.memory_provider import MemoryProvider
from tests.fixtures.delivery import SECRET, seed_send


@pytest.fixture
def database(tmp_path: Path, migrated_sqlite_template: Path) -> str:
    path = tmp_path / "locked.db"
    shutil.copyfile(migrated_sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    seed_send(session_factory(engine), 20)
    engine.dispose()
    return str(path)


class _Holder(threading.Thread):
    release: threading.Event

    def let_go(self) -> None:
        """End the transaction now (the test has seen what it waited for), then join."""
        self.release.set()
        self.join()


def _hold_write_lock(path: str, seconds: float) -> _Holder:
    """Another process's long write transaction (at most `seconds`), as seen from here."""
    ready, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        ready.set()
        release.wait(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    thread = _Holder(target=hold, daemon=True)
    thread.release = release
    thread.start()
    ready.wait(5)
    return thread


def _sender(path: str, tmp_path: Path) -> tuple[Sender, Session]:
    engine = make_engine(f"sqlite:///{path}?timeout=0.2")
    settings = load_settings(
        {},
        database_url=f"sqlite:///{path}",
        var_dir=tmp_path / "var",
        secret_keys=(Secret(SECRET),),
        base_url="https://news.example.com",
    )
    sessions = session_factory(engine)
    sender = Sender(
        sessions, settings, MemoryProvider(), SYSTEM_CLOCK, SendConfig(), worker_id="t:1"
    )
    return sender, sessions()


def _touch_every_batch(session: Session) -> bool:
    session.execute(update(SendBatch).values(worker=None))
    return True


def test_a_lock_released_within_the_retries_is_waited_out(database: str, tmp_path: Path) -> None:
    sender, session = _sender(database, tmp_path)
    holder = _hold_write_lock(database, 1.0)
    assert sender._write(session, _touch_every_batch) is True
    holder.join()
    session.commit()


def test_a_lock_held_past_every_retry_is_one_database_error(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender_module, "_LOCKED_BACKOFF_S", 0.05)  # the same retries, sooner
    sender, session = _sender(database, tmp_path)
    holder = _hold_write_lock(database, 30.0)
    with pytest.raises(DatabaseError, match="stayed locked"):
        sender._write(session, _touch_every_batch)
    assert holder.is_alive()  # still held when the sender gave up
    session.rollback()
    holder.let_go()


def test_the_command_line_says_it_in_one_line_with_exit_69(database: str, tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    holder = _hold_write_lock(database, 30.0)
    result = CliRunner().invoke(
        cli,
        ["issue", "send", "1", "--enqueue"],
        env={
            "NEWSLETTER_DATABASE_URL": f"sqlite:///{database}?timeout=0.3",
            "NEWSLETTER_SECRET_KEY": SECRET,
            "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
            "NEWSLETTER_CONFIG": str(tmp_path / "none.toml"),
        },
    )
    assert holder.is_alive()  # still held when the command gave up
    holder.let_go()
    assert result.exit_code == 69, result.output
    assert result.stderr.strip().splitlines() == ["error: database unavailable: database is locked"]
