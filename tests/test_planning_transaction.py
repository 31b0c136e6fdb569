"""Planning's transaction: on SQLite without per-row foreign-key lookups, and only there; its
write-ahead log copied into the database beside the send, not inside its commit."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import checkpoint
from newsletter.db.checkpoint import wait_for_checkpoints
from newsletter.db.models import MailingList
from newsletter.db.session import make_engine, planning_transaction, session_factory

NOW = datetime(2026, 6, 12, 21, 30, tzinfo=UTC)


def _new_list(slug: str) -> MailingList:
    return MailingList(slug=slug, name=slug.title(), created_at=NOW)


def _foreign_keys_on(session: Session) -> bool:
    return bool(session.execute(text("PRAGMA foreign_keys")).scalar())


def _lists(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(MailingList)) or 0


def test_sqlite_plans_without_foreign_key_lookups_and_turns_them_back_on(migrated_sqlite_url):
    engine = make_engine(migrated_sqlite_url, pool_size=1, max_overflow=0)  # one connection
    sessions = session_factory(engine)
    try:
        with planning_transaction(sessions) as session:
            assert not _foreign_keys_on(session)
            session.add(_new_list("planned"))
        with sessions() as session:  # the pool's connection, the same one
            assert _foreign_keys_on(session)
        assert _lists(sessions) == 1
    finally:
        engine.dispose()


def test_foreign_keys_come_back_on_and_nothing_is_kept_when_planning_fails(sessions):
    with pytest.raises(RuntimeError), planning_transaction(sessions) as session:
        session.add(_new_list("half"))
        session.flush()
        raise RuntimeError("planning failed")
    assert _lists(sessions) == 0
    if sessions.kw["bind"].dialect.name == "sqlite":
        with sessions() as session:
            assert _foreign_keys_on(session)


def test_a_connection_that_cannot_turn_its_keys_back_on_is_never_reused(migrated_sqlite_url):
    engine = make_engine(migrated_sqlite_url, pool_size=1, max_overflow=0)  # one connection
    sessions = session_factory(engine)
    broken = {"on": True}

    @event.listens_for(engine, "before_cursor_execute")
    def fail_turning_keys_on(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if broken["on"] and statement == "PRAGMA foreign_keys=ON":
            raise sqlite3.OperationalError("disk I/O error")

    try:
        with planning_transaction(sessions) as session:
            session.add(_new_list("planned"))
        broken["on"] = False
        with sessions() as session:  # a new connection, with its keys on
            assert _foreign_keys_on(session)
        assert _lists(sessions) == 1
    finally:
        engine.dispose()


def _write_20_mb(session: Session) -> None:
    """About 5,000 pages, past SQLite's automatic checkpoint (1,000 pages)."""
    session.execute(text("CREATE TABLE bulk (payload TEXT)"))
    session.execute(
        text(
            "INSERT INTO bulk WITH RECURSIVE n(i) AS "
            "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
            "SELECT printf('%.1000c', 'x') FROM n"
        )
    )


def test_planning_commits_without_copying_its_log_and_a_thread_copies_it_after(
    migrated_sqlite_url, monkeypatch
):
    engine = make_engine(migrated_sqlite_url)
    sessions = session_factory(engine)
    database = Path(engine.url.database or "")
    go = threading.Event()
    copy = checkpoint._checkpoint
    monkeypatch.setattr(checkpoint, "_checkpoint", lambda e: go.wait(10) and copy(e))
    try:
        before = database.stat().st_size
        with planning_transaction(sessions) as session:
            _write_20_mb(session)
        with sessions() as session:  # committed
            assert session.execute(text("SELECT count(*) FROM bulk")).scalar() == 20_000
        assert database.stat().st_size == before  # all of it still in the log
        go.set()
        wait_for_checkpoints()
        assert database.stat().st_size > before + 20_000_000
    finally:
        go.set()
        wait_for_checkpoints()
        engine.dispose()


def test_planning_hands_its_connection_back_with_automatic_checkpoints_on(migrated_sqlite_url):
    engine = make_engine(migrated_sqlite_url, pool_size=1, max_overflow=0)  # one connection
    sessions = session_factory(engine)
    try:
        with planning_transaction(sessions) as session:
            session.add(_new_list("planned"))
        with pytest.raises(RuntimeError), planning_transaction(sessions) as session:
            raise RuntimeError("planning failed")
        with sessions() as session:  # the pool's connection, the same one
            assert session.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000
    finally:
        wait_for_checkpoints()
        engine.dispose()
