"""SQLite's write-ahead log after one large transaction: copied into the database on a thread
of its own instead of inside the commit.

A commit that leaves more than `wal_autocheckpoint` pages in the log copies the whole log into
the database before it returns. After planning a million deliveries that is about 100 MB and a
quarter of a second, spent before the first batch can leave. Copied beside the send instead, it
overlaps the provider's answers. SQLite allows one checkpoint at a time and a passive one never
blocks readers or writers, so a sending thread's own automatic checkpoint that finds this one
running just returns. Nothing is less durable: the log already holds the committed
transaction, synced as `synchronous=NORMAL` asks.

A process never forks while such a thread is inside SQLite (a child would inherit SQLite's
locks held): the fork waits for it (`os.register_at_fork`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

_RUNNING: set[threading.Thread] = set()
_RUNNING_LOCK = threading.Lock()


@contextmanager
def checkpoint_after(connection: Connection, engine: Engine) -> Iterator[None]:
    """No automatic checkpoint at this connection's commits inside the block; when the block
    ends well, the log is checkpointed on a background thread with a connection of its own.
    Either way the connection's own setting is put back (a broken connection is the caller's
    to invalidate). A database without a write-ahead log (in memory) is left as it is."""
    if connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() != "wal":
        yield
        return
    pages = int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())
    connection.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
    try:
        yield
    except BaseException:
        with suppress(Exception):
            connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={pages}")
        raise
    connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={pages}")
    database = engine.url.database or ""
    if not database.startswith("file:"):
        database = os.path.abspath(database)  # the thread must not follow a later chdir
    thread = threading.Thread(target=_checkpoint, args=(database,), name="wal-checkpoint")
    with _RUNNING_LOCK:
        _RUNNING.add(thread)
    thread.start()


def wait_for_checkpoints() -> None:
    """Until every background checkpoint of this process has ended."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for thread in running:
        thread.join()


def _checkpoint(database: str) -> None:
    """On a connection of its own, outside the engine's pool: a pool that the sending threads
    hold entirely would keep it waiting."""
    try:
        with closing(sqlite3.connect(database, uri=database.startswith("file:"))) as connection:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error as err:  # the next commit's automatic checkpoint does the work instead
        log.warning("background WAL checkpoint failed: %s", err)
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(threading.current_thread())


os.register_at_fork(before=wait_for_checkpoints)
