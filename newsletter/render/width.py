"""Display width of text: East Asian wide and full-width characters take two columns."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

ELLIPSIS = "…"
_WORD_BACKOFF = 24  # characters a cut may move back to end on a whole word


@lru_cache(maxsize=8192)
def char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns `text` takes in a monospaced terminal or mail reader."""
    if text.isascii():
        return len(text)
    return sum(map(char_width, text))


def truncate_width(text: str, width: int) -> str:
    """`text` cut to at most `width` columns, ending with an ellipsis when it was cut.

    A cut inside a Latin word moves back to the previous space (if one is near), so English
    never ends in half a word; Japanese may be cut between any two characters.
    """
    if display_width(text) <= width:
        return text
    out: list[str] = []
    used = 0
    for char in text:
        w = char_width(char)
        if used + w > width - 1:
            break
        out.append(char)
        used += w
    kept = "".join(out)
    cut_char = text[len(kept)]
    if (
        kept
        and kept[-1].isascii()
        and kept[-1].isalnum()
        and cut_char.isascii()
        and cut_char.isalnum()
    ):
        space = kept.rfind(" ")
        if space > 0 and len(kept) - space <= _WORD_BACKOFF:
            kept = kept[:space]
    return kept.rstrip(" ,;:") + ELLIPSIS
