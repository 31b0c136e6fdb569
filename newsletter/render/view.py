"""What the templates see: an issue and its articles, cleaned and normalised once.

The input is the article import format (`/work/shared/article-format.md`): a dict per article,
taken from `IssueArticle.snapshot` when the issue is frozen, otherwise converted from the live
`Article` row. Cleaning happens here, before any template runs:

- every text field loses slot markers (content can never address a recipient's slot) and
  control characters;
- every URL is kept only if it is an absolute http(s) URL (`links.safe_http_url`);
- missing optional fields become empty values, so templates test truthiness only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from newsletter.render.links import safe_http_url
from newsletter.types import CONTENT_LANGUAGES, SLOTS

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: object) -> str:
    """Plain text with no slot marker and no control character (newlines and tabs stay)."""
    if value is None:
        return ""
    text = _CONTROL.sub("", str(value)).replace("\r\n", "\n").replace("\r", "\n")
    previous = None
    while previous != text:  # removing one marker must not assemble another
        previous = text
        for slot in SLOTS:
            text = text.replace(slot, "")
    return text.strip()


@dataclass(frozen=True, slots=True)
class KeyPoint:
    heading: str
    body: str


@dataclass(frozen=True, slots=True)
class RelatedLink:
    title: str
    summary: str
    url: str | None


@dataclass(frozen=True, slots=True)
class ContentView:
    """One language of one article."""

    language: str
    title: str
    summary: str
    key_points: tuple[KeyPoint, ...] = ()
    impact_analysis: str = ""
    editor_comment: str = ""
    related: tuple[RelatedLink, ...] = ()


def _wanted(variant: str) -> tuple[str, ...]:
    """The languages a variant shows, in its order ("both-en": English first)."""
    if variant == "both-en":
        return ("en", "ja")
    return CONTENT_LANGUAGES if variant == "both" else (variant,)


@dataclass(frozen=True, slots=True)
class ArticleView:
    key: str  # the format's `id`
    url: str | None
    source_url: str | None
    source_name: str
    published_at: str
    contents: Mapping[str, ContentView]
    shortened: bool = False  # the size budget cut some of its text

    def sections(self, variant: str) -> list[ContentView]:
        """The languages shown for `variant`: the wanted ones it has, else what it has."""
        wanted = _wanted(variant)
        shown = [self.contents[lang] for lang in wanted if lang in self.contents]
        if shown:
            return shown
        return [self.contents[lang] for lang in CONTENT_LANGUAGES if lang in self.contents]

    def missing(self, variant: str) -> list[str]:
        """Languages `variant` wants that this article lacks (shown as a visible badge)."""
        wanted = _wanted(variant)
        return [lang for lang in wanted if lang not in self.contents]

    def title(self, variant: str) -> str:
        return self.sections(variant)[0].title


@dataclass(frozen=True, slots=True)
class IssueView:
    issue_id: int
    issue_date: date
    articles: tuple[ArticleView, ...]
    list_slug: str = "daily"
    list_name: str = ""
    subject_ja: str | None = None
    subject_en: str | None = None
    utm_params: str | None = None  # the list's own; None: the setting
    timezone: str | None = None  # the list's own (datelines); None: the setting
    note_ja: str | None = None  # the editor's note for this issue, plain text
    note_en: str | None = None
    # The list's first-party engagement (frozen with the issue's stored forms): a tracking
    # list gets a second, tracked form of each variant (`newsletter.render.tracking`).
    click_tracking: bool = False
    open_tracking: bool = False

    def with_articles(self, articles: Iterable[ArticleView]) -> IssueView:
        return replace(self, articles=tuple(articles))


def _content(language: str, raw: Mapping[str, Any]) -> ContentView | None:
    title = clean_text(raw.get("title"))
    summary = clean_text(raw.get("summary"))
    if not title:
        return None
    points = tuple(
        KeyPoint(clean_text(p.get("heading")), clean_text(p.get("body")))
        for p in raw.get("key_points") or ()
        if isinstance(p, Mapping) and (clean_text(p.get("heading")) or clean_text(p.get("body")))
    )
    related = tuple(
        RelatedLink(clean_text(r.get("title")), clean_text(r.get("summary")), _url(r.get("url")))
        for r in raw.get("related") or ()
        if isinstance(r, Mapping) and clean_text(r.get("title"))
    )
    return ContentView(
        language=language,
        title=title,
        summary=summary,
        key_points=points,
        impact_analysis=clean_text(raw.get("impact_analysis")),
        editor_comment=clean_text(raw.get("editor_comment")),
        related=related,
    )


def _url(value: object) -> str | None:
    url = safe_http_url(value)
    return clean_text(url) or None if url else None


def article_view(data: Mapping[str, Any]) -> ArticleView:
    """One article-format dict as the templates see it."""
    raw_contents = data.get("content") or {}
    contents: dict[str, ContentView] = {}
    for language in CONTENT_LANGUAGES:
        raw = raw_contents.get(language)
        if isinstance(raw, Mapping):
            view = _content(language, raw)
            if view is not None:
                contents[language] = view
    published = data.get("published_at")
    return ArticleView(
        key=clean_text(data.get("id")),
        url=_url(data.get("url")),
        source_url=_url(data.get("source_url")),
        source_name=clean_text(data.get("source_name")),
        published_at=published.isoformat() if isinstance(published, datetime) else str(published),
        contents=contents,
    )


def issue_view_from_dicts(
    issue_id: int, issue_date: date, articles: Iterable[Mapping[str, Any]], **fields: Any
) -> IssueView:
    """An IssueView from article-format dicts; articles with no usable language are left out."""
    views = [article_view(a) for a in articles]
    return IssueView(
        issue_id=issue_id,
        issue_date=issue_date,
        articles=tuple(v for v in views if v.contents),
        **fields,
    )
