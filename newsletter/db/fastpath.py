"""Database fast paths: plain driver tuples for the sending core's hottest read.

Listed in docs/architecture.md ("Where we trade clarity for speed"); the plain version is the
same SELECT through SQLAlchemy's result objects, and the ledger tests run both databases.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

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
