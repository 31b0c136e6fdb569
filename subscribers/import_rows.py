"""The rows of an import, judged one by one: each valid, first-seen row comes out; every other
row is counted and reported with its line number and reason (the hot loop of a million-row
import). What happened is summed up in `ImportSummary`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import orjson

from newsletter.errors import ValidationError
from newsletter.types import SubscriptionStatus, control_character_problem
from subscribers.addresses import normalise_email
from subscribers.csv_source import (
    LANGUAGE_VALUES,
    Columns,
    parse_language,
)
from subscribers.exporting import neutralise, restore
from subscribers.hashing import EmailHasher

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
        """The counts and, for scripts, each problem row (line, outcome, reason; the first
        1,000, every one in `--report`)."""
        data = asdict(self)
        data["list"] = data.pop("list_slug")
        return data


@dataclass(slots=True)
class Row:
    line: int
    email: str
    key: str
    hash: str
    name: str | None
    language: str | None
    attributes: dict[str, Any]


class Report:
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


def valid_rows(
    reader: Iterator[list[str]],
    line_of: Any,
    columns: Columns,
    hasher: EmailHasher,
    summary: ImportSummary,
    report: Report,
    bad_lines: dict[int, str],
    status: str = SubscriptionStatus.ACTIVE,
) -> Iterator[Row]:
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
                    "language: expected ja, en, both or both-en (or 日本語, 英語, 両方, en+ja), "
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
        yield Row(start, email, key, hash_of(key), name or None, language, attributes)


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


def _exported_status(cells: list[str], columns: Columns, importing: str) -> str | None:
    """Why an exported row must not be subscribed (again, or as active), or None."""
    assert columns.status is not None
    status = cells[columns.status].strip()
    if status in _ENDED:
        return f"{status} in the exported file; not subscribed again"
    if status == SubscriptionStatus.PENDING and importing == SubscriptionStatus.ACTIVE:
        return "pending (never confirmed) in the exported file; import with --status pending"
    return None


def _exported_attributes(cells: list[str], columns: Columns) -> tuple[dict[str, Any], str | None]:
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
