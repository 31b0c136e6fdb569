"""Per-recipient MIME messages from a message prepared once per variant.

`MimeTemplate(message)` does the costly work once per variant: it folds and RFC 2047-encodes
the shared headers (encoded words of at most 75 characters), picks each body part's transfer
encoding by size (`providers/transfer.py`: quoted-printable, or base64 for Japanese-heavy
parts) and quoted-printable-encodes QP bodies in pieces split around the slot markers.
`render(recipient)` then only joins bytes:
the recipient's encoded values go between the pieces behind QP soft line breaks (`=` CRLF),
which a reader removes when decoding, so no marker can ever be cut by a line fold.

The output is a complete RFC 5322 `multipart/alternative` message (text first, then HTML) with
CRLF line ends, 7-bit clean by default, ready for `smtplib` and for `.eml` files. For servers
that announce 8BITMIME, `render(..., eightbit=True)` sends each part whose lines fit within 998
octets as raw UTF-8 instead (a third of the size for Japanese text, and far fewer lines for the
receiver to parse); minified HTML, one long line, is first folded between attributes
(`markup_lines.py`), and stays 7-bit only when that cannot bring every line within 998 octets.
A base64 part is encoded whole per recipient (base64 cannot be cut at the slots).

Headers for bulk mail: `List-Id` (RFC 2919), `List-Unsubscribe` with the recipient's https and
mailto targets (RFC 2369) and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058),
`Precedence: bulk` (what autoresponders honour). Transactional mail (confirmations, test sends)
carries `Auto-Submitted: auto-generated` instead (RFC 3834). Every message has a unique
`Message-ID` and `X-Newsletter-Delivery: <delivery id>` so bounces can be matched.
"""

from __future__ import annotations

import html
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from email.header import Header
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from functools import lru_cache

from newsletter.providers.base import PreparedMessage, Recipient
from newsletter.providers.encoded_words import ENCODED_LINE_MAX, encoded_words
from newsletter.providers.markup_lines import fold_markup
from newsletter.providers.transfer import B64_LINE_BYTES, b64, choose_encoding, crlf, qp
from newsletter.types import (
    SLOT_NAME,
    SLOT_PREFERENCES_URL,
    SLOT_TRACKING_TOKEN,
    SLOT_UNSUBSCRIBE_URL,
    SLOTS,
)

CRLF = b"\r\n"
_SOFT_BREAK = b"=\r\n"
MAX_LINE = 998  # octets per line, CRLF excluded (RFC 5321 4.5.3.1.6)
SLOT_VALUE_BUDGET = 256  # bytes a slot value may take on an 8bit line
# Content-Language (RFC 3282) per variant: `both` holds Japanese first, then English.
CONTENT_LANGUAGE = {"ja": "ja", "en": "en", "both": "ja, en"}
_FORBIDDEN_IN_ADDRESS = frozenset("\r\n\t <>,;\"'()[]\\")


def address_problem(email: str) -> str | None:
    """Why `email` cannot be put in an envelope or a header as is, or None when it can.

    The audience layer validates addresses; this is the last line against header injection.
    """
    local, sep, domain = email.rpartition("@")
    if not sep or not local or not domain or "." not in domain:
        return "not an email address (expected local@domain)"
    if not _FORBIDDEN_IN_ADDRESS.isdisjoint(email):
        return "the address contains whitespace, a line break or a reserved character"
    if not local.isascii():
        return "a non-ASCII local part needs SMTPUTF8, which this sender does not use"
    try:
        transport_address(email)
    except UnicodeError:
        return "the domain is not a valid internationalised domain name"
    return None


def transport_address(email: str) -> str:
    """The address as it goes on the wire: an internationalised domain in its ASCII (IDNA) form.

    `info@例え.jp` becomes `info@xn--r8jz45g.jp`, which every server and header accepts.
    """
    local, _, domain = email.rpartition("@")
    if domain.isascii():
        return email
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def clean_display_name(name: str) -> str:
    """A display name without line breaks (header injection) or surrounding space."""
    return " ".join(name.split())


_ATEXT_WORDS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_NOT_NAMESPACE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
LIST_NAME_MAX = 200  # characters of the list's name kept in List-Id


