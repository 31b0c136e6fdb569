"""The foundation: schema on both databases, settings errors that name the variable."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import load_settings
from newsletter.db.migrate import head_revision, is_up_to_date, upgrade
from newsletter.db.models import Issue, MailingList, Subscriber
from newsletter.db.session import SQLITE_PAGE_SIZE, make_engine
from newsletter.errors import ConfigError

NOW = datetime(2026, 6, 13, tzinfo=UTC)


def _schema(engine: Engine) -> list[tuple[object, ...]]:
    """Everything the migrations leave in a database: tables, columns, constraints, indexes,
    sequences, and the Alembic revision."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # Alembic's batch mode writes a rebuilt table's constraints in no fixed order.
            rows = [
                (kind, name, table, sorted(line.strip(" ,") for line in (sql or "").splitlines()))
                for kind, name, table, sql in conn.exec_driver_sql(
                    "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
                )
            ]
        else:
            rows = conn.exec_driver_sql(
                "SELECT 'column', table_name, column_name, data_type,"
                " coalesce(character_maximum_length, -1)::text, is_nullable,"
                " coalesce(column_default, '') FROM information_schema.columns"
                " WHERE table_schema = current_schema()"
                " UNION ALL SELECT 'constraint', c.conrelid::regclass::text, c.conname,"
                " c.contype::text, pg_get_constraintdef(c.oid), '', '' FROM pg_constraint c"
                " WHERE c.connamespace = current_schema()::regnamespace"
                " UNION ALL SELECT 'index', tablename, indexname, indexdef, '', '', ''"
                " FROM pg_indexes WHERE schemaname = current_schema()"
                " UNION ALL SELECT 'sequence', sequence_name, data_type, start_value,"
                " increment, '', '' FROM information_schema.sequences"
                " WHERE sequence_schema = current_schema()"
                " ORDER BY 1, 2, 3"
            ).all()
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
            rows = [tuple(str(v).replace(f"{schema}.", "") for v in row) for row in rows]
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return [tuple(row) for row in rows] + [("alembic_version", *v) for v in version]


def _migrated_like_the_fixture(migrated: Engine, engine: Engine) -> None:
    upgrade(migrated)
    assert head_revision(migrated) is not None
    assert is_up_to_date(migrated)
    assert _schema(migrated) == _schema(engine)


def test_migrations_bring_the_schema_to_head(engine: Engine, tmp_path) -> None:
    """`upgrade` on an empty database, and the `engine` fixture's migrated copy (a file
    migrated once, or the migrations' statements replayed) is that same schema."""
    from newsletter.db.session import make_engine
    from tests.conftest import POSTGRES_URL, postgres_url_for_schema

    if engine.dialect.name == "sqlite":
        migrated = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
        _migrated_like_the_fixture(migrated, engine)
        migrated.dispose()
    else:
        import uuid

        from sqlalchemy import create_engine

        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
        migrated = make_engine(postgres_url_for_schema(name))
        try:
            _migrated_like_the_fixture(migrated, engine)
        finally:
            migrated.dispose()
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
            admin.dispose()
    assert is_up_to_date(engine)


