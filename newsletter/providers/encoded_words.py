"""RFC 2047 encoded words for header text that is not ASCII (Subject, display names).

`email.policy.SMTP` folds into 76-character words and `formataddr(..., charset=)` makes one
word of any length for a long name; RFC 2047 allows 75 characters a word and 76 a line.
"""

from __future__ import annotations

import binascii

ENCODED_LINE_MAX = 76  # RFC 2047 section 2: a line holding an encoded word, at most
_EW_OVERHEAD = len("=?utf-8?b??=")


def encoded_words(text: str, first_room: int = 75) -> list[str]:
    """`text` as RFC 2047 base64 encoded words of at most 75 characters (the first at most
    `first_room`), never splitting a UTF-8 character; decoders drop the folding between them."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    limit = (first_room - _EW_OVERHEAD) // 4 * 3  # raw bytes that fit
    for char in text:
        width = len(char.encode("utf-8"))
        if chunk and size + width > limit:
            words.append(_ew("".join(chunk)))
            chunk, size, limit = [], 0, (75 - _EW_OVERHEAD) // 4 * 3
        chunk.append(char)
        size += width
    if chunk:
        words.append(_ew("".join(chunk)))
    return words


def _ew(text: str) -> str:
    return "=?utf-8?b?" + binascii.b2a_base64(text.encode("utf-8"), newline=False).decode() + "?="
