"""Display width of text: East Asian wide and full-width characters take two columns."""

from __future__ import annotations

import unicodedata

ELLIPSIS = "…"


def char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns `text` takes in a monospaced terminal or mail reader."""
    return sum(char_width(c) for c in text)


def truncate_width(text: str, width: int) -> str:
    """`text` cut to at most `width` columns, ending with an ellipsis when it was cut."""
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
    return "".join(out).rstrip() + ELLIPSIS
