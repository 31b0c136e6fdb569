"""CSV import: the subscriber list an admin brings from elsewhere, a million rows if need be.

What it promises:
- Headers are matched by name (`email`/`メールアドレス`, `name`/`名前`, `language`/`言語`, and
  other aliases); other columns are kept in the subscriber's `attributes`.
- The encoding is detected (BOM first, then UTF-8, then CP932 as Japanese Excel writes, then
  charset-normalizer) unless given, with a vote of the lines: a file is UTF-8 when most of its
  non-ASCII lines are. Each line is then decoded on its own, strictly: a line that is not valid
  in the file's encoding, or that is UTF-8 inside a CP932 file (it would decode, as mojibake),
  rejects its row with the line number; it is never stored garbled.
- Control characters are refused per cell (NUL cannot be stored by PostgreSQL): none in the
  address or the name, only tab and line breaks in other columns.
- Addresses are validated and normalised by email-validator (`subscribers.addresses`).
- Within the file the first occurrence of an address wins; later ones are reported as
  duplicates. Against the database, rows are matched case-insensitively (`email_key`).
- Suppressed addresses are reported and never imported; an existing subscription's status is
  never changed (an unsubscribed person stays unsubscribed).
- Every rejected row is reported with its line number and reason; a bad row loses nothing else.
- Rows are written in chunks with `INSERT ... ON CONFLICT`, each chunk committed: an
  interrupted import re-runs safely (rows already in count as unchanged).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import String, any_, bindparam, func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import Clock
from newsletter.db.models import ConsentRecord, Subscriber, Subscription, Suppression
from newsletter.errors import ValidationError
from newsletter.types import SubscriptionStatus, control_character_problem
from newsletter.urls import DEFAULT_LIST_SLUG
from subscribers.addresses import normalise_email
from subscribers.exporting import FIELDS as EXPORT_FIELDS
from subscribers.exporting import neutralise, restore
from subscribers.hashing import EmailHasher
from subscribers.service import resolve_list

CHUNK_SIZE = 50_000  # rows per transaction: fewer commits, each index page rewritten less

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
    "en+ja": "both",
    "ja,en": "both",
    "bilingual": "both",
    "両方": "both",
    "日英": "both",
    "日本語と英語": "both",
}
NAME_MAX = 200
REPORT_FIELDS = ("line", "email", "outcome", "reason")


@dataclass
class ImportSummary:
    """What happened, in the counts an admin checks against the file."""

    file: str
    encoding: str
    list_slug: str
    rows: int = 0
    imported: int = 0  # new subscriptions (new subscriber, or known subscriber new to the list)
    updated: int = 0  # subscription already there; name, language or attributes changed
    unchanged: int = 0
    rejected: int = 0
    suppressed: int = 0
    duplicates: int = 0
    not_reactivated: int = 0  # unsubscribed, bounced, complained or expired on this list
    report: str | None = None
    problems: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("problems")
        data["list"] = data.pop("list_slug")
        return data


@dataclass(slots=True)
class _Row:
    line: int
    email: str
    key: str
    hash: str
    name: str | None
    language: str | None
    attributes: dict[str, Any]


# --- encoding and header -------------------------------------------------------------------


_SHIFT_JIS = frozenset({"cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213"})


def _whole_stream(encoding: str) -> bool:
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


class _Lines:
    """The file's lines decoded one at a time, strictly, for the CSV reader.

    A line that does not decode, or a UTF-8 line in a Shift_JIS/CP932 file (it decodes there
    too, as mojibake), is noted in `bad` (line number -> reason) and handed on with
    replacement characters so the reader keeps its place; the row it belongs to is rejected.
    """

    def __init__(self, handle: IO[bytes], encoding: str) -> None:
        self._handle = handle
        self._encoding = encoding
        self._shift_jis = codecs.lookup(encoding).name in _SHIFT_JIS
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
class _Columns:
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


def map_header(header: list[str], source: str) -> _Columns:
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
        return _Columns(
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
    return _Columns(email, name, language, tuple(extra), len(header))


def parse_language(value: str) -> str | None:
    """ja, en or both from the spellings people use; None if not recognised."""
    return LANGUAGE_VALUES.get(unicodedata.normalize("NFKC", value).strip().lower())


# --- the import ----------------------------------------------------------------------------


class _Report:
    """Rejected and reported rows: kept in the summary (first 1000) and streamed to a CSV."""

    def __init__(self, summary: ImportSummary, out: IO[str] | None) -> None:
        self._summary = summary
        self._writer = csv.writer(out) if out is not None else None
        if self._writer is not None:
            self._writer.writerow(REPORT_FIELDS)

    def add(self, line: int, email: str, outcome: str, reason: str) -> None:
        if len(self._summary.problems) < 1000:
            self._summary.problems.append(
                {"line": line, "email": email, "outcome": outcome, "reason": reason}
            )
        if self._writer is not None:
            self._writer.writerow([line, neutralise(email), outcome, reason])


def _rows(
    reader: Iterator[list[str]],
    line_of: Any,
    columns: _Columns,
    hasher: EmailHasher,
    summary: ImportSummary,
    report: _Report,
    bad_lines: dict[int, str],
    status: str = SubscriptionStatus.ACTIVE,
) -> Iterator[_Row]:
    """Valid, first-seen rows; every other row is counted and reported. The hot loop."""
    seen: dict[str, int] = {}
    width, email_at, name_at, language_at = (
        columns.width,
        columns.email,
        columns.name,
        columns.language,
    )
    extra, padding, hash_of = columns.extra, [""] * width, hasher.of_key
    exported = columns.exported
    line = line_of() + 1
    for cells in reader:
        start, line = line, line_of() + 1
        if len(cells) != width:
            if not "".join(cells).strip():
                continue
            if len(cells) < width:
                cells = cells + padding[len(cells) :]
            elif "".join(cells[width:]).strip():
                summary.rows += 1
                summary.rejected += 1
                report.add(
                    start,
                    cells[email_at].strip(),
                    "rejected",
                    f"expected {width} columns, found {len(cells)} "
                    "(is a comma inside an unquoted value?)",
                )
                continue
        elif not "".join(cells).strip():
            continue
        summary.rows += 1
        if bad_lines:
            undecodable = next((bad_lines[n] for n in range(start, line) if n in bad_lines), None)
            if undecodable is not None:
                summary.rejected += 1
                shown = cells[email_at].strip()
                report.add(start, shown if shown.isascii() else "", "rejected", undecodable)
                continue
        raw_email = cells[email_at]
        try:
            email = normalise_email(raw_email)
        except ValidationError as err:
            summary.rejected += 1
            report.add(start, _printable(raw_email), "rejected", f"email: {err}")
            continue
        name = cells[name_at] if name_at is not None else ""
        if exported:
            name = restore(name)
            if (refused := _exported_status(cells, columns, status)) is not None:
                summary.not_reactivated += 1
                report.add(start, email, "not_reactivated", refused)
                continue
        name = name.strip()
        if len(name) > NAME_MAX:
            summary.rejected += 1
            report.add(start, email, "rejected", f"name: longer than {NAME_MAX} characters")
            continue
        if name and (problem := control_character_problem(name)) is not None:
            summary.rejected += 1
            report.add(start, email, "rejected", f"name: {problem}")
            continue
        language = None
        if language_at is not None and (cell := cells[language_at]):
            language = LANGUAGE_VALUES.get(cell) or parse_language(cell)
            if language is None and cell.strip():
                summary.rejected += 1
                report.add(
                    start,
                    email,
                    "rejected",
                    "language: expected ja, en or both (or 日本語, 英語, 両方), "
                    f"got {_printable(cell)!r}",
                )
                continue
        if exported:
            attributes, problem = _exported_attributes(cells, columns)
        else:
            attributes = {label: value for index, label in extra if (value := cells[index].strip())}
            problem = _attribute_problem(attributes)
        if problem is not None:
            summary.rejected += 1
            report.add(start, email, "rejected", problem)
            continue
        key = email.lower()
        if key in seen:
            summary.duplicates += 1
            report.add(start, raw_email.strip(), "duplicate", f"same address as line {seen[key]}")
            continue
        seen[key] = start
        yield _Row(start, email, key, hash_of(key), name or None, language, attributes)


def _printable(cell: str) -> str:
    """A cell as it may appear in a one-line report: control characters shown as escapes."""
    text = cell.strip()
    return text if control_character_problem(text) is None else repr(text)[1:-1]


def _attribute_problem(attributes: dict[str, Any]) -> str | None:
    for label, value in attributes.items():
        if isinstance(value, str):
            problem = control_character_problem(value, multiline=True)
            if problem is not None:
                return f"{label}: {problem}"
    return None


_ENDED = frozenset(
    {
        SubscriptionStatus.UNSUBSCRIBED,
        SubscriptionStatus.BOUNCED,
        SubscriptionStatus.COMPLAINED,
        SubscriptionStatus.EXPIRED,
    }
)


def _exported_status(cells: list[str], columns: _Columns, importing: str) -> str | None:
    """Why an exported row must not be subscribed (again, or as active), or None."""
    assert columns.status is not None
    status = cells[columns.status].strip()
    if status in _ENDED:
        return f"{status} in the exported file; not subscribed again"
    if status == SubscriptionStatus.PENDING and importing == SubscriptionStatus.ACTIVE:
        return "pending (never confirmed) in the exported file; import with --status pending"
    return None


def _exported_attributes(cells: list[str], columns: _Columns) -> tuple[dict[str, Any], str | None]:
    """The export's attributes cell (a JSON object, or empty) back as attributes."""
    assert columns.attributes_json is not None
    cell = cells[columns.attributes_json].strip()
    if not cell:
        return {}, None
    try:
        value = orjson.loads(cell)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        return {}, "attributes: expected a JSON object, as `subscribers export` writes it"
    return value, _attribute_problem(value)


