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


def b64(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ending CRLF (the last one too)."""
    encoded = binascii.b2a_base64(data, newline=False)
    return CRLF.join(encoded[i : i + B64_LINE] for i in range(0, len(encoded), B64_LINE)) + CRLF


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
