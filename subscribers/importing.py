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
import gc
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import Clock
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

_LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)


@lru_cache(maxsize=64)
def _sqlite_datetime(value: datetime) -> str:
    """A datetime as SQLAlchemy's UTCDateTime stores it in SQLite (UTC text)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _json_text(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode() if value else "{}"


def _json_value(text: Any) -> Any:
    """A stored JSON attributes value (PostgreSQL's driver has already decoded it)."""
    if not isinstance(text, str | bytes):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # e.g. NaN, written by json.dumps elsewhere
        return json.loads(text)


class _SqliteStore:
    """The chunk's statements on SQLite, on the session's own DBAPI connection.

    Values go to the driver already in SQLAlchemy's storage format (UTC datetime text, JSON
    text): SQLAlchemy's per-value bind and result processing cost more than the database work.
    A lookup binds one JSON array and probes the table's index once per element
    (`json_each(?) CROSS JOIN table`: the join order is fixed; `IN (SELECT ... json_each)`
    took 17 times longer against an empty suppression list).
    """

    def __init__(self, session: Session) -> None:
        connection = session.connection()
        # 256 MB of page cache for this connection: index pages stay in memory.
        connection.exec_driver_sql("PRAGMA cache_size=-262144")
        self._cursor = connection.connection.driver_connection.cursor()

    def _rows(self, sql: str, *params: Any) -> list[Any]:
        return self._cursor.execute(sql, params).fetchall()

    def suppressed(self, hashes: list[str]) -> set[str]:
        return {
            h
            for (h,) in self._rows(
                "SELECT s.email_hash FROM json_each(?) AS j"
                " CROSS JOIN suppressions AS s ON s.email_hash = j.value",
                orjson.dumps(hashes).decode(),
            )
        }

    def existing(self, keys: list[str]) -> dict[str, tuple[int, str | None, str, Any]]:
        return {
            key: (sid, name, language, _json_value(attributes))
            for key, sid, name, language, attributes in self._rows(
                "SELECT s.email_key, s.id, s.name, s.language, s.attributes FROM json_each(?) AS j"
                " CROSS JOIN subscribers AS s ON s.email_key = j.value",
                orjson.dumps(keys).decode(),
            )
        }

    def ids(self, keys: list[str]) -> dict[str, int]:
        return dict(
            self._rows(
                "SELECT s.email_key, s.id FROM json_each(?) AS j"
                " CROSS JOIN subscribers AS s ON s.email_key = j.value",
                orjson.dumps(keys).decode(),
            )
        )

    def insert_subscribers(
        self, rows: list[Row], default_language: str, now: datetime
    ) -> tuple[dict[str, int], list[str]]:
        """Insert new subscribers (ON CONFLICT DO NOTHING); their ids by key, and the keys
        someone else inserted first (their subscriber may already be on the list).

        The ids are not read back: the insert holds SQLite's write lock until the commit, so
        when every row went in they are the last len(rows) rowids, in order (SQLite gives a
        new row max(rowid) + 1). The first and last are checked; otherwise they are read.
        """
        at = _sqlite_datetime(now)
        cursor = self._cursor
        cursor.executemany(
            "INSERT INTO subscribers (email, email_key, email_hash, name, language, attributes,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (email_key) DO NOTHING",
            [
                (
                    r.email,
                    r.key,
                    r.hash,
                    r.name,
                    r.language or default_language,
                    _json_text(r.attributes),
                    at,
                    at,
                )
                for r in rows
            ],
        )
        if cursor.rowcount == len(rows):
            (last,) = cursor.execute("SELECT max(id) FROM subscribers").fetchone()
            first = last - len(rows) + 1
            ends = self._rows(
                "SELECT email_key FROM subscribers WHERE id IN (?, ?) ORDER BY id", first, last
            )
            if [k for (k,) in ends] == list(dict.fromkeys((rows[0].key, rows[-1].key))):
                return {r.key: first + n for n, r in enumerate(rows)}, []
        return self.ids([r.key for r in rows]), [r.key for r in rows]

    def statuses(self, list_id: int, subscriber_ids: list[int]) -> dict[int, str]:
        return dict(
            self._rows(
                "SELECT s.subscriber_id, s.status FROM json_each(?) AS j"
                " CROSS JOIN subscriptions AS s ON s.subscriber_id = j.value AND s.list_id = ?",
                orjson.dumps(subscriber_ids).decode(),
                list_id,
            )
        )

    def update_subscribers(self, changes: list[tuple[int, Any, str, Any]], now: datetime) -> None:
        at = _sqlite_datetime(now)
        self._cursor.executemany(
            "UPDATE subscribers SET name = ?, language = ?, attributes = ?, updated_at = ?"
            " WHERE id = ?",
            [(name, lang, _json_text(attrs), at, sid) for sid, name, lang, attrs in changes],
        )

    def subscribe(self, subscriber_ids: list[int], list_id: int, values: _Subscribe) -> None:
        at = _sqlite_datetime(values.now)
        confirmed = _sqlite_datetime(values.confirmed) if values.confirmed else None
        ids = orjson.dumps(subscriber_ids).decode()
        # `WHERE true`: SQLite's upsert after a SELECT needs a WHERE to parse unambiguously.
        self._cursor.execute(
            "INSERT INTO subscriptions (subscriber_id, list_id, status, source, created_at,"
            " updated_at, confirmed_at) SELECT value, ?, ?, 'import', ?, ?, ?"
            " FROM json_each(?) WHERE true ORDER BY key"
            " ON CONFLICT (subscriber_id, list_id) DO NOTHING",
            (list_id, values.status, at, at, confirmed, ids),
        )
        self._cursor.execute(
            "INSERT INTO consent_records (subscriber_id, list_id, action, source, detail, at)"
            " SELECT value, ?, ?, ?, ?, ? FROM json_each(?) ORDER BY key",
            (list_id, values.action, values.source, values.detail, at, ids),
        )


class _PostgresStore:
    """The chunk's statements on PostgreSQL, on the session's psycopg connection (the same
    transaction): new subscribers and changed fields go in by `COPY ... FROM STDIN` into a
    temporary table dropped at commit, then one `INSERT ... SELECT ... ON CONFLICT` or
    `UPDATE ... FROM`; subscriptions and consent records are one `INSERT ... SELECT` over an
    array of subscriber ids; lookups bind one array with `= ANY`."""

    def __init__(self, session: Session) -> None:
        self._connection = session.connection().connection.driver_connection

    def _rows(self, sql: str, *params: Any) -> list[Any]:
        with self._connection.cursor() as cursor:
            return cursor.execute(sql, params).fetchall()

    def suppressed(self, hashes: list[str]) -> set[str]:
        return {
            h
            for (h,) in self._rows(
                "SELECT email_hash FROM suppressions WHERE email_hash = ANY(%s::text[])", hashes
            )
        }

    def existing(self, keys: list[str]) -> dict[str, tuple[int, str | None, str, Any]]:
        return {
            key: (sid, name, language, _json_value(attributes))
            for key, sid, name, language, attributes in self._rows(
                "SELECT email_key, id, name, language, attributes FROM subscribers"
                " WHERE email_key = ANY(%s::text[])",
                keys,
            )
        }

    def ids(self, keys: list[str]) -> dict[str, int]:
        return dict(
            self._rows(
                "SELECT email_key, id FROM subscribers WHERE email_key = ANY(%s::text[])", keys
            )
        )

    def insert_subscribers(
        self, rows: list[Row], default_language: str, now: datetime
    ) -> tuple[dict[str, int], list[str]]:
        """Insert new subscribers (ON CONFLICT DO NOTHING); their ids by key, and the keys
        someone else inserted first (their subscriber may already be on the list)."""
        with self._connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMPORARY TABLE import_subscribers (n integer, email text,"
                " email_key text, email_hash text, name text, language text, attributes jsonb)"
                " ON COMMIT DROP"
            )
            with cursor.copy(
                "COPY import_subscribers (n, email, email_key, email_hash, name, language,"
                " attributes) FROM STDIN"
            ) as copy:
                write = copy.write_row
                for n, r in enumerate(rows):
                    write(
                        (
                            n,
                            r.email,
                            r.key,
                            r.hash,
                            r.name,
                            r.language or default_language,
                            _json_text(r.attributes),
                        )
                    )
            ids = dict(
                cursor.execute(
                    "INSERT INTO subscribers (email, email_key, email_hash, name, language,"
                    " attributes, created_at, updated_at)"
                    " SELECT email, email_key, email_hash, name, language, attributes,"
                    " %(now)s::timestamptz, %(now)s::timestamptz"
                    " FROM import_subscribers ORDER BY n"
                    " ON CONFLICT (email_key) DO NOTHING RETURNING email_key, id",
                    {"now": now},
                ).fetchall()
            )
        taken = [r.key for r in rows if r.key not in ids]
        if taken:
            ids.update(self.ids(taken))
        return ids, taken

    def statuses(self, list_id: int, subscriber_ids: list[int]) -> dict[int, str]:
        return dict(
            self._rows(
                "SELECT subscriber_id, status FROM subscriptions"
                " WHERE list_id = %s AND subscriber_id = ANY(%s::bigint[])",
                list_id,
                subscriber_ids,
            )
        )

    def update_subscribers(self, changes: list[tuple[int, Any, str, Any]], now: datetime) -> None:
        with self._connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMPORARY TABLE import_changes (id bigint, name text, language text,"
                " attributes jsonb) ON COMMIT DROP"
            )
            with cursor.copy(
                "COPY import_changes (id, name, language, attributes) FROM STDIN"
            ) as copy:
                for sid, name, language, attributes in changes:
                    copy.write_row((sid, name, language, _json_text(attributes)))
            cursor.execute(
                "UPDATE subscribers AS s SET name = c.name, language = c.language,"
                " attributes = c.attributes, updated_at = %s::timestamptz"
                " FROM import_changes AS c WHERE s.id = c.id",
                (now,),
            )

    def subscribe(self, subscriber_ids: list[int], list_id: int, values: _Subscribe) -> None:
        params = {
            "ids": subscriber_ids,
            "list": list_id,
            "status": values.status,
            "now": values.now,
            "confirmed": values.confirmed,
            "action": values.action,
            "source": values.source,
            "detail": values.detail,
        }
        with self._connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO subscriptions (subscriber_id, list_id, status, source, created_at,"
                " updated_at, confirmed_at)"
                " SELECT u.id, %(list)s, %(status)s, 'import', %(now)s::timestamptz,"
                " %(now)s::timestamptz, %(confirmed)s::timestamptz"
                " FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS u(id, n) ORDER BY u.n"
                " ON CONFLICT (subscriber_id, list_id) DO NOTHING",
                params,
            )
            cursor.execute(
                "INSERT INTO consent_records (subscriber_id, list_id, action, source, detail, at)"
                " SELECT u.id, %(list)s, %(action)s, %(source)s, %(detail)s,"
                " %(now)s::timestamptz"
                " FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS u(id, n) ORDER BY u.n",
                params,
            )


def _store_for(session: Session) -> _SqliteStore | _PostgresStore:
    if session.get_bind().dialect.name == "postgresql":
        return _PostgresStore(session)
    return _SqliteStore(session)


@dataclass(frozen=True, slots=True)
class _Subscribe:
    """The values every subscription and consent record of a chunk shares."""

    status: str
    now: datetime
    confirmed: datetime | None
    action: str
    source: str
    detail: str


@dataclass
class _Plan:
    """What one chunk does to the database, decided before anything is written."""

    subscribe: list[int] = field(default_factory=list)  # subscriber ids new to the list
    changes: list[tuple[int, Any, str, Any]] = field(default_factory=list)  # id + new fields
    kept: list[tuple[Row, str]] = field(default_factory=list)  # ended subscriptions, untouched
    updated: int = 0
    unchanged: int = 0


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
            plan.changes.append((subscriber_id, *change))
        if state is None:
            plan.subscribe.append(subscriber_id)
        elif change is None:
            plan.unchanged += 1
        else:
            plan.updated += 1
    return plan


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
    store = _store_for(session)
    now = clock.now()
    suppressed = store.suppressed([r.hash for r in rows])
    live: list[Row] = []
    for row in rows:
        if row.hash in suppressed:
            summary.suppressed += 1
            report.add(row.line, row.email, "suppressed", "on the suppression list; not imported")
        else:
            live.append(row)
    if not live:
        return
    existing = store.existing([r.key for r in live])
    new = [r for r in live if r.key not in existing]
    ids, taken = store.insert_subscribers(new, default_language, now) if new else ({}, [])
    ids.update({k: v[0] for k, v in existing.items()})
    # Subscribers this chunk inserted have no subscription anywhere yet: only the others are
    # looked up.
    known = [v[0] for v in existing.values()] + [ids[k] for k in taken]
    current = store.statuses(list_id, known) if known else {}
    plan = plan_rows(live, existing, ids, current)
    summary.imported += len(plan.subscribe)
    summary.updated += plan.updated
    summary.unchanged += plan.unchanged
    summary.not_reactivated += len(plan.kept)
    for row, state in plan.kept:
        report.add(row.line, row.email, "not_reactivated", f"{state} on this list; kept")
    if plan.changes:
        store.update_subscribers(plan.changes, now)
    if plan.subscribe:
        active = status == SubscriptionStatus.ACTIVE
        store.subscribe(
            plan.subscribe,
            list_id,
            _Subscribe(
                status=status,
                now=now,
                confirmed=now if active else None,
                action="subscribe_active" if active else "subscribe",
                source=source,
                detail=detail,
            ),
        )


def _change(
    before: tuple[int, str | None, str, dict[str, Any]] | None, row: Row
) -> tuple[str | None, str, dict[str, Any]] | None:
    """The subscriber fields this row changes (only what the file gives), or None."""
    if before is None:
        return None
    _, name, language, attributes = before
    new_name = row.name or name
    new_language = row.language or language
    new_attributes = {**(attributes or {}), **row.attributes}
    if (new_name, new_language, new_attributes) == (name, language, attributes or {}):
        return None
    return new_name, new_language, new_attributes


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
            with _collector_paused():
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
        _write_chunk(session, chunk, **write)


_GC_LOCK = threading.Lock()
_GC_PAUSED_BY = 0  # imports running in this process with the collector paused
_GC_RESUME = False  # whether the collector was enabled when the first of them started


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection while an import runs.

    A chunk keeps tens of thousands of row objects alive; each survives a few young
    collections into the oldest generation, and the full collections that follow walked them
    all again, over and over: a fifth of a million-row import's time, to find nothing (the
    import makes no cycles to speak of). Reference counting still frees everything; the
    collector is enabled again when the last import of the process ends, if it was before.
    """
    global _GC_PAUSED_BY, _GC_RESUME
    with _GC_LOCK:
        _GC_PAUSED_BY += 1
        if _GC_PAUSED_BY == 1:
            _GC_RESUME = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSED_BY -= 1
            if _GC_PAUSED_BY == 0 and _GC_RESUME:
                gc.enable()