def _bulk_insert(
    session: Session, model: type[Any], rows: list[dict[str, Any]], conflict: list[str] | None
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING for many rows in one executemany.

    On SQLite the statement is compiled once and the rows go straight to the driver with
    values already in SQLAlchemy's storage format (UTC text datetimes, JSON text): the
    per-value bind processing would otherwise cost more than the database work.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect
    table = model.__table__
    if dialect.name == "postgresql":
        pg_stmt = postgresql.insert(table)
        if conflict:
            pg_stmt = pg_stmt.on_conflict_do_nothing(index_elements=conflict)
        session.connection().execute(pg_stmt, rows)
        return
    stmt = sqlite.insert(table).values({name: None for name in rows[0]})
    if conflict:
        stmt = stmt.on_conflict_do_nothing(index_elements=conflict)
    compiled = stmt.compile(dialect=dialect)
    order = list(compiled.positiontup or ())
    for name in order:
        convert = _SQLITE_CONVERT.get(type(table.c[name].type).__name__)
        if convert is not None:
            for row in rows:
                if row[name] is not None:
                    row[name] = convert(row[name])
    getter = itemgetter(*order)
    params = [getter(row) for row in rows] if len(order) > 1 else [(getter(r),) for r in rows]
    session.connection().exec_driver_sql(str(compiled), params)


@lru_cache(maxsize=64)
def _sqlite_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


_SQLITE_CONVERT: dict[str, Any] = {
    "UTCDateTime": _sqlite_datetime,
    "JSON": lambda value: orjson.dumps(value).decode() if value else "{}",
}


@dataclass
class _Plan:
    """What one chunk does to the database, decided before anything is written."""

    subscribe: list[int] = field(default_factory=list)  # subscriber ids new to the list
    changes: list[dict[str, Any]] = field(default_factory=list)  # subscriber field updates
    kept: list[tuple[_Row, str]] = field(default_factory=list)  # ended subscriptions, untouched
    updated: int = 0
    unchanged: int = 0


_LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)


