"""The size budget: Gmail clips an HTML body over 102,400 bytes as received (transfer-encoded),
hiding the footer (and with it the unsubscribe link). A variant over budget is trimmed
progressively, least valuable text first, each article that lost text saying so next to its
read-more button.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from newsletter.providers.transfer import choose_encoding
from newsletter.providers.transfer import transmitted_size as encoded_size
from newsletter.render.view import ArticleView, ContentView, IssueView
from newsletter.render.width import truncate_width
from newsletter.types import (
    SLOT_NAME,
    SLOT_PREFERENCES_URL,
    SLOT_TRACKING_TOKEN,
    SLOT_UNSUBSCRIBE_URL,
)

GMAIL_CLIP_BYTES = 102_400
# What a real recipient's slots look like once filled: a signed token is ~100-150 characters.
_REALISTIC_TOKEN = "x" * 160
# The longest tracking token (`newsletter.engagement.tokens`): a 64-bit delivery id in hex,
# a dot, 22 characters of signature. It stands in every tracked link and in the pixel.
REALISTIC_TRACKING_TOKEN = "f" * 16 + "." + "x" * 22


def _filled(html: str, base_url: str) -> str:
    return (
        html.replace(SLOT_UNSUBSCRIBE_URL, f"{base_url}/u/{_REALISTIC_TOKEN}")
        .replace(SLOT_PREFERENCES_URL, f"{base_url}/p/{_REALISTIC_TOKEN}")
        .replace(SLOT_NAME, "山田 太郎 (Taro Yamada)")
        .replace(SLOT_TRACKING_TOKEN, REALISTIC_TRACKING_TOKEN)
    )


def filled_size(html: str, base_url: str) -> int:
    """UTF-8 bytes of `html` with its slots filled by realistic per-recipient values."""
    return len(_filled(html, base_url).encode("utf-8"))


def transmitted_size(html: str, base_url: str) -> int:
    """Bytes of the HTML part as a mailbox receives it (slots filled realistically): the
    transfer encoding the MIME builder picks for this HTML (quoted-printable or base64,
    whichever is smaller), counted on the wire. This is what the budget holds under
    `GMAIL_CLIP_BYTES`. (With 8BITMIME the HTML may travel 8bit, folded between attributes,
    which is smaller still: the 7-bit size is the bound that holds for every server.)"""
    return encoded_size(_filled(html, base_url), choose_encoding(html))


ContentEdit = Callable[[ContentView], ContentView]


@dataclass(frozen=True, slots=True)
class TrimStep:
    description: str  # recorded in RenderedVariant.trimmed, shown to the editor
    edit: ContentEdit

    def apply(self, view: IssueView) -> IssueView:
        articles: list[ArticleView] = []
        for article in view.articles:
            contents = {lang: self.edit(c) for lang, c in article.contents.items()}
            changed = contents != dict(article.contents)
            articles.append(
                replace(article, contents=contents, shortened=article.shortened or changed)
            )
        return view.with_articles(articles)


def _points(width: int | None) -> ContentEdit:
    def edit(c: ContentView) -> ContentView:
        points = tuple(
            replace(p, body="" if width is None else truncate_width(p.body, width))
            for p in c.key_points
        )
        return replace(c, key_points=points)

    return edit


def _related(keep: int) -> ContentEdit:
    return lambda c: replace(c, related=c.related[:keep])


def _field(name: str, width: int) -> ContentEdit:
    def edit(c: ContentView) -> ContentView:
        value = getattr(c, name)
        return replace(c, **{name: truncate_width(value, width) if width else ""})

    return edit


# Least valuable first. Widths are display columns (a Japanese character counts two).
TRIM_STEPS: tuple[TrimStep, ...] = (
    TrimStep("key point bodies shortened to 160 columns", _points(160)),
    TrimStep("related articles limited to 1 per article", _related(1)),
    TrimStep("impact analysis shortened to 320 columns", _field("impact_analysis", 320)),
    TrimStep("editor comments shortened to 200 columns", _field("editor_comment", 200)),
    TrimStep("key point bodies shortened to 80 columns", _points(80)),
    TrimStep("related articles removed", _related(0)),
    TrimStep("impact analysis shortened to 160 columns", _field("impact_analysis", 160)),
    TrimStep("key point bodies removed", _points(None)),
    TrimStep("summaries shortened to 200 columns", _field("summary", 200)),
    TrimStep("impact analysis removed", _field("impact_analysis", 0)),
    TrimStep("editor comments removed", _field("editor_comment", 0)),
)
