"""`newsletter compact`: an older SQLite database rewritten with the current page size, its
rows and its write-ahead-log mode kept; refused, with nothing changed, while it is in use."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from newsletter.cli.context import AppContext
from newsletter.cli.main import cli
from newsletter.config import Secret, load_settings
from newsletter.db.compact import compact_sqlite
from newsletter.db.models import MailingList
from newsletter.db.session import SQLITE_PAGE_SIZE, make_engine, session_factory
from newsletter.errors import DatabaseError

NOW = datetime(2026, 6, 12, 21, 30, tzinfo=UTC)


@pytest.fixture
def old_database(sqlite_path_with_4_kib_pages: Path) -> Path:
    """A database with one list, made with 4 KiB pages."""
    engine = make_engine(f"sqlite:///{sqlite_path_with_4_kib_pages}")
    with session_factory(engine).begin() as session:
        session.add(MailingList(slug="daily", name="AI日報", created_at=NOW))
    engine.dispose()
    return sqlite_path_with_4_kib_pages


def _pragma(path: Path, name: str) -> object:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]


def _lists(path: Path) -> list[str]:
    engine = make_engine(f"sqlite:///{path}")
    try:
        with session_factory(engine)() as session:
            return list(session.scalars(select(MailingList.slug)))
    finally:
        engine.dispose()


def _run(path_or_url: str, *args: str) -> Result:
    app = AppContext()
    url = path_or_url if "://" in path_or_url else f"sqlite:///{path_or_url}"
    app._settings = load_settings(
        {}, database_url=url, secret_keys=(Secret("test-secret-key-0123456789abcdef"),)
    )
    return CliRunner().invoke(cli, ["compact", *args], obj=app)


def test_an_old_database_gets_the_current_page_size_and_keeps_its_rows_and_log_mode(
    old_database: Path,
) -> None:
    assert _pragma(old_database, "page_size") == 4096
    report = compact_sqlite(old_database)
    assert (report.page_size_before, report.page_size) == (4096, SQLITE_PAGE_SIZE)
    assert _pragma(old_database, "page_size") == SQLITE_PAGE_SIZE
    assert _pragma(old_database, "journal_mode") == "wal"
    assert _lists(old_database) == ["daily"]


def test_a_database_in_use_is_refused_and_left_as_it_was(old_database: Path) -> None:
    with closing(sqlite3.connect(old_database)) as other:  # idle between requests, like `serve`
        assert other.execute("SELECT count(*) FROM lists").fetchone()[0] == 1
        with pytest.raises(DatabaseError, match="in use by another process"):
            compact_sqlite(old_database)
        assert other.execute("SELECT count(*) FROM lists").fetchone()[0] == 1
    assert _pragma(old_database, "page_size") == 4096
    assert _pragma(old_database, "journal_mode") == "wal"


def test_the_command_reports_the_rewrite_as_json(old_database: Path) -> None:
    result = _run(str(old_database), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["page_size_before"], report["page_size"]) == (4096, 16384)
    assert report["bytes_after"] > 0


def test_the_command_names_a_missing_database_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "var" / "newsletter.db"
    result = _run(str(missing))
    assert result.exit_code == DatabaseError.exit_code
    assert f"no database at {missing}" in result.output
    assert not missing.parent.exists()


def test_the_command_explains_that_postgresql_is_not_compacted() -> None:
    result = _run("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert result.exit_code == DatabaseError.exit_code
    assert "PostgreSQL manages its own pages" in result.output


def test_compacting_twice_changes_nothing_more(old_database: Path) -> None:
    compact_sqlite(old_database)
    again = compact_sqlite(old_database)
    assert again.page_size_before == again.page_size == SQLITE_PAGE_SIZE
    with closing(sqlite3.connect(old_database)) as connection:
        assert connection.execute("SELECT count(*) FROM lists").fetchone()[0] == 1
