"""Export subscriptions with status and consent, streamed, as CSV or JSON Lines.

CSV cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or CR) are
prefixed with a single quote (OWASP "CSV injection"): a name like `=HYPERLINK(...)` stays text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.db.models import ConsentRecord, MailingList, Subscriber, Subscription
from newsletter.errors import ValidationError
from subscribers.lists import get_list

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


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet will show as text, never evaluate."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


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
        select(
            Subscriber.email,
            Subscriber.name,
            Subscriber.language,
            MailingList.slug,
            Subscription.status,
            Subscription.source,
            Subscription.created_at,
            Subscription.confirmed_at,
            Subscription.unsubscribed_at,
            ConsentRecord.at,
            ConsentRecord.source,
            ConsentRecord.action,
            Subscriber.attributes,
        )
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .outerjoin(
            latest,
            (latest.c.subscriber_id == Subscription.subscriber_id)
            & (latest.c.list_id == Subscription.list_id),
        )
        .outerjoin(ConsentRecord, ConsentRecord.id == latest.c.record_id)
        .order_by(Subscriber.id, MailingList.slug)
        .execution_options(yield_per=1000)
    )
    if list_slug:
        query = query.where(Subscription.list_id == get_list(session, list_slug).id)
    for row in session.execute(query):
        yield {
            "email": row[0],
            "name": row[1],
            "language": row[2],
            "list": row[3],
            "status": row[4],
            "source": row[5],
            "created_at": _iso(row[6]),
            "confirmed_at": _iso(row[7]),
            "unsubscribed_at": _iso(row[8]),
            "consent_at": _iso(row[9]),
            "consent_source": row[10],
            "consent_action": row[11],
            "attributes": row[12] or {},
        }


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
            cells.append(neutralise("" if value is None else str(value)))
        writer.writerow(cells)
        count += 1
    return count
