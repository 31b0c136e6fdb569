"""Long lines of minified HTML folded where a line break changes nothing: between attributes.

MJML's output is one line of 50-70 KB. SMTP lines may not exceed 998 octets (RFC 5321
4.5.3.1.6), so that HTML could only travel quoted-printable or base64: a third more octets for
the markup, three times more for Japanese text. Inside a start tag, outside quoted values,
any run of whitespace means the same as one space (HTML's tokenizer skips it between
attributes), so a space there may become a line break without changing the document. Nothing
else is touched: text (where a line break could render as a space), comments (Outlook's
conditional comments), declarations, and quoted attribute values (where the slots are) stay
as they are. A line that cannot be folded within the limit is left long; the caller then keeps
the 7-bit encoding.
"""

from __future__ import annotations

from itertools import accumulate

from newsletter.types import SLOTS


def fold_markup(html: str, *, limit: int, slot_weight: int) -> str:
    """`html` with every line over `limit` octets (UTF-8, each slot marker counting
    `slot_weight` octets more for the value it stands for) broken at spaces between attributes.
    Pure; the same string back when nothing needed folding."""
    lines = html.split("\n")
    out: list[str] = []
    changed = False
    for line in lines:
        if len(line) * 4 + slot_weight * line.count("-") <= limit:  # short: no need to weigh
            out.append(line)
            continue
        folded = _fold_line(line, limit, slot_weight)
        changed = changed or len(folded) > 1
        out.extend(folded)
    return "\n".join(out) if changed else html


def _fold_line(line: str, limit: int, slot_weight: int) -> list[str]:
    weights = [_octets(ch) for ch in line]
    for marker in SLOTS:
        start = line.find(marker)
        while start >= 0:
            weights[start] += slot_weight
            start = line.find(marker, start + len(marker))
    prefix = [0, *accumulate(weights)]  # prefix[i]: octets of line[:i]
    if prefix[-1] <= limit:
        return [line]
    pieces: list[str] = []
    start = 0  # where the current output line begins
    last = -1  # the last break opportunity (a space between attributes) on it
    for position in _break_opportunities(line):
        if prefix[position] - prefix[start] > limit and last > start:
            pieces.append(line[start:last])
            start = last + 1  # the space becomes the line break
        last = position
    if prefix[-1] - prefix[start] > limit and last > start:
        pieces.append(line[start:last])
        start = last + 1
    pieces.append(line[start:])
    return pieces


def _octets(ch: str) -> int:
    code = ord(ch)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


def _break_opportunities(line: str) -> list[int]:
    """Positions of spaces inside start or end tags, outside quoted values; never inside a
    comment, a declaration (`<!doctype ...>`) or a processing instruction."""
    found: list[int] = []
    position, end = 0, len(line)
    while True:
        open_at = line.find("<", position)
        if open_at < 0 or open_at + 1 >= end:
            return found
        following = line[open_at + 1]
        if line.startswith("<!--", open_at):
            close = line.find("-->", open_at + 4)
            if close < 0:
                return found
            position = close + 3
            continue
        if following in "!?":
            close = line.find(">", open_at)
            if close < 0:
                return found
            position = close + 1
            continue
        if not (following.isalpha() or following == "/"):
            position = open_at + 1  # a `<` that opens no tag
            continue
        quote = ""
        index = open_at + 1
        while index < end:
            ch = line[index]
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == ">":
                break
            elif ch == " ":
                found.append(index)
            index += 1
        position = index + 1
