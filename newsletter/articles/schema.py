"""The article import format: validation into typed records, and the reverse (`article_to_dict`).

Validation is hand-written rather than generated so every problem is one line that names the
field path the way the format documents it (`content.ja.key_points[1].heading`) and says what
was expected. All problems of one article are reported, not just the first.

Text is kept exactly as given: the format is plain text, so nothing is stripped or unescaped
here; escaping is the renderer's job. Control characters are refused per field (NUL cannot be
stored by PostgreSQL, and none belongs in plain text): one-line fields (ids, titles, names,
URLs, tags) allow none, multi-line fields (summary, body, ...) allow tab and line breaks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from newsletter.db.snapshots import (  # article_to_dict: re-exported, the format's reverse
    article_to_dict,  # noqa: F401
    format_timestamp,
)
from newsletter.errors import ArticleError
from newsletter.types import CONTENT_LANGUAGES, control_character_problem

# Size limits (characters). Generous for real articles, small enough that a runaway export
# cannot bloat an email or the database. Documented in docs/articles.md.
MAX_ID = 200
MAX_URL = 2048
MAX_SOURCE_NAME = 200
MAX_TAGS = 30
MAX_TAG = 64
MAX_TITLE = 300
MAX_SUMMARY = 2_000
MAX_KEY_POINTS = 20
MAX_HEADING = 300
MAX_POINT_BODY = 3_000
MAX_ANALYSIS = 10_000
MAX_COMMENT = 5_000
MAX_BODY = 200_000
MAX_RELATED = 20
DEFAULT_IMPORTANCE = 50


@dataclass(frozen=True, slots=True)
class KeyPoint:
    heading: str
    body: str


@dataclass(frozen=True, slots=True)
class Related:
    title: str
    summary: str | None
    url: str


@dataclass(frozen=True, slots=True)
class ContentRecord:
    """One language of one article, validated."""

    title: str
    summary: str
    key_points: tuple[KeyPoint, ...] = ()
    impact_analysis: str | None = None
    editor_comment: str | None = None
    body: str | None = None
    related: tuple[Related, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "summary": self.summary,
            "key_points": [{"heading": p.heading, "body": p.body} for p in self.key_points],
            "impact_analysis": self.impact_analysis,
            "editor_comment": self.editor_comment,
            "body": self.body,
            "related": [
                {"title": r.title, "summary": r.summary, "url": r.url} for r in self.related
            ],
        }


@dataclass(frozen=True, slots=True)
class ArticleRecord:
    """One article, validated: ready to store."""

    id: str
    url: str
    published_at: datetime  # aware; stored as UTC
    content: Mapping[str, ContentRecord]
    source_url: str | None = None
    source_name: str | None = None
    importance: int = DEFAULT_IMPORTANCE
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The import-format shape (the snapshot and renderer input)."""
        return {
            "id": self.id,
            "url": self.url,
            "source_url": self.source_url,
            "source_name": self.source_name,
            "published_at": format_timestamp(self.published_at),
            "importance": self.importance,
            "tags": list(self.tags),
            "content": {
                lang: self.content[lang].to_dict()
                for lang in CONTENT_LANGUAGES
                if lang in self.content
            },
        }

    def content_hash(self) -> str:
        """Detects an unchanged re-import. The instant counts, not the offset it was written in."""
        data = self.to_dict()
        data["published_at"] = self.published_at.astimezone(UTC).isoformat()
        canonical = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- validation -----------------------------------------------------------------------------


@dataclass
class _Checker:
    """Collects the problems of one article as ArticleErrors."""

    source: str
    label: str
    errors: list[ArticleError] = field(default_factory=list)

    def fail(self, path: str, problem: str) -> None:
        self.errors.append(ArticleError(self.source, self.label, path, problem))

    def text(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        limit: int,
        *,
        required: bool,
        multiline: bool = False,
    ) -> str | None:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(path, "missing; expected a non-empty string")
            return None
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_kind(value)}")
            return None
        if not value.strip():
            if required:
                self.fail(path, "empty; expected a non-empty string")
            return None
        if len(value) > limit:
            self.fail(path, f"too long: {len(value)} characters, the limit is {limit}")
            return None
        problem = control_character_problem(value, multiline=multiline)
        if problem is not None:
            self.fail(path, problem)
            return None
        return value

    def url(self, obj: Mapping[str, Any], key: str, path: str, *, required: bool) -> str | None:
        value = self.text(obj, key, path, MAX_URL, required=required)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or value != value.strip():
            self.fail(path, f"expected an absolute http(s) URL, got {_short(value)}")
            return None
        return value

    def items(self, obj: Mapping[str, Any], key: str, path: str, limit: int) -> list[Any]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {_kind(value)}")
            return []
        if len(value) > limit:
            self.fail(path, f"too many items: {len(value)}, the limit is {limit}")
            return []
        return value


