"""What one article shows in one variant, part by part: title, lead, key points, impact
analysis, editor comment, related articles.

- The reader's language comes first. A part the reader's language lacks but the other language
  has is shown in the other language, with `marker` set to that language's code: the templates
  say "日本語のみ" / "In Japanese" beside it and give it a `lang` attribute. Nothing the article
  has is silently dropped.
- In the bilingual variant each part carries the other language beside it (`other`), so a
  reader compares a sentence with its original without scrolling. Key points pair by position
  when both languages have as many; related articles pair when they link to the same page;
  what does not pair follows as `extra`.
- An article that lacks the reader's language entirely is shown in the other language under the
  article's badge (英語のみ / Japanese only), without a marker on every part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from babel.dates import format_datetime

from newsletter.render.view import ArticleView, ContentView
from newsletter.types import BILINGUAL_VARIANTS

DATELINE_PATTERNS = {"ja": "M月d日 H:mm", "en": "MMM d, h:mm a"}


@dataclass(frozen=True, slots=True)
class Text:
    lang: str
    value: Any  # str, KeyPoint or RelatedLink


@dataclass(frozen=True, slots=True)
class Part:
    main: Text
    other: Text | None = None  # the bilingual variant: the same part in the other language
    marker: str = ""  # the language of `main` when it is not the reader's: "ja" or "en"


@dataclass(frozen=True, slots=True)
class ListPart:
    lang: str
    items: tuple[Part, ...]
    marker: str = ""
    extra: tuple[Text, ...] = ()  # the bilingual variant: the other language's unpaired items


@dataclass(frozen=True, slots=True)
class ArticleParts:
    title: Part
    summary: Part | None
    key_points: ListPart | None
    impact_analysis: Part | None
    editor_comment: Part | None
    related: ListPart | None


def reading_order(variant: str) -> tuple[str, str]:
    """The reader's language, then the other; "both" reads Japanese first, "both-en" English."""
    return ("en", "ja") if variant in ("en", "both-en") else ("ja", "en")


def article_parts(article: ArticleView, variant: str) -> ArticleParts:
    shown = [article.contents[lang] for lang in reading_order(variant) if lang in article.contents]
    primary = shown[0]
    second = shown[1] if len(shown) > 1 else None
    paired = variant in BILINGUAL_VARIANTS

    def scalar(name: str) -> Part | None:
        mine = getattr(primary, name)
        theirs = getattr(second, name) if second else ""
        if mine:
            other = Text(second.language, theirs) if paired and second and theirs else None
            return Part(Text(primary.language, mine), other)
        if second and theirs:
            return Part(Text(second.language, theirs), marker=second.language)
        return None

    return ArticleParts(
        title=scalar("title") or Part(Text(primary.language, "")),
        summary=scalar("summary"),
        key_points=_listing(primary, second, "key_points", paired, _same_count),
        impact_analysis=scalar("impact_analysis"),
        editor_comment=scalar("editor_comment"),
        related=_listing(primary, second, "related", paired, _same_links),
    )


def _same_count(mine: Sequence[Any], theirs: Sequence[Any]) -> bool:
    return len(mine) == len(theirs)


def _same_links(mine: Sequence[Any], theirs: Sequence[Any]) -> bool:
    return len(mine) == len(theirs) and all(
        a.url and a.url == b.url for a, b in zip(mine, theirs, strict=True)
    )


def _listing(
    primary: ContentView,
    second: ContentView | None,
    name: str,
    paired: bool,
    pairs: Callable[[Sequence[Any], Sequence[Any]], bool],
) -> ListPart | None:
    mine = getattr(primary, name)
    theirs = getattr(second, name) if second else ()
    if mine:
        if not (paired and second and theirs):
            return ListPart(primary.language, tuple(Part(Text(primary.language, i)) for i in mine))
        assert second is not None
        if pairs(mine, theirs):
            items = tuple(
                Part(Text(primary.language, a), Text(second.language, b))
                for a, b in zip(mine, theirs, strict=True)
            )
            return ListPart(primary.language, items)
        return ListPart(
            primary.language,
            tuple(Part(Text(primary.language, i)) for i in mine),
            extra=tuple(Text(second.language, i) for i in theirs),
        )
    if second and theirs:
        items = tuple(Part(Text(second.language, i)) for i in theirs)
        return ListPart(second.language, items, marker=second.language)
    return None


def dateline(article: ArticleView, language: str, zone: tzinfo) -> str:
    """The source and the local publication time: "Kestrel Labs Blog · 6月13日 5:40"."""
    pieces = [article.source_name] if article.source_name else []
    try:
        published = datetime.fromisoformat(article.published_at)
    except ValueError:
        published = None
    if published is not None and published.tzinfo is not None:
        pattern = DATELINE_PATTERNS[language]
        pieces.append(format_datetime(published, pattern, tzinfo=zone, locale=language))
    return " · ".join(pieces)
