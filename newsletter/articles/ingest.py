"""Import articles from files and URLs: JSON (object, array, JSON Lines) and RSS/Atom feeds.

Each source is read, decoded into raw records, validated one article at a time, and the valid
ones are stored in one transaction per source: a bad article is reported and never costs the
good ones beside it. Re-importing an id updates that article in place; an identical re-import
(same content hash) is counted as unchanged and not written. Issues that already started
sending are unaffected because they render from their frozen snapshots.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.articles.feeds import looks_like_feed, parse_feed
from newsletter.articles.fetch import FetchPolicy, fetch
from newsletter.articles.schema import (
    ArticleRecord,
    ContentRecord,
    article_label,
    validate_article,
)
from newsletter.clock import Clock
from newsletter.db.models import Article, ArticleContent
from newsletter.db.session import transaction
from newsletter.errors import ArticleError, ValidationError

MAX_SOURCE_BYTES = 256 * 1024 * 1024  # a full CMS export of real-size articles (files)
_LOOKUP_CHUNK = 500
# Core tables for bulk writes: executemany / multi-row VALUES without per-row ORM bookkeeping.
_ARTICLES = cast(Table, Article.__table__)
_CONTENTS = cast(Table, ArticleContent.__table__)


@dataclass
class ImportReport:
    """What an import did. `ok` is False when anything was rejected or a source was unreadable."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[ArticleError] = field(default_factory=list)
    source_errors: list[ValidationError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rejected == 0 and not self.source_errors

    def add(self, other: ImportReport) -> None:
        self.imported += other.imported
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.errors.extend(other.errors)
        self.source_errors.extend(other.source_errors)

    def messages(self) -> list[str]:
        """Every problem, one line each: unreadable sources first, then invalid articles."""
        return [str(e) for e in self.source_errors] + [str(e) for e in self.errors]

    def to_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors": [
                {"source": e.source, "article": e.article, "field": e.field, "problem": e.problem}
                for e in self.errors
            ],
            "source_errors": [str(e) for e in self.source_errors],
        }


def import_sources(
    sessions: sessionmaker[Session],
    sources: Sequence[str],
    clock: Clock,
    *,
    transport: httpx.BaseTransport | None = None,
    policy: FetchPolicy | None = None,
) -> ImportReport:
    """Import every source (a path or an http(s) URL); one unreadable source stops no other.

    URLs are fetched under `policy` (default: read from the settings, `FetchPolicy.from_env`):
    public addresses only, one overall deadline, a byte limit.
    """
    report = ImportReport()
    if policy is None and any(s.startswith(("http://", "https://")) for s in sources):
        policy = FetchPolicy.from_env()
    for source in sources:
        try:
            # Passed straight through: the raw bytes are dropped as soon as they are decoded.
            records = decode_source(read_source(source, policy, transport), source)
        except ValidationError as err:
            report.source_errors.append(err)
            continue
        report.add(import_records(sessions, records, source, clock))
    return report


def read_source(
    source: str,
    policy: FetchPolicy | None = None,
    transport: httpx.BaseTransport | None = None,
) -> bytes:
    """The bytes of a file or URL; ValidationError naming the source when it cannot be read."""
    if source.startswith(("http://", "https://")):
        return fetch(source, policy or FetchPolicy.from_env(), transport=transport)
    if "://" in source:
        raise ValidationError(f"{source}: expected a file path or an http(s) URL")
    path = Path(source)
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise ValidationError(f"{source}: larger than {MAX_SOURCE_BYTES} bytes")
        return path.read_bytes()
    except FileNotFoundError:
        raise ValidationError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ValidationError(f"{source}: is a directory; expected a JSON or feed file") from None
    except OSError as err:
        raise ValidationError(f"{source}: cannot read: {err.strerror}") from None


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One decoded article before validation, or why it could not be decoded."""

    position: int
    value: Any = None
    error: ArticleError | None = None


def decode_source(data: bytes, source: str) -> list[RawRecord]:
    """Bytes to raw records. A file that is neither JSON, JSON Lines nor a feed is one error."""
    if looks_like_feed(data):
        entries, problem = parse_feed(data)
        if problem:
            raise ValidationError(f"{source}: {problem}")
        records = []
        for position, entry in enumerate(entries, start=1):
            if entry.problem is not None:
                label = article_label(entry.raw, position)
                field_name, problem = entry.problem
                error = ArticleError(source, label, field_name, problem)
                records.append(RawRecord(position, error=error))
            else:
                records.append(RawRecord(position, entry.raw))
        return records
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValidationError(
            f"{source}: not UTF-8 text (bad byte at offset {err.start}); expected UTF-8 JSON"
        ) from None
    del data  # the text is the one copy kept while parsing
    if not text.strip():
        raise ValidationError(f"{source}: empty; expected JSON articles")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        if _is_json_lines(text):
            return _decode_json_lines(text, source)
        raise ValidationError(
            f"{source}: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    if isinstance(document, list):
        return [RawRecord(i, value) for i, value in enumerate(document, start=1)]
    if isinstance(document, dict):
        return [RawRecord(1, document)]
    raise ValidationError(
        f"{source}: expected an article object, an array of them or JSON Lines, "
        f"got a JSON {type(document).__name__}"
    )


def _is_json_lines(text: str) -> bool:
    """More than one line, and at least one line is a JSON object on its own."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    for line in lines:
        try:
            if isinstance(json.loads(line), dict):
                return True
        except json.JSONDecodeError:
            continue
    return False


