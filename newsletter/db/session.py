"""Engines and sessions. Nothing connects at import time; callers pass the URL in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db.checkpoint import checkpoint_after
from newsletter.errors import DatabaseError

# A new database's page size (SQLite's default is 4 KiB). Planning a send writes a row per
# recipient into three b-trees, and the batch index is filled at one place per variant at
# once: with 16 KiB pages those places split a quarter as often, and planning a million
# recipients takes about a tenth less (8 KiB and 32 KiB were slower, 64 KiB much slower;
# the sending loop, whose commits touch a few pages each, measured no different). An existing
# database keeps the size it was made with: SQLite changes it only on VACUUM, and never in WAL
# mode, so the pragma is a no-op there.
SQLITE_PAGE_SIZE = 16384


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_timeout: bool = True) -> None:
    # WAL lets readers (the web app, `issue status`) run beside a send; busy_timeout makes a
    # second writer wait instead of failing; foreign keys are off by default in SQLite. The
    # page size goes first: switching to WAL writes the header of a new file, fixing its size.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    if busy_timeout:
        cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_pragmas_own_timeout(dbapi_connection: Any, record: Any) -> None:
    """The URL's `?timeout=SECONDS` (the driver's own wait for a locked database) wins."""
    _sqlite_pragmas(dbapi_connection, record, busy_timeout=False)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as err:
        raise DatabaseError(f"NEWSLETTER_DATABASE_URL: cannot parse {url!r}: {err}") from None


def _sqlite_file(parsed: URL) -> Path | None:
    """The file behind a SQLite URL; None for other databases and in-memory ones."""
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for other databases and in-memory ones."""
    return _sqlite_file(_parse(url))


def require_database(url: str) -> None:
    """Raise DatabaseError when a SQLite file does not exist yet (instead of creating it empty).

    Commands that only read call it first, so trying one in an empty folder leaves no `var/`
    behind and says what to do; a server URL is checked by connecting.
    """
    path = _sqlite_file(_parse(url))
    if path is not None and not path.exists():
        raise DatabaseError(f"no database at {path}: run `newsletter init` (or `newsletter demo`)")


def make_engine(url: str, *, create: bool = True, **kwargs: Any) -> Engine:
    """An engine for `url`. Raises DatabaseError.

    With `create` (the default) the folder of a SQLite file is made; without it a missing
    SQLite file is an error (`require_database`), for callers that must not create one.
    """
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            else:
                require_database(url)
        engine = create_engine(url, **kwargs)
        own_timeout = "timeout" in parsed.query
        event.listen(
            engine, "connect", _sqlite_pragmas_own_timeout if own_timeout else _sqlite_pragmas
        )
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(url, **kwargs)


def check_connection(engine: Engine) -> None:
    """Fail early with one line if the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        safe_url = engine.url.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot connect to the database {safe_url}: {reason}") from None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error (never half-written)."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def planning_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """`transaction` for planning a send: on SQLite, without foreign-key lookups.

    Planning inserts a row per recipient whose references are all rows the same transaction
    reads (the issue, locked; the audience) or writes itself (the batches, counted against
    the rows); checking them costs three index lookups a row, a quarter of planning at a
    million. SQLite ignores `PRAGMA foreign_keys` inside a transaction, so it is switched off
    on this connection before the transaction begins and on again after it ends, whatever
    happened (the connection then goes back to the pool as every other one is). Only for
    work that writes no row referencing anything it has not read or written itself, and
    deletes nothing (no cascades run). Elsewhere: `transaction`. The write-ahead log it leaves
    is checkpointed beside the send (`checkpoint_after`), not inside its commit.
    """
    bind = factory.kw.get("bind")
    if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
        with transaction(factory) as session:
            yield session
        return
    with bind.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # no BEGIN yet: it applies
        session = factory(bind=connection)
        try:
            with checkpoint_after(connection, bind):
                yield session
                session.commit()
                connection.commit()
        except BaseException:
            session.rollback()
            connection.rollback()
            raise
        finally:
            session.close()
            try:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
            except Exception:  # a broken connection: never back to the pool without its keys
                connection.invalidate()