def parse_timestamp(value: Any) -> datetime:
    """An RFC 3339 timestamp with offset; ValueError (with the reason) otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 timestamp string, got {_kind(value)}")
    text = value.strip()
    if "T" not in text.upper() and " " not in text:
        raise ValueError(
            f"expected an RFC 3339 timestamp with offset like 2026-06-13T08:30:00+09:00, "
            f"got {_short(value)}"
        )
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected an RFC 3339 timestamp with offset like 2026-06-13T08:30:00+09:00, "
            f"got {_short(value)}"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp {_short(value)} has no UTC offset; add one, e.g. +09:00 or Z")
    return parsed


def article_label(raw: Any, position: int) -> str:
    """How errors name an article: its id when it has a usable one, else its position (#3)."""
    if isinstance(raw, Mapping):
        ident = raw.get("id")
        if (
            isinstance(ident, str)
            and ident.strip()
            and len(ident) <= MAX_ID
            and control_character_problem(ident) is None
        ):
            return ident
    return f"#{position}"


def validate_article(raw: Any, *, source: str, position: int) -> ArticleRecord | list[ArticleError]:
    """One raw article (a decoded JSON value) to a record, or the list of everything wrong."""
    check = _Checker(source, article_label(raw, position))
    if not isinstance(raw, Mapping):
        check.fail("(article)", f"expected a JSON object, got {_kind(raw)}")
        return check.errors

    ident = check.text(raw, "id", "id", MAX_ID, required=True)
    url = check.url(raw, "url", "url", required=True)
    source_url = check.url(raw, "source_url", "source_url", required=False)
    source_name = check.text(raw, "source_name", "source_name", MAX_SOURCE_NAME, required=False)

    published_at: datetime | None = None
    if raw.get("published_at") is None:
        check.fail("published_at", "missing; expected an RFC 3339 timestamp with offset")
    else:
        try:
            published_at = parse_timestamp(raw["published_at"])
        except ValueError as err:
            check.fail("published_at", str(err))

    importance = DEFAULT_IMPORTANCE
    value = raw.get("importance")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            check.fail("importance", f"expected a whole number 0 to 100, got {_short(value)}")
        elif not 0 <= value <= 100:
            check.fail("importance", f"expected 0 to 100, got {value}")
        else:
            importance = value

    tags: list[str] = []
    for i, tag in enumerate(check.items(raw, "tags", "tags", MAX_TAGS)):
        if not isinstance(tag, str) or not tag.strip():
            check.fail(f"tags[{i}]", "expected a non-empty string")
        elif len(tag) > MAX_TAG:
            check.fail(f"tags[{i}]", f"too long: {len(tag)} characters, the limit is {MAX_TAG}")
        elif (problem := control_character_problem(tag)) is not None:
            check.fail(f"tags[{i}]", problem)
        else:
            tags.append(tag)

    content = _validate_content(check, raw.get("content"))

    if check.errors:
        return check.errors
    assert ident is not None and url is not None and published_at is not None
    return ArticleRecord(
        id=ident,
        url=url,
        published_at=published_at,
        content=content,
        source_url=source_url,
        source_name=source_name,
        importance=importance,
        tags=tuple(tags),
    )


def _validate_content(check: _Checker, value: Any) -> dict[str, ContentRecord]:
    if value is None:
        check.fail("content", "missing; expected an object with at least one of: ja, en")
        return {}
    if not isinstance(value, Mapping):
        check.fail("content", f"expected an object keyed by language (ja, en), got {_kind(value)}")
        return {}
    out: dict[str, ContentRecord] = {}
    for lang, body in value.items():
        if lang not in CONTENT_LANGUAGES:
            check.fail(f"content.{lang}", "unknown language; expected ja or en")
            continue
        record = _validate_language(check, body, f"content.{lang}")
        if record is not None:
            out[lang] = record
    if not value:
        check.fail("content", "empty; expected at least one of: ja, en")
    return out


def _validate_language(check: _Checker, value: Any, path: str) -> ContentRecord | None:
    if not isinstance(value, Mapping):
        check.fail(path, f"expected an object, got {_kind(value)}")
        return None
    before = len(check.errors)
    title = check.text(value, "title", f"{path}.title", MAX_TITLE, required=True)
    summary = check.text(
        value, "summary", f"{path}.summary", MAX_SUMMARY, required=True, multiline=True
    )
    points: list[KeyPoint] = []
    for i, item in enumerate(
        check.items(value, "key_points", f"{path}.key_points", MAX_KEY_POINTS)
    ):
        where = f"{path}.key_points[{i}]"
        if not isinstance(item, Mapping):
            check.fail(where, f"expected an object with heading and body, got {_kind(item)}")
            continue
        heading = check.text(item, "heading", f"{where}.heading", MAX_HEADING, required=True)
        body = check.text(
            item, "body", f"{where}.body", MAX_POINT_BODY, required=True, multiline=True
        )
        if heading is not None and body is not None:
            points.append(KeyPoint(heading, body))
    analysis = check.text(
        value,
        "impact_analysis",
        f"{path}.impact_analysis",
        MAX_ANALYSIS,
        required=False,
        multiline=True,
    )
    comment = check.text(
        value,
        "editor_comment",
        f"{path}.editor_comment",
        MAX_COMMENT,
        required=False,
        multiline=True,
    )
    body = check.text(value, "body", f"{path}.body", MAX_BODY, required=False, multiline=True)
    related: list[Related] = []
    for i, item in enumerate(check.items(value, "related", f"{path}.related", MAX_RELATED)):
        where = f"{path}.related[{i}]"
        if not isinstance(item, Mapping):
            check.fail(where, f"expected an object with title, summary and url, got {_kind(item)}")
            continue
        r_title = check.text(item, "title", f"{where}.title", MAX_TITLE, required=True)
        r_summary = check.text(
            item, "summary", f"{where}.summary", MAX_SUMMARY, required=False, multiline=True
        )
        r_url = check.url(item, "url", f"{where}.url", required=True)
        if r_title is not None and r_url is not None:
            related.append(Related(r_title, r_summary, r_url))
    if len(check.errors) > before or title is None or summary is None:
        return None
    return ContentRecord(
        title=title,
        summary=summary,
        key_points=tuple(points),
        impact_analysis=analysis,
        editor_comment=comment,
        body=body,
        related=tuple(related),
    )


def _kind(value: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string"}
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return names.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
