"""Fixtures for the real parts: a database (SQLite, and PostgreSQL when reachable), settings.

PostgreSQL tests read NEWSLETTER_TEST_POSTGRES_URL (default: the local server on 127.0.0.1).
Where no server answers they skip with the reason; with NEWSLETTER_TEST_REQUIRE_SERVICES=1
(set by .ci/run) a skip of a needed service is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Secret, Settings, load_settings
from newsletter.db.migrate import upgrade
from newsletter.db.session import make_engine, session_factory

pytest_plugins = [
    "tests.fixtures.articles",
    "tests.fixtures.render",
    "tests.fixtures.providers",
    "tests.fixtures.delivery",
    "tests.fixtures.subscribers",
    "tests.fixtures.web",
    "tests.fixtures.edition",
    "tests.fixtures.scheduler",
]

POSTGRES_URL = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("NEWSLETTER_TEST_REQUIRE_SERVICES") == "1"


def service_unavailable(reason: str) -> None:
    """Skip on a user's machine; fail in CI, where every service must be exercised."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def _postgres_reachable() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as err:  # any failure means "not here"; the reason is shown
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {str(err).splitlines()[0]}"


_PG_PROBLEM: str | None | bool = False  # False: not probed yet


def postgres_url_for_schema(schema: str) -> str:
    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"


def empty_postgres_tables(engine: Engine) -> None:
    """Empty every table of the engine's schema and restart its sequences, as `TRUNCATE ...
    RESTART IDENTITY CASCADE` would: DELETEs (children first) in one round trip, many times
    faster than TRUNCATE on the few rows a test leaves (TRUNCATE makes new files per table)."""
    from newsletter.db.models import Base

    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name != "alembic_version"]
    with engine.begin() as conn:
        sequences = conn.exec_driver_sql(
            "SELECT sequence_name FROM information_schema.sequences"
            " WHERE sequence_schema = current_schema()"
        ).scalars()
        conn.exec_driver_sql(
            "".join(f'DELETE FROM "{table}";' for table in tables)
            + "".join(f'ALTER SEQUENCE "{sequence}" RESTART;' for sequence in sequences)
        )


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test, dropped afterwards."""
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _postgres_reachable()
    if _PG_PROBLEM:
        service_unavailable(str(_PG_PROBLEM))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_url_for_schema(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test on SQLite and on PostgreSQL (the contract holds on both). The PostgreSQL
    schema is already at head (`migrated_postgres_url`); the SQLite file is made by `engine`."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'newsletter.db'}"
    return request.getfixturevalue("migrated_postgres_url")


# Schemas at head, emptied after each test and handed to the next: creating a schema and sending
# it the migrations' statements costs more than most tests (0.6-0.9 s); emptying it, 0.06 s.
_SCHEMA_POOL: list[str] = []
_SCHEMA_SHAPE: tuple[Any, ...] | None = None  # the catalog's shape of a schema at head

_SHAPE_SQL = """
SELECT
  (SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace),
  (SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0
      AND NOT a.attisdropped),
  (SELECT count(*) FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid
    WHERE c.relnamespace = current_schema()::regnamespace),
  (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = current_schema()::regnamespace),
  (SELECT count(*) FROM pg_constraint WHERE connamespace = current_schema()::regnamespace),
  (SELECT count(*) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace),
  (SELECT string_agg(version_num, ',') FROM alembic_version)