def plan_rows(
    rows: list[_Row],
    existing: dict[str, tuple[int, str | None, str, dict[str, Any]]],
    ids: dict[str, int],
    current: dict[int, str],
) -> _Plan:
    """Decide each row: subscribe, update, leave unchanged, or keep an ended subscription.

    `existing` holds subscribers found before this chunk (by email key), `ids` every row's
    subscriber id, `current` this list's subscription status per subscriber id. Pure.
    """
    plan = _Plan()
    for row in rows:
        subscriber_id = ids[row.key]
        state = current.get(subscriber_id)
        if state is not None and state not in _LIVE:
            plan.kept.append((row, state))
            continue
        change = _change(existing.get(row.key), row)
        if change is not None:
            plan.changes.append({"id": subscriber_id, **change})
        if state is None:
            plan.subscribe.append(subscriber_id)
        elif change is None:
            plan.unchanged += 1
        else:
            plan.updated += 1
    return plan


def _among(session: Session, column: Any, values: list[Any]) -> Any:
    """`column IN (values)` with ONE bound parameter, however many values.

    SQLAlchemy's expanding IN renders and binds a parameter per value, which costs more than
    the query for chunks of thousands; SQLite gets a JSON array read by json_each, PostgreSQL
    an array with `= ANY`.
    """
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    table = func.json_each(bindparam(None, orjson.dumps(values).decode(), type_=String))
    return column.in_(select(literal_column("value")).select_from(table))


