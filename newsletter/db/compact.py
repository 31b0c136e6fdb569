"""Rewriting a SQLite database file with the current page size and no free pages.

A database made before new ones got 16 KiB pages (`session.SQLITE_PAGE_SIZE`) keeps its 4 KiB
pages: SQLite changes the size only when it rewrites the whole file (VACUUM), and never in
write-ahead-log mode. `compact_sqlite` leaves that mode for the rewrite and goes back to it
afterwards, whatever happened. It needs the file to itself: while any other connection is open
(a send, `serve`, the scheduler, even idle) SQLite refuses to leave the log mode, and the call
stops with DatabaseError before anything is changed.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

from newsletter.db.session import SQLITE_PAGE_SIZE
from newsletter.errors import DatabaseError

_IN_USE = (
    "{path} is in use by another process (a send, `newsletter serve`, the scheduler or a "
    "worker): stop them, then run this again"
)


@dataclass(frozen=True, slots=True)
class CompactReport:
    path: Path
    page_size_before: int
    page_size: int
    bytes_before: int  # the file and its write-ahead log
    bytes_after: int
    seconds: float


def compact_sqlite(path: Path, page_size: int = SQLITE_PAGE_SIZE) -> CompactReport:
    """Rewrite the database at `path` with `page_size` pages (VACUUM). DatabaseError when it
    does not exist or another connection has it open; then nothing has changed."""
    if not path.is_file():
        raise DatabaseError(f"no database at {path}")
    started = time.monotonic()
    bytes_before = _size(path)
    # timeout=0: fail at once instead of waiting for a process that may run for hours.
    with closing(sqlite3.connect(path, isolation_level=None, timeout=0)) as connection:
        before = int(connection.execute("PRAGMA page_size").fetchone()[0])
        mode = str(connection.execute("PRAGMA journal_mode").fetchone()[0])
        try:
            if mode == "wal":
                connection.execute("PRAGMA journal_mode=DELETE")
            connection.execute(f"PRAGMA page_size={int(page_size)}")
            connection.execute("VACUUM")
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise DatabaseError(_IN_USE.format(path=path)) from None
            raise DatabaseError(f"{path}: {err}") from None
        finally:
            if mode == "wal":
                # Refused only if someone connected meanwhile; every connection the
                # application opens switches the log mode on again anyway.
                with suppress(sqlite3.OperationalError):
                    connection.execute("PRAGMA journal_mode=WAL")
        after = int(connection.execute("PRAGMA page_size").fetchone()[0])
    return CompactReport(
        path=path,
        page_size_before=before,
        page_size=after,
        bytes_before=bytes_before,
        bytes_after=_size(path),
        seconds=time.monotonic() - started,
    )


def _size(path: Path) -> int:
    log = path.with_name(path.name + "-wal")
    return path.stat().st_size + (log.stat().st_size if log.exists() else 0)
