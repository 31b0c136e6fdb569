"""Content-Transfer-Encoding per body part, chosen by size, and the size a part travels at.

Quoted-printable keeps ASCII (markup, URLs) readable at ~1.04x, but writes every byte of
Japanese UTF-8 as `=E3`: ~3x. Base64 costs 4/3 (plus a CRLF per 76 characters) whatever the
content. A part goes in whichever is smaller, so a Japanese-heavy HTML part travels in base64
and an English one in quoted-printable. The size budget (`newsletter.render.budget`) measures the
HTML part with the same choice, so what it counts is what a mailbox receives (Gmail clips the
HTML part over 102,400 bytes).
"""

from __future__ import annotations

import binascii

CRLF = b"\r\n"
B64_LINE = 76  # characters of base64 per line (RFC 2045 6.8)
B64_LINE_BYTES = B64_LINE // 4 * 3  # 57 input bytes make one whole line


def crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def qp(data: str) -> bytes:
    """Quoted-printable (C implementation), CRLF line ends, UTF-8.

    `b2a_qp` takes its line-end style from the input, so it is fed LF and its output converted.
    """
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(normalised.encode("utf-8"), istext=True).replace(b"\n", CRLF)


_LINES: tuple[slice, ...] = ()  # slice(i * 76, (i + 1) * 76) per line; replaced when grown


def b64(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ending CRLF (the last one too).

    The lines are cut by `map` over prepared slices (no Python loop per line) and joined with
    a trailing empty piece for the last CRLF: one copy of the encoded text.
    """
    global _LINES
    encoded = binascii.b2a_base64(data, newline=False)
    count = -(-len(encoded) // B64_LINE) or 1
    lines = _LINES
    if count > len(lines):  # a new tuple, never one grown in place: threads share it
        lines = _LINES = tuple(
            slice(i, i + B64_LINE) for i in range(0, count * 2 * B64_LINE, B64_LINE)
        )
    return CRLF.join([*map(encoded.__getitem__, lines[:count]), b""])


def b64_size(length: int) -> int:
    """Bytes of `b64` output for `length` input bytes."""
    chars = (length + 2) // 3 * 4
    return chars + 2 * max(1, -(-chars // B64_LINE))


def choose_encoding(content: str) -> str:
    """`base64` when it is smaller than quoted-printable for `content`, else `quoted-printable`."""
    encoded = crlf(content).encode("utf-8")
    return "base64" if b64_size(len(encoded)) < len(qp(content)) + 2 else "quoted-printable"


def transmitted_size(content: str, encoding: str) -> int:
    """Bytes of the part's body as sent in `encoding` (the CRLF before the boundary counted)."""
    if encoding == "base64":
        return b64_size(len(crlf(content).encode("utf-8")))
    return len(qp(content)) + 2
