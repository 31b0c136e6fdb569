"""Database fast paths for the sending core's hottest read: plain driver tuples, and on SQLite
the whole result packed into one JSON row.

Listed in docs/architecture.md ("Where we trade clarity for speed"); the plain version is the
same SELECT through SQLAlchemy's result objects, and the ledger tests run both databases.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


def fetch_plain(session: Session, stmt: Any, params: dict[str, Any]) -> list[Any]:
    """The rows of a SELECT whose columns need no result processing, as the driver's tuples.

    The statement is compiled once per dialect (cached with it) and run on the session's own
    connection, so it sees the session's transaction; this skips building a result row object
    per recipient, a third of the batch load's time.
    """
    connection = session.connection()
    compiled = compiled_once(stmt, connection.dialect)
    values = compiled.construct_params(params)
    if compiled.positiontup is not None:
        parameters: Any = [values[name] for name in compiled.positiontup]
    else:
        parameters = values
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.string, parameters)
        return cursor.fetchall()
    finally:
        cursor.close()


@lru_cache(maxsize=64)
def compiled_once(stmt: Any, dialect: Any) -> Any:
    compiled = stmt.compile(dialect=dialect)
    assert not compiled._bind_processors, "plain fetches take only unprocessed parameters"
    return compiled


def packed(stmt: Select[Any]) -> Select[Any]:
    """`stmt`'s rows as one row holding a JSON array of arrays, in `stmt`'s order (SQLite's
    JSON functions; the rows come out of the subquery in its ORDER BY).

    Why: the sqlite3 module lets go of the GIL and takes it back for every row it steps. With
    the sender's other threads waiting for the GIL, each row became a handoff between threads,
    costing more than the query itself (the batch load: 5.1-5.8 -> 3.0-3.2 us a recipient in
    the threaded sender; the query alone is about 0.6). One row is one handoff."""
    rows = stmt.subquery()
    return select(func.json_group_array(func.json_array(*rows.c)))


def fetch_packed(session: Session, stmt: Any, params: dict[str, Any]) -> list[list[Any]]:
    """The rows of a `packed` SELECT, unpacked: lists in the order of its columns."""
    result = fetch_plain(session, stmt, params)
    text = result[0][0] if result else None
    return orjson.loads(text) if text else []
