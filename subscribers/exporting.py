"""Export subscriptions with status and consent, streamed, as CSV or JSON Lines.

CSV cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or CR) are
prefixed with a single quote (OWASP "CSV injection"): a name like `=HYPERLINK(...)` stays text.
The guard is reversible, so importing an export gives back what was exported: a cell that
already starts with quotes before such a character gets one more, and `restore` takes exactly
one off. The email column is never guarded: an address is an identity, and `=1+1@example.com`
with a quote in front would be another (valid) address.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.db.models import ConsentRecord, Subscriber, Subscription
from newsletter.errors import ValidationError
from subscribers.service import subscription_row, subscriptions_query

FIELDS = (
    "email",
    "name",
    "language",
    "list",
    "status",
    "source",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "consent_at",
    "consent_source",
    "consent_action",
    "attributes",
)
FORMATS = ("csv", "jsonl")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONSENT_ACTIONS = ("subscribe", "subscribe_active", "confirm")
_UNGUARDED = frozenset({"email"})


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet will show as text, never evaluate (undone by `restore`)."""
    return "'" + cell if cell.lstrip("'").startswith(_FORMULA_START) else cell


def restore(cell: str) -> str:
    """The cell `neutralise` was given: one guarding quote taken off, where it added one."""
    return (
        cell[1:] if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA_START) else cell
    )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def iter_export(session: Session, *, list_slug: str | None = None) -> Iterator[dict[str, Any]]:
    """One dict per subscription, with its latest consent (time, source), in pages of 1000."""
    latest = (
        select(
            ConsentRecord.subscriber_id.label("subscriber_id"),
            ConsentRecord.list_id.label("list_id"),
            func.max(ConsentRecord.id).label("record_id"),
        )
        .where(ConsentRecord.action.in_(_CONSENT_ACTIONS))
        .group_by(ConsentRecord.subscriber_id, ConsentRecord.list_id)
        .subquery()
    )
    query = (
        subscriptions_query(
            session,
            list_slug=list_slug,
            extra=(
                ConsentRecord.at,
                ConsentRecord.source,
                ConsentRecord.action,
                Subscriber.attributes,
            ),
        )
        .outerjoin(
            latest,
            (latest.c.subscriber_id == Subscription.subscriber_id)
            & (latest.c.list_id == Subscription.list_id),
        )
        .outerjoin(ConsentRecord, ConsentRecord.id == latest.c.record_id)
    )
    for row in session.execute(query):
        record = subscription_row(row)
        del record["id"]  # an export names people by address, not by internal id
        record.update(
            consent_at=_iso(row[10]),
            consent_source=row[11],
            consent_action=row[12],
            attributes=row[13] or {},
        )
        yield record


def write_export(rows: Iterator[dict[str, Any]], out: IO[str], *, fmt: str = "csv") -> int:
    """Write rows to a text stream; how many were written."""
    if fmt not in FORMATS:
        raise ValidationError(f"export format: expected csv or jsonl, got {fmt!r}")
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
        return count
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for row in rows:
        cells = []
        for field in FIELDS:
            value = row[field]
            if field == "attributes":
                value = json.dumps(value, ensure_ascii=False) if value else ""
            text = "" if value is None else str(value)
            cells.append(text if field in _UNGUARDED else neutralise(text))
        writer.writerow(cells)
        count += 1
    return count