def list_id_value(value: str) -> str:
    """A well-formed RFC 2919 List-Id from `name <namespace>` (the name may hold anything).

    The name becomes an RFC 5322 phrase: plain words as they are, other ASCII as a quoted
    string, non-ASCII as RFC 2047 encoded words (whose encoding escapes every special), so a
    list called `Evil <x>, "AI日報"` cannot change where the namespace is read from. The
    namespace keeps only dot-atom characters; a Unicode domain goes in its IDNA form.
    One line: `fold_list_id` folds it for a MIME header; SendGrid takes it as it is.
    """
    name, bracket, rest = value.rpartition("<")
    if not bracket:
        name, rest = "", value
    namespace = _list_namespace(rest.strip().removesuffix(">"))
    phrase = _phrase(" ".join(_CONTROLS.sub(" ", name).split())[:LIST_NAME_MAX])
    return f"{phrase} <{namespace}>" if phrase else f"<{namespace}>"


def _list_namespace(raw: str) -> str:
    labels = []
    for label in raw.strip().split("."):
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except UnicodeError:
                label = ""
        label = _NOT_NAMESPACE.sub("", label)
        if label:
            labels.append(label)
    return ".".join(labels) or "list.invalid"


def _phrase(name: str) -> str:
    if not name:
        return ""
    if not name.isascii():
        # Q encoding here escapes everything but letters, digits and -!*+/ (RFC 2047 5(3)).
        return Header(name, "utf-8", header_name="List-Id").encode(
            splitchars=" ", maxlinelen=76, linesep=""
        )
    if _ATEXT_WORDS.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fold_list_id(value: str) -> str:
    """`List-Id: value` CRLF, folded at spaces to stay near 78 characters a line."""
    lines = ["List-Id:"]
    for word in value.split(" "):
        if len(lines[-1]) + 1 + len(word) > 78 and lines[-1] != "List-Id:":
            lines.append("")
        lines[-1] += " " + word
    return "\r\n".join(lines) + "\r\n"


def slot_values(recipient: Recipient) -> dict[str, str]:
    """The raw value of each slot for one recipient."""
    return {
        SLOT_UNSUBSCRIBE_URL: recipient.unsubscribe_url,
        SLOT_PREFERENCES_URL: recipient.preferences_url,
        SLOT_NAME: clean_display_name(recipient.name),
        SLOT_TRACKING_TOKEN: recipient.tracking_token,
    }


def fold_header(name: str, value: str) -> str:
    """`Name: value` CRLF. ASCII is folded by `email.policy.SMTP`; other text becomes encoded
    words of at most 75 characters, one per line, each line within RFC 2047's 76."""
    value = clean_display_name(value)
    if value.isascii():
        return SMTP.header_factory(name, value).fold(policy=SMTP)
    words = encoded_words(value, ENCODED_LINE_MAX - len(name) - 2)
    return f"{name}: " + "\r\n ".join(words) + "\r\n"


# What `email.policy.SMTP` writes back unchanged: a display name of atext words (no `=` or `?`,
# which could read as an encoded word) and a plain dot-atom address, on one line of at most 78.
_PLAIN_DISPLAY = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*")
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)


def address_header(name: str, display: str, address: str) -> str:
    """`Name: display <address>` CRLF with a non-ASCII display name in short encoded words."""
    display = clean_display_name(display)
    if display.isascii():
        # `email.policy.SMTP` parses and re-folds the header (~200 µs); for a plain name and
        # address on one short line its output is the line itself (a test holds them equal).
        if _PLAIN_ADDRESS.fullmatch(address) and (not display or _PLAIN_DISPLAY.fullmatch(display)):
            line = f"{name}: {display} <{address}>\r\n" if display else f"{name}: {address}\r\n"
            if len(line) <= 80:
                return line
        return fold_header(name, formataddr((display, address)))
    words = encoded_words(display, ENCODED_LINE_MAX - len(name) - 2)
    last = f"{words[-1]} <{address}>"
    if len(last) + (len(name) + 2 if len(words) == 1 else 1) > ENCODED_LINE_MAX:
        words.append(f"<{address}>")
    else:
        words[-1] = last
    return f"{name}: " + "\r\n ".join(words) + "\r\n"


def _split_on_slots(content: str) -> list[str | int]:
    """`"a -x- b"` -> `["a ", <index of -x- in SLOTS>, " b"]` (strings and slot indexes)."""
    parts: list[str | int] = [content]
    for index, marker in enumerate(SLOTS):
        out: list[str | int] = []
        for part in parts:
            if isinstance(part, int) or marker not in part:
                out.append(part)
                continue
            pieces = part.split(marker)
            for n, piece in enumerate(pieces):
                if n:
                    out.append(index)
                out.append(piece)
        parts = out
    return [p for p in parts if p != ""]


