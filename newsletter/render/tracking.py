"""The tracked form of a variant: article, source and related links through `/c/TOKEN/N`.

Pure: a `LinkCollector` gives each distinct link of a rendering its number while the template
context is built, and remembers where the number leads; the caller stores what the collector
kept (`newsletter.issues.variants` writes `issue_links`). A rendering the size budget throws
away simply drops its collector, so no number of a discarded render ever reaches the database.

Only links to content are wrapped. Unsubscribe, preferences, the web version and the note's
links are never tracked: they are the reader's own controls, or the editor's words.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.types import SLOT_TRACKING_TOKEN
from newsletter.urls import click_url, open_pixel_url

LINK_KINDS = ("article", "source", "related")


@dataclass(frozen=True, slots=True)
class TrackedLink:
    """Where `/c/TOKEN/<link_no>` of one variant leads, and what it was in the issue."""

    link_no: int
    variant: str
    article_key: str  # the article format's `id` of the article the link belongs to
    kind: str  # article | source | related
    position: int  # the article's place in the issue, from 1
    url: str  # the final URL, UTM parameters included, exactly as the direct form links it


class LinkCollector:
    """Numbers the links of one variant's rendering from `first`, one number per distinct
    (kind, article position, URL): the headline and the Read more button share theirs, and the
    HTML and text parts agree."""

    def __init__(self, base_url: str, variant: str, first: int = 1) -> None:
        self.base_url = base_url
        self.variant = variant
        self.first = first
        self._numbers: dict[tuple[str, int, str], int] = {}
        self.links: list[TrackedLink] = []

    def __call__(self, url: str, *, kind: str, position: int, article_key: str) -> str:
        """The tracked link standing for `url` (the recipient's token is a slot)."""
        if kind not in LINK_KINDS:
            raise ValueError(f"kind: expected one of {', '.join(LINK_KINDS)}, got {kind!r}")
        key = (kind, position, url)
        number = self._numbers.get(key)
        if number is None:
            number = self.first + len(self.links)
            self._numbers[key] = number
            self.links.append(TrackedLink(number, self.variant, article_key, kind, position, url))
        return click_url(self.base_url, SLOT_TRACKING_TOKEN, number)

    @property
    def next_number(self) -> int:
        """The first number the issue's next variant may use (numbers are unique per issue)."""
        return self.first + len(self.links)


def pixel_url(base_url: str) -> str:
    """The open pixel's address in a tracked form, the recipient's token as a slot."""
    return open_pixel_url(base_url, SLOT_TRACKING_TOKEN)