def test_models_match_the_migrations(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from newsletter.db.models import Base

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_one_issue_per_list_and_date(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        lst = MailingList(slug="daily", name="AI日報", created_at=NOW)
        session.add(lst)
        session.flush()
        for _ in range(2):
            session.add(
                Issue(
                    list_id=lst.id,
                    issue_date=date(2026, 6, 13),
                    window_start=NOW,
                    cutoff_at=NOW,
                    created_at=NOW,
                    built_at=NOW,
                )
            )
        with pytest.raises(IntegrityError):
            session.flush()


def test_subscriber_email_key_is_unique(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        for email in ("Taro@Example.com", "taro@example.com"):
            session.add(
                Subscriber(
                    email=email,
                    email_key=email.lower(),
                    email_hash="h",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        with pytest.raises(IntegrityError):
            session.flush()


def test_utc_datetimes_come_back_timezone_aware(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        session.add(MailingList(slug="daily", name="AI日報", created_at=NOW))
        session.commit()
    with sessions() as session:
        stored = session.query(MailingList).one().created_at
    assert stored == NOW and stored.tzinfo is not None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NEWSLETTER_PROVIDER", "pigeon"),
        ("NEWSLETTER_TIMEZONE", "Mars/Olympus"),
        ("NEWSLETTER_SEND_TIME", "7am"),
        ("NEWSLETTER_BASE_URL", "ftp://example.com"),
        ("NEWSLETTER_DATABASE_URL", "mysql://x"),
        ("NEWSLETTER_FROM", "not an address"),
    ],
)
def test_an_invalid_setting_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({variable: value}, create_secret=False, secret_keys=())
    assert str(err.value).startswith(variable)
    assert "\n" not in str(err.value)


def test_sendgrid_provider_needs_an_api_key() -> None:
    with pytest.raises(ConfigError, match="^SENDGRID_API_KEY"):
        load_settings({"NEWSLETTER_PROVIDER": "sendgrid"}, create_secret=False, secret_keys=())


def test_secrets_never_print() -> None:
    settings = load_settings(
        {"SENDGRID_API_KEY": "SG.supersecret"}, create_secret=False, secret_keys=()
    )
    assert "supersecret" not in repr(settings)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_upgrading_a_database_with_sent_issues_keeps_every_row(
    backend: str, tmp_path, request: pytest.FixtureRequest
) -> None:
    """0002 rebuilds `issues` on SQLite (a wider status): the rows that reference an issue
    (its articles, its ledger) must survive, not cascade away with the old table."""
    from sqlalchemy import text

    from newsletter.db.migrate import upgrade
    from newsletter.db.session import make_engine

    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_schema_url")
    )
    engine = make_engine(url)
    upgrade(engine, "0001")
    stamp = "'2026-06-13 00:00:00'"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO lists (id, slug, name, double_opt_in, created_at)"
                f" VALUES (1, 'daily', 'AI日報', true, {stamp})"
            )
        )
        conn.execute(
            text(
                "INSERT INTO issues (id, list_id, issue_date, status, window_start, cutoff_at,"
                f" created_at, built_at) VALUES (1, 1, '2026-06-13', 'sent', {stamp}, {stamp},"
                f" {stamp}, {stamp})"
            )
        )
        conn.execute(
            text(
                "INSERT INTO send_batches (id, issue_id, variant, status, size, attempts,"
                f" created_at, updated_at) VALUES (1, 1, 'ja', 'accepted', 1, 1, {stamp}, {stamp})"
            )
        )
        conn.execute(
            text(
                "INSERT INTO deliveries (id, issue_id, batch_id, variant, status, updated_at)"
                f" VALUES (1, 1, 1, 'ja', 'accepted', {stamp})"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        counts = [
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("issues", "send_batches", "deliveries")
        ]
        if backend == "sqlite":
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1  # on again
    engine.dispose()
    assert counts == [1, 1, 1]
    assert is_up_to_date(make_engine(url))


@pytest.mark.postgres
def test_emptying_a_shared_postgres_schema_leaves_it_as_truncate_would(
    postgres_schema_url: str,
) -> None:
    """The web and subscribers tests share one migrated schema, emptied before each test:
    every table empty, every id starting at 1 again, the schema still at head."""
    from sqlalchemy import text

    from newsletter.db.session import make_engine
    from tests.conftest import empty_postgres_tables

    engine = make_engine(postgres_schema_url)
    upgrade(engine)
    stamp = "'2026-06-13 00:00:00+00'"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO lists (slug, name, double_opt_in, created_at)"
                f" VALUES ('daily', 'AI日報', true, {stamp})"
            )
        )
        conn.execute(
            text(
                "INSERT INTO issues (list_id, issue_date, status, window_start, cutoff_at,"
                f" created_at, built_at) VALUES (1, '2026-06-13', 'sent', {stamp}, {stamp},"
                f" {stamp}, {stamp})"
            )
        )
    empty_postgres_tables(engine)
    with engine.begin() as conn:
        tables = conn.execute(
            text(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name != 'alembic_version'"
            )
        ).scalars()
        counts = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() for t in tables}
        new_id = conn.execute(
            text(
                "INSERT INTO lists (slug, name, double_opt_in, created_at)"
                f" VALUES ('daily', 'AI日報', true, {stamp}) RETURNING id"
            )
        ).scalar()
    assert len(counts) > 20 and set(counts.values()) == {0}
    assert new_id == 1
    assert is_up_to_date(engine)
    engine.dispose()


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_a_new_sqlite_database_is_made_with_16_kib_pages_in_wal_mode(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        upgrade(engine)
        assert _pragma(engine, "page_size") == SQLITE_PAGE_SIZE == 16384
        assert _pragma(engine, "journal_mode") == "wal"
    finally:
        engine.dispose()


def test_an_existing_sqlite_database_keeps_its_page_size_and_its_rows(tmp_path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # made before: SQLite's default pages, WAL
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE kept (n INTEGER)")
        old.execute("INSERT INTO kept VALUES (1), (2)")
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert _pragma(engine, "page_size") == 4096
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO kept VALUES (3)")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT sum(n) FROM kept").scalar() == 6
    finally:
        engine.dispose()
