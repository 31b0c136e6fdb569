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
_WIDE = "\u3000-\u30ff\u3400-\u9fff\uff00-\uffef"
_TOKEN = re.compile(rf"https?://\S+|[^\s{_WIDE}]+|[{_WIDE}]+|\s+|.", re.S)
_WIDE_RUN = re.compile(rf"[{_WIDE}]")


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
    """One logical line as display lines of at most `width` columns (URLs kept whole).

    Latin text breaks at spaces; Japanese between any two characters, except that closing
    punctuation never starts a line (it may hang up to two columns past `width`).
    """
    if display_width(line) <= width or _URL_LINE.match(line):
        return [line]
    indent = _indent_of(line)
    indent_width = display_width(indent)
    lines: list[str] = []
    current: list[str] = []
    used = 0

    def has_text() -> bool:
        return any(part.strip() for part in current)

    def new_line() -> None:
        nonlocal current, used
        lines.append("".join(current).rstrip())
        current, used = [indent], indent_width

    for token in _TOKEN.findall(line):
        w = display_width(token)
        if used + w <= width:
            current.append(token)
            used += w
        elif _WIDE_RUN.match(token):  # a Japanese run: break between characters
            for char in token:
                cw = char_width(char)
                hangs = char in _NO_START and used + cw <= width + 2
                if used + cw > width and not hangs and has_text():
                    new_line()
                current.append(char)
                used += cw
        elif not has_text():  # an overlong word (a URL) at the start of a line stays whole
            current.append(token)
            used += w
        elif token.isspace():
            new_line()
        elif token[0] in _NO_START and used + w <= width + 2:
            current.append(token)  # keep closing punctuation with its word
            used += w
        else:
            new_line()
            current.append(token)
            used += w
    if has_text():
        lines.append("".join(current).rstrip())
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
