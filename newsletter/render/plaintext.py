"""The plain-text part: wrapped by display width, links as numbered references, no line over
998 bytes (RFC 5322 2.1.1).

A URL is never broken unless it alone exceeds the byte limit (it then gets hard-split, the only
safe choice left); otherwise an overlong URL stands on its own line so mail readers can still
recognise it.
"""

from __future__ import annotations

import re

from newsletter.render.width import char_width, display_width

WIDTH = 72  # display columns
MAX_LINE_BYTES = 998
_URL_LINE = re.compile(r"^(\[\d+\] )?https?://\S+$")
# Characters that may not start a line (Japanese kinsoku shori, the common subset).
_NO_START = frozenset(
    "、。，．,.)）」』】〕〉》・：；:;!?！？ー…ぁぃぅぇぉっゃゅょァィゥェォッャュョ"
)
_TOKEN = re.compile(r"https?://\S+|[^\s\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]+|\s+|.", re.S)


class LinkRefs:
    """Numbers every distinct URL once, in order of first use."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def __call__(self, url: str) -> str:
        number = self._numbers.setdefault(url, len(self._numbers) + 1)
        return f"[{number}]"

    def items(self) -> list[tuple[int, str]]:
        return [(n, url) for url, n in self._numbers.items()]


def _indent_of(line: str) -> str:
    match = re.match(r"^(\s*(?:・|- |\* |\d+\. |■ )?)", line)
    prefix = match.group(1) if match else ""
    return " " * display_width(prefix) if prefix.strip() else prefix


def wrap_line(line: str, width: int = WIDTH) -> list[str]:
    """One logical line as display lines of at most `width` columns (URLs kept whole)."""
    if display_width(line) <= width or _URL_LINE.match(line):
        return [line]
    indent = _indent_of(line)
    lines: list[str] = []
    current = ""
    used = 0
    for token in _TOKEN.findall(line):
        w = display_width(token)
        if used + w > width and current.strip():
            if token.isspace():
                lines.append(current.rstrip())
                current, used = indent, display_width(indent)
                continue
            if token[0] in _NO_START and used + w <= width + 2:
                current += token  # keep closing punctuation with its word
                used += w
                continue
            lines.append(current.rstrip())
            current, used = indent, display_width(indent)
        current += token
        used += w
    if current.strip():
        lines.append(current.rstrip())
    return lines


def hard_split(line: str, limit: int = MAX_LINE_BYTES) -> list[str]:
    """`line` cut into pieces of at most `limit` UTF-8 bytes, never inside a character."""
    if len(line.encode("utf-8")) <= limit:
        return [line]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        n = len(char.encode("utf-8"))
        if size + n > limit:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += n
    pieces.append("".join(current))
    return pieces


def finish(text: str, width: int = WIDTH) -> str:
    """Wrap every line, collapse runs of blank lines, and enforce the byte limit."""
    out: list[str] = []
    blank = 0
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line:
            blank += 1
            if blank <= 1 and out:
                out.append("")
            continue
        blank = 0
        for wrapped in wrap_line(line, width):
            out.extend(hard_split(wrapped))
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


__all__ = ["LinkRefs", "finish", "wrap_line", "hard_split", "char_width"]
