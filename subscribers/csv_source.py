"""Reading a CSV file as an admin brings it: the encoding detected (with a vote of the lines),
each line decoded on its own and strictly, and the header matched by name in English or
Japanese. The import (`subscribers.importing`) works on what this module hands it.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from newsletter.errors import ValidationError
from newsletter.types import control_character_problem
from subscribers.exporting import FIELDS as EXPORT_FIELDS

EMAIL_HEADERS = frozenset(
    {
        "email",
        "e mail",
        "email address",
        "e mail address",
        "mail",
        "mail address",
        "address",
        "メールアドレス",
        "メール",
        "eメール",
        "eメールアドレス",
        "アドレス",
    }
)
NAME_HEADERS = frozenset({"name", "full name", "display name", "名前", "氏名", "お名前"})
LANGUAGE_HEADERS = frozenset({"language", "lang", "locale", "言語", "希望言語", "購読言語"})
LANGUAGE_VALUES = {
    "ja": "ja",
    "jp": "ja",
    "japanese": "ja",
    "日本語": "ja",
    "en": "en",
    "english": "en",
    "英語": "en",
    "both": "both",
    "ja+en": "both",
    "en+ja": "both-en",
    "both-en": "both-en",
    "en,ja": "both-en",
    "英日": "both-en",
    "ja,en": "both",
    "bilingual": "both",
    "両方": "both",
    "日英": "both",
    "日本語と英語": "both",
}


# --- encoding and header -------------------------------------------------------------------


SHIFT_JIS = frozenset({"cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213"})


def whole_stream(encoding: str) -> bool:
    """UTF-16/32 cannot be cut into lines as bytes; they are decoded as one stream."""
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


_BLOCK = 1 << 20
# Line breaks str.splitlines knows but a CSV reader (newline="") does not: a block holding one
# is cut by the byte rules instead.
_UNUSUAL_BREAK = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _physical_lines(handle: Iterable[bytes]) -> Iterator[bytes]:
    """Raw lines ending in LF, CRLF or a lone CR (old Mac Excel), as `newline=""` reads them."""
    for raw in handle:
        if b"\r" in raw[:-2]:
            yield from raw.splitlines(keepends=True)
        else:
            yield raw


def _decodes(path: Path, encoding: str) -> bool:
    """The whole file decodes (in C, a block at a time): the common case, decided quickly."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_BLOCK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(path: Path) -> str:
    """BOM first, then UTF-8 or CP932 by a vote of the non-ASCII lines, then charset-normalizer.

    A file is UTF-8 when at least half of its non-ASCII lines are valid UTF-8 (the others are
    rejected line by line), CP932 when every other non-ASCII line is valid CP932 (UTF-8 lines
    in it are rejected as mixed), else charset-normalizer's best guess.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _decodes(path, "utf-8"):
        return "utf-8"
    utf8 = cp932 = neither = 0
    with path.open("rb") as handle:
        for raw in _physical_lines(handle):
            if raw.isascii():
                continue
            if _is_utf8(raw):
                utf8 += 1
                continue
            try:
                raw.decode("cp932")
                cp932 += 1
            except UnicodeDecodeError:
                neither += 1
    if utf8 >= cp932 + neither:
        return "utf-8"
    if neither == 0:
        return "cp932"
    from charset_normalizer import from_path

    best = from_path(path).best()
    if best is None:
        raise ValidationError(f"{path}: cannot tell the text encoding; give --encoding")
    return best.encoding


class Lines:
    """The file's lines decoded one at a time, strictly, for the CSV reader.

    A line that does not decode, or a UTF-8 line in a Shift_JIS/CP932 file (it decodes there
    too, as mojibake), is noted in `bad` (line number -> reason) and handed on with
    replacement characters so the reader keeps its place; the row it belongs to is rejected.
    """

    def __init__(self, handle: IO[bytes], encoding: str) -> None:
        self._handle = handle
        self._encoding = encoding
        self._shift_jis = codecs.lookup(encoding).name in SHIFT_JIS
        self.bad: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        """Blocks of whole lines that decode at once go fast; others are taken line by line."""
        if self._shift_jis:  # every non-ASCII line needs the UTF-8 look
            yield from self._one_by_one(self._handle, 1)
            return
        number, rest = 1, b""
        while block := self._handle.read(_BLOCK):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if not cut:
                rest = block
                continue
            block, rest = block[:cut], block[cut:]
            try:
                text = block.decode(self._encoding)
            except UnicodeDecodeError:
                text = None
            if (
                text is None
                or _UNUSUAL_BREAK.search(text)
                or text.count("\r") != text.count("\r\n")
            ):
                lines = block.splitlines(keepends=True)
                yield from self._one_by_one(lines, number)
            else:
                lines = text.splitlines(keepends=True)
                yield from lines
            number += len(lines)
        if rest:
            yield from self._one_by_one(rest.splitlines(keepends=True), number)

    def _one_by_one(self, raws: Iterable[bytes], first: int) -> Iterator[str]:
        encoding = self._encoding
        for number, raw in enumerate(_physical_lines(raws), start=first):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as err:
                self.bad[number] = (
                    f"line {number} is not valid {encoding} text (byte {err.start + 1} of the "
                    "line); is this row from a file in another encoding?"
                )
                yield raw.decode(encoding, errors="replace")
                continue
            if self._shift_jis and not raw.isascii() and _is_utf8(raw):
                self.bad[number] = (
                    f"line {number} is UTF-8 inside a file read as {encoding} (mixed "
                    "encodings); save the file in one encoding"
                )
            yield text


def _header_key(cell: str) -> str:
    text = unicodedata.normalize("NFKC", cell.replace("\ufeff", "")).strip().lower()
    return " ".join(text.replace("_", " ").replace("-", " ").split())


@dataclass(frozen=True, slots=True)
class Columns:
    email: int
    name: int | None
    language: int | None
    extra: tuple[tuple[int, str], ...]
    width: int
    # Set when the file is this project's own export (`subscribers export`): its attributes
    # column is JSON, its status column says who must not be subscribed again, and the
    # formula guard it added to name cells is taken off again.
    attributes_json: int | None = None
    status: int | None = None
    exported: bool = False


def map_header(header: list[str], source: str) -> Columns:
    """Which column holds what; ValidationError naming the file if there is no email column."""
    email = name = language = None
    extra: list[tuple[int, str]] = []
    for index, cell in enumerate(header):
        problem = control_character_problem(cell)
        if problem is not None:
            raise ValidationError(f"{source}: line 1: column {index + 1}: {problem}")
        key = _header_key(cell)
        if key in EMAIL_HEADERS and email is None:
            email = index
        elif key in NAME_HEADERS and name is None:
            name = index
        elif key in LANGUAGE_HEADERS and language is None:
            language = index
        elif cell.strip():
            extra.append((index, cell.strip()))
    if [_header_key(cell) for cell in header] == [_header_key(f) for f in EXPORT_FIELDS]:
        assert email is not None and name is not None and language is not None
        return Columns(
            email,
            name,
            language,
            (),
            len(header),
            attributes_json=EXPORT_FIELDS.index("attributes"),
            status=EXPORT_FIELDS.index("status"),
            exported=True,
        )
    if email is None:
        found = ", ".join(repr(c) for c in header) or "nothing"
        raise ValidationError(
            f"{source}: line 1: no email column; expected a header such as 'email' or "
            f"'メールアドレス', found {found}"
        )
    return Columns(email, name, language, tuple(extra), len(header))


def parse_language(value: str) -> str | None:
    """ja, en, both or both-en from the spellings people use; None if not recognised."""
    return LANGUAGE_VALUES.get(unicodedata.normalize("NFKC", value).strip().lower())
