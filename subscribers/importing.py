"""CSV import: the subscriber list an admin brings from elsewhere, a million rows if need be.

What it promises:
- Headers are matched by name (`email`/`メールアドレス`, `name`/`名前`, `language`/`言語`, and
  other aliases); other columns are kept in the subscriber's `attributes`.
- The encoding is detected (BOM first, then UTF-8, then CP932 as Japanese Excel writes, then
  charset-normalizer) unless given, with a vote of the lines: a file is UTF-8 when most of its
  non-ASCII lines are. Each line is then decoded on its own, strictly: a line that is not valid
  in the file's encoding, or that is UTF-8 inside a CP932 file (it would decode, as mojibake),
  rejects its row with the line number; it is never stored garbled.
- Control characters are refused per cell (NUL cannot be stored by PostgreSQL): none in the
  address or the name, only tab and line breaks in other columns.
- Addresses are validated and normalised by email-validator (`subscribers.addresses`).
- Within the file the first occurrence of an address wins; later ones are reported as
  duplicates. Against the database, rows are matched case-insensitively (`email_key`).
- Suppressed addresses are reported and never imported; an existing subscription's status is
  never changed (an unsubscribed person stays unsubscribed).
- Every rejected row is reported with its line number and reason; a bad row loses nothing else.
- Rows are written in chunks with `INSERT ... ON CONFLICT`, each chunk committed: an
  interrupted import re-runs safely (rows already in count as unchanged).
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import String, any_, bindparam, func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import Clock
from newsletter.db.models import ConsentRecord, Subscriber, Subscription, Suppression
from newsletter.errors import ValidationError
from newsletter.types import SubscriptionStatus
from newsletter.urls import DEFAULT_LIST_SLUG
from subscribers.csv_source import (
    Lines,
    detect_encoding,
    map_header,
    whole_stream,
)
from subscribers.hashing import EmailHasher
from subscribers.import_rows import ImportSummary, Report, Row, valid_rows
from subscribers.service import resolve_list

CHUNK_SIZE = 50_000  # rows per transaction: fewer commits, each index page rewritten less


def _bulk_insert(
    session: Session, model: type[Any], rows: list[dict[str, Any]], conflict: list[str] | None
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING for many rows in one executemany.

    On SQLite the statement is compiled once and the rows go straight to the driver with
    values already in SQLAlchemy's storage format (UTC text datetimes, JSON text): the
    per-value bind processing would otherwise cost more than the database work.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect
    table = model.__table__
    if dialect.name == "postgresql":
        pg_stmt = postgresql.insert(table)
        if conflict:
            pg_stmt = pg_stmt.on_conflict_do_nothing(index_elements=conflict)
        session.connection().execute(pg_stmt, rows)
        return
    stmt = sqlite.insert(table).values({name: None for name in rows[0]})
    if conflict:
        stmt = stmt.on_conflict_do_nothing(index_elements=conflict)
    compiled = stmt.compile(dialect=dialect)
    order = list(compiled.positiontup or ())
    for name in order:
        convert = _SQLITE_CONVERT.get(type(table.c[name].type).__name__)
        if convert is not None:
            for row in rows:
                if row[name] is not None:
                    row[name] = convert(row[name])
    getter = itemgetter(*order)
    params = [getter(row) for row in rows] if len(order) > 1 else [(getter(r),) for r in rows]
    session.connection().exec_driver_sql(str(compiled), params)


@lru_cache(maxsize=64)
def _sqlite_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


_SQLITE_CONVERT: dict[str, Any] = {
    "UTCDateTime": _sqlite_datetime,
    "JSON": lambda value: orjson.dumps(value).decode() if value else "{}",
}


@dataclass
class _Plan:
    """What one chunk does to the database, decided before anything is written."""

    subscribe: list[int] = field(default_factory=list)  # subscriber ids new to the list
    changes: list[dict[str, Any]] = field(default_factory=list)  # subscriber field updates
    kept: list[tuple[Row, str]] = field(default_factory=list)  # ended subscriptions, untouched
    updated: int = 0
    unchanged: int = 0


_LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)


def plan_rows(
    rows: list[Row],
    existing: dict[str, tuple[int, str | None, str, dict[str, Any]]],
    ids: dict[str, int],
    current: dict[int, str],
) -> _Plan:
    """Decide each row: subscribe, update, leave unchanged, or keep an ended subscription.

    `existing` holds subscribers found before this chunk (by email key), `ids` every row's
    subscriber id, `current` this list's subscription status per subscriber id. Pure.
    """
    plan = _Plan()
    for row in rows:
        subscriber_id = ids[row.key]
        state = current.get(subscriber_id)
        if state is not None and state not in _LIVE:
            plan.kept.append((row, state))
            continue
        change = _change(existing.get(row.key), row)
        if change is not None:
            plan.changes.append({"id": subscriber_id, **change})
        if state is None:
            plan.subscribe.append(subscriber_id)
        elif change is None:
            plan.unchanged += 1
        else:
            plan.updated += 1
    return plan


def _among(session: Session, column: Any, values: list[Any]) -> Any:
    """`column IN (values)` with ONE bound parameter, however many values.

    SQLAlchemy's expanding IN renders and binds a parameter per value, which costs more than
    the query for chunks of thousands; SQLite gets a JSON array read by json_each, PostgreSQL
    an array with `= ANY`.
    """
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    table = func.json_each(bindparam(None, orjson.dumps(values).decode(), type_=String))
    return column.in_(select(literal_column("value")).select_from(table))


def _write_chunk(
    session: Session,
    rows: list[Row],
    *,
    list_id: int,
    status: str,
    source: str,
    detail: str,
    default_language: str,
    clock: Clock,
    summary: ImportSummary,
    report: Report,
) -> None:
    now = clock.now()
    suppressed = set(
        session.scalars(
            select(Suppression.email_hash).where(
                _among(session, Suppression.email_hash, [r.hash for r in rows])
            )
        )
    )
    live: list[Row] = []
    for row in rows:
        if row.hash in suppressed:
            summary.suppressed += 1
            report.add(row.line, row.email, "suppressed", "on the suppression list; not imported")
        else:
            live.append(row)
    if not live:
        return
    keys = [r.key for r in live]
    existing = {
        k: (sid, name, lang, attrs)
        for sid, k, name, lang, attrs in session.execute(
            select(
                Subscriber.id,
                Subscriber.email_key,
                Subscriber.name,
                Subscriber.language,
                Subscriber.attributes,
            ).where(_among(session, Subscriber.email_key, keys))
        )
    }
    new = [r for r in live if r.key not in existing]
    if new:
        _bulk_insert(
            session,
            Subscriber,
            [
                {
                    "email": r.email,
                    "email_key": r.key,
                    "email_hash": r.hash,
                    "name": r.name,
                    "language": r.language or default_language,
                    "attributes": r.attributes,
                    "tracking_off": False,  # every column with a default: compiled once
                    "created_at": now,
                    "updated_at": now,
                }
                for r in new
            ],
            ["email_key"],
        )
        ids = dict(
            session.execute(
                select(Subscriber.email_key, Subscriber.id).where(
                    _among(session, Subscriber.email_key, [r.key for r in new])
                )
            ).all()
        )
    else:
        ids = {}
    ids.update({k: v[0] for k, v in existing.items()})
    current = dict(
        session.execute(
            select(Subscription.subscriber_id, Subscription.status).where(
                Subscription.list_id == list_id,
                _among(session, Subscription.subscriber_id, [ids[k] for k in keys]),
            )
        ).all()
    )
    plan = plan_rows(live, existing, ids, current)
    summary.imported += len(plan.subscribe)
    summary.updated += plan.updated
    summary.unchanged += plan.unchanged
    summary.not_reactivated += len(plan.kept)
    for row, state in plan.kept:
        report.add(row.line, row.email, "not_reactivated", f"{state} on this list; kept")
    subscribe = plan.subscribe
    changes = [{**change, "updated_at": now} for change in plan.changes]
    if changes:
        session.execute(update(Subscriber), changes)
    if subscribe:
        confirmed = now if status == SubscriptionStatus.ACTIVE else None
        _bulk_insert(
            session,
            Subscription,
            [
                {
                    "subscriber_id": sid,
                    "list_id": list_id,
                    "status": status,
                    "source": "import",
                    "created_at": now,
                    "updated_at": now,
                    "confirmed_at": confirmed,
                }
                for sid in subscribe
            ],
            ["subscriber_id", "list_id"],
        )
        action = "subscribe_active" if status == SubscriptionStatus.ACTIVE else "subscribe"
        _bulk_insert(
            session,
            ConsentRecord,
            [
                {
                    "subscriber_id": sid,
                    "list_id": list_id,
                    "action": action,
                    "source": source,
                    "detail": detail,
                    "at": now,
                }
                for sid in subscribe
            ],
            None,
        )


def _change(
    before: tuple[int, str | None, str, dict[str, Any]] | None, row: Row
) -> dict[str, Any] | None:
    """The subscriber fields this row changes (only what the file gives), or None."""
    if before is None:
        return None
    _, name, language, attributes = before
    new_name = row.name or name
    new_language = row.language or language
    new_attributes = {**(attributes or {}), **row.attributes}
    if (new_name, new_language, new_attributes) == (name, language, attributes or {}):
        return None
    return {"name": new_name, "language": new_language, "attributes": new_attributes}


def import_csv(
    sessions: sessionmaker[Session],
    clock: Clock,
    path: Path,
    *,
    list_slug: str = DEFAULT_LIST_SLUG,
    status: str = SubscriptionStatus.ACTIVE,
    source: str = "import",
    encoding: str | None = None,
    report_path: Path | None = None,
    default_language: str = "ja",
    chunk_size: int = CHUNK_SIZE,
) -> ImportSummary:
    """Import a CSV file of subscribers into a list; see the module docstring for the rules."""
    path = Path(path)
    if status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING):
        raise ValidationError(f"--status: expected active or pending, got {status!r}")
    if not path.is_file():
        raise ValidationError(f"{path}: no such file")
    chosen = encoding or detect_encoding(path)
    try:
        codecs.lookup(chosen)
    except LookupError:
        raise ValidationError(f"--encoding: unknown encoding {chosen!r}") from None
    with sessions() as session, session.begin():
        mailing_list = resolve_list(session, clock, list_slug)
        list_id = mailing_list.id
        hasher = EmailHasher.load(session)
    summary = ImportSummary(file=str(path), encoding=chosen, list_slug=list_slug)
    report_file = report_path.open("w", encoding="utf-8", newline="") if report_path else None
    summary.report = str(report_path) if report_path else None
    try:
        with path.open("rb") as raw:
            lines: Any
            if whole_stream(chosen):
                lines = io.TextIOWrapper(raw, encoding=chosen, newline="")
                bad_lines: dict[int, str] = {}
            else:
                lines = Lines(raw, chosen)
                bad_lines = lines.bad
            reader = csv.reader(lines)
            try:
                header = next(reader)
            except StopIteration:
                raise ValidationError(f"{path}: the file is empty") from None
            if bad_lines:
                raise ValidationError(
                    f"{path}: line 1: the header is not valid {chosen} text; "
                    "give the right --encoding (e.g. utf-8 or cp932)"
                )
            columns = map_header(header, str(path))
            report = Report(summary, report_file)
            rows = valid_rows(
                reader,
                lambda: reader.line_num,
                columns,
                hasher,
                summary,
                report,
                bad_lines,
                status,
            )
            chunk: list[Row] = []
            write = dict(
                list_id=list_id,
                status=status,
                source=source[:32],
                detail=f"file {path.name}",
                default_language=default_language,
                clock=clock,
                summary=summary,
                report=report,
            )
            for row in rows:
                chunk.append(row)
                if len(chunk) >= chunk_size:
                    _commit_chunk(sessions, chunk, write)
                    chunk = []
            if chunk:
                _commit_chunk(sessions, chunk, write)
    except UnicodeDecodeError as err:
        raise ValidationError(
            f"{path}: not valid {chosen} text (byte {err.start} of a read block); "
            "give the right --encoding (e.g. utf-8 or cp932)"
        ) from None
    except csv.Error as err:
        raise ValidationError(f"{path}: line {reader.line_num}: not valid CSV: {err}") from None
    finally:
        if report_file is not None:
            report_file.close()
    return summary


def _commit_chunk(sessions: sessionmaker[Session], chunk: list[Row], write: dict[str, Any]) -> None:
    with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "sqlite":
            # 256 MB of page cache for this connection: index pages stay in memory.
            session.connection().exec_driver_sql("PRAGMA cache_size=-262144")
        _write_chunk(session, chunk, **write)