def _write_chunk(
    session: Session,
    rows: list[_Row],
    *,
    list_id: int,
    status: str,
    source: str,
    detail: str,
    default_language: str,
    clock: Clock,
    summary: ImportSummary,
    report: _Report,
) -> None:
    now = clock.now()
    suppressed = set(
        session.scalars(
            select(Suppression.email_hash).where(
                _among(session, Suppression.email_hash, [r.hash for r in rows])
            )
        )
    )
    live: list[_Row] = []
    for row in rows:
        if row.hash in suppressed:
            summary.suppressed += 1
            report.add(row.line, row.email, "suppressed", "on the suppression list; not imported")
        else:
            live.append(row)
    if not live:
        return
    keys = [r.key for r in live]
    existing = {
        k: (sid, name, lang, attrs)
        for sid, k, name, lang, attrs in session.execute(
            select(
                Subscriber.id,
                Subscriber.email_key,
                Subscriber.name,
                Subscriber.language,
                Subscriber.attributes,
            ).where(_among(session, Subscriber.email_key, keys))
        )
    }
    new = [r for r in live if r.key not in existing]
    if new:
        _bulk_insert(
            session,
            Subscriber,
            [
                {
                    "email": r.email,
                    "email_key": r.key,
                    "email_hash": r.hash,
                    "name": r.name,
                    "language": r.language or default_language,
                    "attributes": r.attributes,
                    "created_at": now,
                    "updated_at": now,
                }
                for r in new
            ],
            ["email_key"],
        )
        ids = dict(
            session.execute(
                select(Subscriber.email_key, Subscriber.id).where(
                    _among(session, Subscriber.email_key, [r.key for r in new])
                )
            ).all()
        )
    else:
        ids = {}
    ids.update({k: v[0] for k, v in existing.items()})
    current = dict(
        session.execute(
            select(Subscription.subscriber_id, Subscription.status).where(
                Subscription.list_id == list_id,
                _among(session, Subscription.subscriber_id, [ids[k] for k in keys]),
            )
        ).all()
    )
    plan = plan_rows(live, existing, ids, current)
    summary.imported += len(plan.subscribe)
    summary.updated += plan.updated
    summary.unchanged += plan.unchanged
    summary.not_reactivated += len(plan.kept)
    for row, state in plan.kept:
        report.add(row.line, row.email, "not_reactivated", f"{state} on this list; kept")
    subscribe = plan.subscribe
    changes = [{**change, "updated_at": now} for change in plan.changes]
    if changes:
        session.execute(update(Subscriber), changes)
    if subscribe:
        confirmed = now if status == SubscriptionStatus.ACTIVE else None
        _bulk_insert(
            session,
            Subscription,
            [
                {
                    "subscriber_id": sid,
                    "list_id": list_id,
                    "status": status,
                    "source": "import",
                    "created_at": now,
                    "updated_at": now,
                    "confirmed_at": confirmed,
                }
                for sid in subscribe
            ],
            ["subscriber_id", "list_id"],
        )
        action = "subscribe_active" if status == SubscriptionStatus.ACTIVE else "subscribe"
        _bulk_insert(
            session,
            ConsentRecord,
            [
                {
                    "subscriber_id": sid,
                    "list_id": list_id,
                    "action": action,
                    "source": source,
                    "detail": detail,
                    "at": now,
                }
                for sid in subscribe
            ],
            None,
        )


