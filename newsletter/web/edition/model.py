"""An issue's articles as the web edition shows them, from the frozen snapshots (pure).

The cleaning is the email's (`newsletter.render.view`: no slot markers, no control characters,
only absolute http(s) links); the web adds what the email leaves out: the article's `body`,
and the article's own id for its page. Long texts become tuples of paragraphs, so templates
never split strings or mark anything safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from newsletter.render.view import ContentView, article_view, clean_text
from newsletter.types import CONTENT_LANGUAGES


def paragraphs(text: str) -> tuple[str, ...]:
    """Plain text to paragraphs: a blank line starts a new one."""
    return tuple(block.strip() for block in text.split("\n\n") if block.strip())


@dataclass(frozen=True, slots=True)
class WebContent:
    """One language of one article, with its body."""

    parts: ContentView
    impact: tuple[str, ...]
    comment: tuple[str, ...]
    body: tuple[str, ...]

    @property
    def language(self) -> str:
        return self.parts.language

    @property
    def title(self) -> str:
        return self.parts.title


def wanted_languages(variant: str) -> tuple[str, ...]:
    """The languages a page in `variant` shows, in order ("both-en": English first)."""
    if variant == "both-en":
        return ("en", "ja")
    return CONTENT_LANGUAGES if variant == "both" else (variant,)


@dataclass(frozen=True, slots=True)
class WebArticle:
    article_id: int
    url: str | None
    source_url: str | None
    source_name: str
    contents: Mapping[str, WebContent]

    def sections(self, variant: str) -> list[WebContent]:
        """The wanted languages the article has; if it has none of them, what it has."""
        shown = [self.contents[lang] for lang in wanted_languages(variant) if lang in self]
        return shown or [self.contents[lang] for lang in CONTENT_LANGUAGES if lang in self]

    def missing(self, variant: str) -> list[str]:
        return [lang for lang in wanted_languages(variant) if lang not in self]

    def title(self, language: str) -> str:
        """The title in `language`, else in the language the article has."""
        return self.sections(language)[0].title

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in CONTENT_LANGUAGES if lang in self)

    def __contains__(self, language: object) -> bool:
        return language in self.contents


def web_article(article_id: int, snapshot: Mapping[str, Any]) -> WebArticle | None:
    """The article-format dict as the pages see it; None when no language is usable."""
    view = article_view(snapshot)
    if not view.contents:
        return None
    raw = snapshot.get("content") or {}
    contents = {}
    for language, parts in view.contents.items():
        body = raw.get(language, {}).get("body") if isinstance(raw.get(language), Mapping) else None
        contents[language] = WebContent(
            parts=parts,
            impact=paragraphs(parts.impact_analysis),
            comment=paragraphs(parts.editor_comment),
            body=paragraphs(clean_text(body)),
        )
    return WebArticle(
        article_id=article_id,
        url=view.url,
        source_url=view.source_url,
        source_name=view.source_name,
        contents=contents,
    )


def headline(articles: list[WebArticle], language: str) -> str:
    """The day's headline: the first article's title in `language` (else its own language)."""
    return articles[0].title(language) if articles else ""