class _Body:
    """One body part, QP-encoded once in pieces; slot values are encoded per recipient."""

    __slots__ = ("_pieces", "_escape")

    def __init__(self, content: str, *, escape_html: bool) -> None:
        self._escape = escape_html
        self._pieces: list[bytes | int] = [
            part if isinstance(part, int) else qp(part) for part in _split_on_slots(content)
        ]
        self._pieces.append(CRLF)  # belongs to the boundary line that follows (RFC 2046)

    def fill(self, values: tuple[str, ...]) -> bytes:
        out: list[bytes] = []
        self.emit(values, out)
        return b"".join(out)

    def shared_output(self) -> list[bytes]:
        """The pieces `emit` puts out as they are, the same objects for every recipient."""
        return [piece for piece in self._pieces if isinstance(piece, bytes)]

    def emit(self, values: tuple[str, ...], out: list[bytes]) -> bool:
        """Append the filled part's pieces to `out` (joined once, with the whole message)."""
        for piece in self._pieces:
            if isinstance(piece, int):
                value = values[piece]
                if self._escape:
                    value = html.escape(value, quote=True)
                out.append(_SOFT_BREAK)
                if value:
                    out.append(qp(value))
                    out.append(_SOFT_BREAK)
            else:
                out.append(piece)
        return True


class _Body64(_Body):
    """One body part in base64 (smaller than QP for Japanese-heavy parts).

    Base64 cannot be cut at the slots, but it can be cut at whole lines: 57 bytes make one
    76-character line. The content before the first slot (nearly all of a newsletter: the
    personal links are in the footer) is encoded once, up to a multiple of 57 bytes; per
    recipient only the rest (the footer with the values) is encoded. The output is the same
    bytes as encoding the filled part whole (a test holds it to that).
    """

    __slots__ = ("_prefix",)

    def __init__(self, content: str, *, escape_html: bool) -> None:
        self._escape = escape_html
        self._pieces = [
            part if isinstance(part, int) else crlf(part).encode("utf-8")
            for part in _split_on_slots(content)
        ]
        self._prefix = b""
        first = self._pieces[0] if self._pieces else 0
        if isinstance(first, bytes):
            cut = len(first) // B64_LINE_BYTES * B64_LINE_BYTES
            if cut:
                self._prefix = b64(first[:cut])
                self._pieces[0] = first[cut:]

    def shared_output(self) -> list[bytes]:
        return [self._prefix] if self._prefix else []

    def emit(self, values: tuple[str, ...], out: list[bytes]) -> bool:
        rest: list[bytes] = []
        for piece in self._pieces:
            if isinstance(piece, int):
                value = values[piece]
                rest.append((html.escape(value, quote=True) if self._escape else value).encode())
            else:
                rest.append(piece)
        tail = b"".join(rest)
        if self._prefix:
            out.append(self._prefix)
        if tail or not self._prefix:
            out.append(b64(tail))
        return True


class _Body8:
    """One body part as raw UTF-8 (`8bit`), for servers that announce 8BITMIME.

    Only used when every line stays within SMTP's 998 octets with `SLOT_VALUE_BUDGET` bytes
    per slot on it; a recipient whose values are longer (or hold a line break) gets QP instead.
    Japanese text is a third of its QP size this way, and a receiver parses far fewer lines.
    """

    __slots__ = ("_pieces", "_escape")

    def __init__(self, content: str, *, escape_html: bool) -> None:
        self._escape = escape_html
        self._pieces: list[bytes | int] = [
            part if isinstance(part, int) else crlf(part).encode("utf-8")
            for part in _split_on_slots(content)
        ]
        self._pieces.append(CRLF)

    @staticmethod
    def fits(content: str) -> bool:
        for line in crlf(content).split("\r\n"):
            slots = sum(line.count(marker) for marker in SLOTS)
            if len(line.encode("utf-8")) + slots * SLOT_VALUE_BUDGET > MAX_LINE:
                return False
        return True

    def shared_output(self) -> list[bytes]:
        return [piece for piece in self._pieces if isinstance(piece, bytes)]

    def fill(self, values: tuple[str, ...]) -> bytes | None:
        """The filled part, or None when a value does not fit on an 8bit line."""
        out: list[bytes] = []
        return b"".join(out) if self.emit(values, out) else None

    def emit(self, values: tuple[str, ...], out: list[bytes]) -> bool:
        """Append the filled part's pieces to `out`; False (and `out` as it was) when a value
        does not fit on an 8bit line."""
        mark = len(out)
        for piece in self._pieces:
            if isinstance(piece, int):
                value = values[piece]
                if self._escape:
                    value = html.escape(value, quote=True)
                data = value.encode("utf-8")
                if len(data) > SLOT_VALUE_BUDGET or b"\n" in data or b"\r" in data:
                    del out[mark:]
                    return False
                out.append(data)
            else:
                out.append(piece)
        return True