def _change(
    before: tuple[int, str | None, str, dict[str, Any]] | None, row: _Row
) -> dict[str, Any] | None:
    """The subscriber fields this row changes (only what the file gives), or None."""
    if before is None:
        return None
    _, name, language, attributes = before
    new_name = row.name or name
    new_language = row.language or language
    new_attributes = {**(attributes or {}), **row.attributes}
    if (new_name, new_language, new_attributes) == (name, language, attributes or {}):
        return None
    return {"name": new_name, "language": new_language, "attributes": new_attributes}


def import_csv(
    sessions: sessionmaker[Session],
    clock: Clock,
    path: Path,
    *,
    list_slug: str = DEFAULT_LIST_SLUG,
    status: str = SubscriptionStatus.ACTIVE,
    source: str = "import",
    encoding: str | None = None,
    report_path: Path | None = None,
    default_language: str = "ja",
    chunk_size: int = CHUNK_SIZE,
) -> ImportSummary:
    """Import a CSV file of subscribers into a list; see the module docstring for the rules."""
    path = Path(path)
    if status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING):
        raise ValidationError(f"--status: expected active or pending, got {status!r}")
    if not path.is_file():
        raise ValidationError(f"{path}: no such file")
    chosen = encoding or detect_encoding(path)
    try:
        codecs.lookup(chosen)
    except LookupError:
        raise ValidationError(f"--encoding: unknown encoding {chosen!r}") from None
    with sessions() as session, session.begin():
        mailing_list = resolve_list(session, clock, list_slug)
        list_id = mailing_list.id
        hasher = EmailHasher.load(session)
    summary = ImportSummary(file=str(path), encoding=chosen, list_slug=list_slug)
    report_file = report_path.open("w", encoding="utf-8", newline="") if report_path else None
    summary.report = str(report_path) if report_path else None
    try:
        with path.open("rb") as raw:
            lines: Any
            if _whole_stream(chosen):
                lines = io.TextIOWrapper(raw, encoding=chosen, newline="")
                bad_lines: dict[int, str] = {}
            else:
                lines = _Lines(raw, chosen)
                bad_lines = lines.bad
            reader = csv.reader(lines)
            try:
                header = next(reader)
            except StopIteration:
                raise ValidationError(f"{path}: the file is empty") from None
            if bad_lines:
                raise ValidationError(
                    f"{path}: line 1: the header is not valid {chosen} text; "
                    "give the right --encoding (e.g. utf-8 or cp932)"
                )
            columns = map_header(header, str(path))
            report = _Report(summary, report_file)
            rows = _rows(
                reader,
                lambda: reader.line_num,
                columns,
                hasher,
                summary,
                report,
                bad_lines,
                status,
            )
            chunk: list[_Row] = []
            write = dict(
                list_id=list_id,
                status=status,
                source=source[:32],
                detail=f"file {path.name}",
                default_language=default_language,
                clock=clock,
                summary=summary,
                report=report,
            )
            for row in rows:
                chunk.append(row)
                if len(chunk) >= chunk_size:
                    _commit_chunk(sessions, chunk, write)
                    chunk = []
            if chunk:
                _commit_chunk(sessions, chunk, write)
    except UnicodeDecodeError as err:
        raise ValidationError(
            f"{path}: not valid {chosen} text (byte {err.start} of a read block); "
            "give the right --encoding (e.g. utf-8 or cp932)"
        ) from None
    except csv.Error as err:
        raise ValidationError(f"{path}: line {reader.line_num}: not valid CSV: {err}") from None
    finally:
        if report_file is not None:
            report_file.close()
    return summary


def _commit_chunk(
    sessions: sessionmaker[Session], chunk: list[_Row], write: dict[str, Any]
) -> None:
    with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "sqlite":
            # 256 MB of page cache for this connection: index pages stay in memory.
            session.connection().exec_driver_sql("PRAGMA cache_size=-262144")
        _write_chunk(session, chunk, **write)
