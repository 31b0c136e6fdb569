"""RSS 2.0 and Atom feeds mapped onto the import format, so one validator judges both.

feedparser does the XML, but its parsed dates are normalised to UTC and a date without a zone
is silently taken as UTC; here the entry's raw date string is read again so a naive or missing
date is an error, as it is for JSON. Feed summaries are usually HTML: they are reduced to plain
text (tags dropped, entities decoded), because the format stores plain text only.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

import feedparser

from newsletter.types import CONTENT_LANGUAGES

# Text characters one entry may carry (title, summary and content, HTML included) before it is
# refused on its own, without being reduced to text: the format keeps at most a 2,000-character
# summary of it, and the other entries of the feed are kept.
MAX_ENTRY_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry as a raw import-format dict; `problem` (field, what) when it is unusable."""

    raw: dict[str, Any]
    problem: tuple[str, str] | None = None


def looks_like_feed(data: bytes) -> bool:
    """XML rather than JSON: the first meaningful character is '<'."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


def parse_feed(data: bytes) -> tuple[list[FeedEntry], str | None]:
    """Entries as raw import-format dicts, plus a feed-level problem (not a feed at all)."""
    parsed = feedparser.parse(data)
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        reason = parsed.get("bozo_exception")
        detail = f": {reason}" if reason else ""
        return [], f"not an RSS 2.0 or Atom feed{detail}"
    feed_lang = _language(parsed.feed.get("language"))
    return [_entry(entry, feed_lang) for entry in parsed.entries], None


def _entry_size(entry: Any) -> int:
    size = 0
    for key in ("title", "summary"):
        value = entry.get(key)
        size += len(value) if isinstance(value, str) else 0
    for part in entry.get("content") or ():
        value = part.get("value") if hasattr(part, "get") else None
        size += len(value) if isinstance(value, str) else 0
    return size


def _entry(entry: Any, feed_lang: str | None) -> FeedEntry:
    size = _entry_size(entry)
    if size > MAX_ENTRY_CHARS:
        ident = entry.get("id") or entry.get("link")
        raw = {"id": ident} if isinstance(ident, str) else {}
        problem = f"too large: {size} characters of text, the limit is {MAX_ENTRY_CHARS}"
        return FeedEntry(raw, ("(entry)", problem))
    lang = _language(_detail_language(entry)) or feed_lang
    problem = None
    if lang is None:
        problem = "the feed declares no language (<language> or xml:lang); expected ja or en"
    elif lang not in CONTENT_LANGUAGES:
        problem = f"unsupported language {lang!r}; expected ja or en"
    link = entry.get("link")
    raw: dict[str, Any] = {
        "id": entry.get("id") or link,
        "url": link,
        "published_at": _published(entry),
        "content": {
            (lang if problem is None else "en"): {
                "title": _one_line(_text(entry, "title")),
                "summary": _text(entry, "summary"),
            }
        },
    }
    tags = [t.get("term") for t in entry.get("tags", []) if t.get("term")]
    if tags:
        raw["tags"] = tags
    source = entry.get("source") or {}
    if source.get("title"):
        raw["source_name"] = source["title"]
    return FeedEntry(raw, ("language", problem) if problem is not None else None)


def _detail_language(entry: Any) -> str | None:
    for key in ("title_detail", "summary_detail"):
        detail = entry.get(key) or {}
        if detail.get("language"):
            return str(detail["language"])
    return None


def _language(value: str | None) -> str | None:
    """'en-US' -> 'en'; an unsupported language is kept so validation names it."""
    if not value:
        return None
    primary = value.strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in CONTENT_LANGUAGES else value.strip()


def _published(entry: Any) -> Any:
    """The entry's date with its own offset; None or a naive string is left for validation."""
    raw = entry.get("published") or entry.get("updated")
    if not raw:
        return None
    text = str(raw).strip()
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        try:
            value = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return text  # validation reports it as not a timestamp
    if value.tzinfo is None or _declares_unknown_zone(text):
        return value.replace(tzinfo=None).isoformat()  # naive: rejected by validation
    return value.isoformat()


def _declares_unknown_zone(text: str) -> bool:
    # RFC 2822: "-0000" means "zone unknown"; parsedate_to_datetime returns it as naive, but
    # be explicit in case that changes.
    return text.rstrip().endswith("-0000")


class _TextExtractor(HTMLParser):
    _BREAKS = frozenset({"p", "br", "div", "li", "h1", "h2", "h3", "h4", "tr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _text(entry: Any, key: str) -> str | None:
    """The field as plain text: HTML (as the feed declares it) is reduced to its text."""
    value = entry.get(key)
    if value is None:
        return None
    detail = entry.get(f"{key}_detail") or {}
    if "html" not in str(detail.get("type", "")):
        return str(value).strip()
    return _plain(str(value))


def _one_line(value: str | None) -> str | None:
    """A feed title's line breaks are layout (a <br> or a wrapped line), not content."""
    return " ".join(value.split()) if value is not None else None


def _plain(value: str) -> str:
    parser = _TextExtractor()
    parser.feed(value)
    parser.close()
    text = html.unescape("".join(parser.parts))
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\s*\n\s*", "\n", text).strip()