def _stuff(data: bytes, *, at_line_start: bool = False) -> bytes:
    """A line starting with `.` gets one more (the same object back when none does)."""
    data = data.replace(b"\r\n.", b"\r\n..")
    return b"." + data if at_line_start and data[:1] == b"." else data


def _part_head(boundary: bytes, content_type: bytes, encoding: bytes) -> bytes:
    return b"".join(
        (
            b"--" + boundary + CRLF,
            b"Content-Type: " + content_type + b'; charset="utf-8"' + CRLF,
            b"Content-Transfer-Encoding: " + encoding + CRLF,
            CRLF,
        )
    )


class _DateCache:
    """`Date:` values, formatted at most once a second (formatdate is not free)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._second = -1
        self._value = ""

    def now(self) -> str:
        second = int(time.time())
        with self._lock:
            if second != self._second:
                self._second = second
                # A numeric zone (+0000), not the obsolete "GMT" (RFC 5322 4.3).
                self._value = format_datetime(datetime.fromtimestamp(second, UTC))
            return self._value


_DATES = _DateCache()


def _body(encoding: str, content: str, *, escape_html: bool) -> _Body:
    if encoding == "base64":
        return _Body64(content, escape_html=escape_html)
    return _Body(content, escape_html=escape_html)


class MimeTemplate:
    """A `PreparedMessage` compiled for per-recipient rendering. Thread-safe (immutable)."""

    def __init__(self, message: PreparedMessage) -> None:
        self.message = message
        self.domain = message.from_email.rpartition("@")[2] or "localhost"
        self.boundary = "=_ainippo_" + secrets.token_hex(12)
        self.subject_has_slots = any(marker in message.subject for marker in SLOTS)
        self._shared_headers = self._build_shared_headers()
        # Each part in quoted-printable or base64, whichever is smaller (providers/transfer.py).
        self.encodings = (choose_encoding(message.text), choose_encoding(message.html))
        self._text = _body(self.encodings[0], message.text, escape_html=False)
        self._html = _body(self.encodings[1], message.html, escape_html=True)
        # Each part is 8bit-capable on its own (minified HTML usually is not; text usually is).
        self._text8 = _Body8(message.text, escape_html=False) if _Body8.fits(message.text) else None
        # Minified HTML is one long line: folded between attributes it fits 8bit lines too.
        html8 = message.html
        if not _Body8.fits(html8):
            html8 = fold_markup(html8, limit=MAX_LINE, slot_weight=SLOT_VALUE_BUDGET)
        self._html8 = _Body8(html8, escape_html=True) if _Body8.fits(html8) else None
        self.eightbit_ok = self._text8 is not None or self._html8 is not None
        b = self.boundary.encode("ascii")
        self._opens = {
            encoding: (
                _part_head(b, b"text/plain", encoding.encode()),
                _part_head(b, b"text/html", encoding.encode()),
            )
            for encoding in ("quoted-printable", "base64", "8bit")
        }
        self._close = b"--" + b + b"--" + CRLF
        # The shared pieces dot-stuffed once (SMTP, RFC 5321 4.5.2), by identity: `dot_stuff`
        # then only searches the recipient's own pieces.
        shared = [
            self._shared_headers,
            self._close,
            *(o for pair in self._opens.values() for o in pair),
        ]
        for body in (self._text, self._html, self._text8, self._html8):
            if body is not None:
                shared += body.shared_output()
        self._stuffed = {id(piece): _stuff(piece) for piece in shared if len(piece) > 64}

    def _build_shared_headers(self) -> bytes:
        message = self.message
        folded = address_header("From", message.from_name, message.from_email)
        headers = []
        if message.reply_to:
            headers.append(("Reply-To", message.reply_to))
        if not self.subject_has_slots:
            headers.append(("Subject", message.subject))
        if message.bulk:
            headers.append(("Precedence", "bulk"))
        else:
            headers.append(("Auto-Submitted", "auto-generated"))
        language = CONTENT_LANGUAGE.get(message.variant)
        if language:
            headers.append(("Content-Language", language))
        folded += "".join(fold_header(name, value) for name, value in headers)
        if message.list_id:
            # Not through the unstructured folding: it would decode the encoded words again.
            folded += fold_list_id(list_id_value(message.list_id))
        return (
            folded
            + "MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/alternative;\r\n boundary="{self.boundary}"\r\n'
        ).encode("ascii")

    def message_id(self, recipient: Recipient) -> str:
        return f"<{recipient.delivery_id}.{secrets.token_hex(8)}@{self.domain}>"

    def _recipient_headers(self, recipient: Recipient, values: tuple[str, ...]) -> bytes:
        name = clean_display_name(recipient.name)
        lines = [
            address_header("To", name, transport_address(recipient.email)).rstrip("\r\n"),
            f"Date: {_DATES.now()}",
            f"Message-ID: {self.message_id(recipient)}",
            f"X-Newsletter-Delivery: {recipient.delivery_id}",
        ]
        if self.subject_has_slots:
            subject = self.message.subject
            for marker, value in zip(SLOTS, values, strict=True):
                subject = subject.replace(marker, value)
            lines.append(fold_header("Subject", subject).rstrip("\r\n"))
        unsubscribe = list_unsubscribe(recipient, fold=True)
        if self.message.bulk and unsubscribe:
            lines.append("List-Unsubscribe: " + unsubscribe)
            if recipient.unsubscribe_url:
                lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def render(self, recipient: Recipient, *, eightbit: bool = False) -> bytes:
        """The complete message for one recipient, CRLF line ends.

        7-bit quoted-printable by default; with `eightbit` (the server announced 8BITMIME)
        raw UTF-8 bodies when they fit, which are smaller and quicker to receive.
        """
        return b"".join(self.render_pieces(recipient, eightbit=eightbit))

    def dot_stuffed(self, pieces: list[bytes]) -> list[bytes]:
        """`pieces` (from `render_pieces`) dot-stuffed for SMTP's DATA: the same octets as
        stuffing their join (a test holds them equal), the shared pieces from the copies
        stuffed once, so a message is never searched or copied whole."""
        out: list[bytes] = []
        at_line_start = True
        known = self._stuffed
        for piece in pieces:
            if not piece:
                continue
            if at_line_start and piece[:1] == b".":
                out.append(b".")
            stuffed = known.get(id(piece))
            out.append(_stuff(piece) if stuffed is None else stuffed)
            last = piece[-1:]
            if last == b"\r":  # a CRLF cut in two (never from this module): the plain way
                return [_stuff(b"".join(pieces), at_line_start=True)]
            at_line_start = last == b"\n"
        return out

    def render_pieces(self, recipient: Recipient, *, eightbit: bool = False) -> list[bytes]:
        """`render`'s message as the pieces it joins (shared ones are the same objects every
        time)."""
        values = tuple(map(slot_values(recipient).__getitem__, SLOTS))
        out = [self._shared_headers, self._recipient_headers(recipient, values), CRLF]
        self._part(out, self._text, self._text8, 0, values, eightbit)
        self._part(out, self._html, self._html8, 1, values, eightbit)
        out.append(self._close)
        return out

    def _part(
        self,
        out: list[bytes],
        seven: _Body,
        raw: _Body8 | None,
        index: int,
        values: tuple[str, ...],
        eightbit: bool,
    ) -> None:
        """Part header and encoded body onto `out`: raw UTF-8 when allowed and it fits, else
        7-bit."""
        if eightbit and raw is not None:
            out.append(self._opens["8bit"][index])
            if raw.emit(values, out):
                return
            out.pop()
        out.append(self._opens[self.encodings[index]][index])
        seven.emit(values, out)


def list_unsubscribe(recipient: Recipient, *, fold: bool = False) -> str:
    """`<https://...>, <mailto:...>` (https first: RFC 8058 one-click), or "" when none.

    `fold` puts the mailto target on a continuation line, as long raw headers should be.
    """
    urls = (recipient.unsubscribe_url, recipient.unsubscribe_mailto)
    return (",\r\n " if fold else ", ").join(f"<{url}>" for url in urls if url)


@lru_cache(maxsize=32)
def template_for(message: PreparedMessage) -> MimeTemplate:
    """The compiled template of a variant, built once and shared by every batch that sends it."""
    return MimeTemplate(message)


def build_message(message: PreparedMessage, recipient: Recipient) -> bytes:
    """One recipient's complete message (what the SMTP provider and the outbox send)."""
    return template_for(message).render(recipient)