def _decode_json_lines(text: str, source: str) -> list[RawRecord]:
    records: list[RawRecord] = []
    position = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        position += 1
        try:
            records.append(RawRecord(position, json.loads(line)))
        except json.JSONDecodeError as err:
            problem = f"not valid JSON: {err.msg} at column {err.colno}"
            error = ArticleError(source, f"#{position}", f"line {number}", problem)
            records.append(RawRecord(position, error=error))
    return records


def import_records(
    sessions: sessionmaker[Session], records: Iterable[RawRecord], source: str, clock: Clock
) -> ImportReport:
    """Validate each record; store the valid ones of this source in one transaction."""
    report = ImportReport()
    valid: list[ArticleRecord] = []
    for record in records:
        if record.error is not None:
            report.rejected += 1
            report.errors.append(record.error)
            continue
        result = validate_article(record.value, source=source, position=record.position)
        if isinstance(result, list):
            report.rejected += 1
            report.errors.extend(result)
        else:
            valid.append(result)
    if valid:
        try:
            with transaction(sessions) as session:
                imported, updated, unchanged = store_records(session, valid, source, clock)
        except IntegrityError:
            # Another import inserted one of these ids meanwhile: again, now as updates.
            with transaction(sessions) as session:
                imported, updated, unchanged = store_records(session, valid, source, clock)
        report.imported += imported
        report.updated += updated
        report.unchanged += unchanged
    return report


def store_records(
    session: Session, records: Sequence[ArticleRecord], origin: str, clock: Clock
) -> tuple[int, int, int]:
    """Insert new articles, update changed ones in place; returns (imported, updated, unchanged).

    Bulk statements, not one ORM object per article: the content hash decides up front which
    articles need writing. When an id appears twice in one source, the last one wins.
    """
    latest = {record.id: record for record in records}
    known = _known(session, list(latest))
    now = clock.now()
    fresh: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    contents: dict[str, ArticleRecord] = {}
    unchanged = 0
    for ident, record in latest.items():
        digest = record.content_hash()
        found = known.get(ident)
        if found is not None and found[1] == digest:
            unchanged += 1
            continue
        row = _article_row(record, digest, origin, now)
        if found is None:
            fresh.append({**row, "external_id": ident, "created_at": now})
        else:
            changed.append({**row, "article_id": found[0]})
        contents[ident] = record

    ids = {ident: found[0] for ident, found in known.items()}
    if fresh:
        inserted = session.execute(
            insert(_ARTICLES).returning(_ARTICLES.c.id, _ARTICLES.c.external_id), fresh
        )
        ids.update({external_id: article_id for article_id, external_id in inserted})
    if changed:
        session.execute(
            update(_ARTICLES)
            .where(_ARTICLES.c.id == bindparam("article_id"))
            .values({key: bindparam(key) for key in changed[0] if key != "article_id"}),
            changed,
        )
        for start in range(0, len(changed), _LOOKUP_CHUNK):
            chunk = [row["article_id"] for row in changed[start : start + _LOOKUP_CHUNK]]
            session.execute(delete(ArticleContent).where(ArticleContent.article_id.in_(chunk)))
    content_rows = [
        _content_row(ids[ident], lang, content)
        for ident, record in contents.items()
        for lang, content in record.content.items()
    ]
    if content_rows:
        session.execute(insert(_CONTENTS), content_rows)
    session.expire_all()  # ORM objects loaded earlier in this session must not show old values
    return len(fresh), len(changed), unchanged


def _known(session: Session, ids: list[str]) -> dict[str, tuple[int, str]]:
    """external id -> (database id, content hash) for the ids already stored."""
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start : start + _LOOKUP_CHUNK]
        query = select(Article.external_id, Article.id, Article.content_hash).where(
            Article.external_id.in_(chunk)
        )
        for external_id, article_id, digest in session.execute(query):
            found[external_id] = (article_id, digest)
    return found


def _article_row(record: ArticleRecord, digest: str, origin: str, now: Any) -> dict[str, Any]:
    return {
        "url": record.url,
        "source_url": record.source_url,
        "source_name": record.source_name,
        "published_at": record.published_at,
        "importance": record.importance,
        "tags": list(record.tags),
        "content_hash": digest,
        "origin": origin[:2048],
        "updated_at": now,
    }


def _content_row(article_id: int, language: str, content: ContentRecord) -> dict[str, Any]:
    return {
        "article_id": article_id,
        "language": language,
        "title": content.title,
        "summary": content.summary,
        "key_points": [{"heading": p.heading, "body": p.body} for p in content.key_points],
        "impact_analysis": content.impact_analysis,
        "editor_comment": content.editor_comment,
        "body": content.body,
        "related": [
            {"title": r.title, "summary": r.summary, "url": r.url} for r in content.related
        ],
    }