"""


def _schema_shape(engine: Engine) -> tuple[Any, ...] | None:
    try:
        with engine.connect() as conn:
            return tuple(conn.exec_driver_sql(_SHAPE_SQL).one())
    except Exception:  # no alembic_version any more, a broken schema: never reuse it
        return None


@pytest.fixture(scope="session")
def _postgres_schema_pool() -> Iterator[list[str]]:
    yield _SCHEMA_POOL
    if _SCHEMA_POOL:
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            for schema in _SCHEMA_POOL:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        _SCHEMA_POOL.clear()


@pytest.fixture
def migrated_postgres_url(
    request: pytest.FixtureRequest, _postgres_schema_pool: list[str]
) -> Iterator[str]:
    """A PostgreSQL schema at head for one test, with no rows. A schema a test changed (a
    trigger, a column, a table, another revision) is dropped, never handed on."""
    global _SCHEMA_SHAPE
    statements = request.getfixturevalue("postgres_migration_statements")
    if _postgres_schema_pool:
        schema = _postgres_schema_pool.pop()
    else:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        eng = create_engine(postgres_url_for_schema(schema))
        with eng.begin() as conn:
            for statement, parameters in statements:
                conn.exec_driver_sql(statement, parameters)
        if _SCHEMA_SHAPE is None:
            _SCHEMA_SHAPE = _schema_shape(eng)
        eng.dispose()
    url = postgres_url_for_schema(schema)
    yield url
    eng = create_engine(url)
    reusable = _SCHEMA_SHAPE is not None and _schema_shape(eng) == _SCHEMA_SHAPE
    if reusable:
        try:
            empty_postgres_tables(eng)
        except Exception:
            reusable = False
    eng.dispose()
    if reusable:
        _postgres_schema_pool.append(schema)
    else:
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests about behaviour that does not depend on the database."""
    return f"sqlite:///{tmp_path / 'newsletter.db'}"


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per run; `engine` copies it (same bytes)."""
    path = tmp_path_factory.mktemp("migrated") / "template.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()  # the last connection closed: the WAL is checkpointed into the file
    return path


@pytest.fixture
def migrated_sqlite_url(sqlite_url: str, migrated_sqlite_template: Path) -> str:
    """`sqlite_url` with the schema at head in place: a copy of the file migrated once."""
    shutil.copyfile(migrated_sqlite_template, sqlite_url.removeprefix("sqlite:///"))
    return sqlite_url


@pytest.fixture
def sqlite_path_with_4_kib_pages(tmp_path: Path) -> Path:
    """A SQLite file with the schema at head, made as databases were before new ones got
    16 KiB pages: SQLite's former default of 4 KiB, in WAL mode."""
    path = tmp_path / "made-with-4-kib-pages.db"
    with closing(sqlite3.connect(path)) as made_before:
        made_before.execute("PRAGMA page_size=4096")
        made_before.execute("PRAGMA journal_mode=WAL")
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_migration_statements() -> list[tuple[str, Any]]:
    """Every statement the migrations send to an empty PostgreSQL schema, recorded once per run
    on a scratch schema; `engine` sends the same statements to each test's own schema."""
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _postgres_reachable()
    if _PG_PROBLEM:
        service_unavailable(str(_PG_PROBLEM))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    recorded: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        recorded.append((statement, parameters))

    eng = make_engine(postgres_url_for_schema(schema))
    event.listen(eng, "before_cursor_execute", record)
    try:
        upgrade(eng)
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return recorded


@pytest.fixture
def engine(database_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The test's database migrated to head, without running Alembic for every test: SQLite
    gets a copy of a file migrated once, PostgreSQL a schema that was sent the statements the
    migrations sent once (tests/test_foundation.py holds both equal to `upgrade`), emptied
    between tests."""
    eng = make_engine(database_url)
    if eng.dialect.name == "sqlite":
        path = Path(eng.url.database or "")
        if path.exists() and path.stat().st_size:  # a database already there: migrate it
            upgrade(eng)
        else:
            shutil.copyfile(request.getfixturevalue("migrated_sqlite_template"), path)
    # PostgreSQL: `database_url` gave a schema already at head (`migrated_postgres_url`).
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 6, 12, 21, 30, tzinfo=UTC))  # 06:30 JST, June 13


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for a test: the test's database, outbox under tmp_path, a fixed secret."""
    return load_settings(
        {},
        database_url=database_url,
        outbox_dir=tmp_path / "outbox",
        var_dir=tmp_path / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
        base_url="https://news.example.com",
    )
