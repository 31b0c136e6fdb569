"""Soft bounces: a mailbox that keeps failing for a passing reason is treated as gone.

A full mailbox or a receiving server that refuses for a while is not the address's fault
once, so one soft bounce changes nothing. The same address failing on `limit` different days
within `WINDOW` is: it is suppressed as bounced, as Mailchimp and listmonk do after repeated
soft bounces. A delivery (or an open or click) proves the mailbox works and forgets its soft
bounces, so only failures that keep coming add up.

Both paths that learn about bounces use this module: the SendGrid webhook (a `bounce` of type
`blocked`) and bounce mail over SMTP (a DSN that `failed` with a 4.x.x status).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.db.models import SoftBounce

WINDOW = timedelta(days=30)
DEFAULT_LIMIT = 3  # NEWSLETTER_SOFT_BOUNCE_LIMIT; 0 never suppresses for soft bounces


def limit_reached(days: int, limit: int) -> bool:
    """The rule, alone: `days` distinct days with a soft bounce within the window."""
    return limit > 0 and days >= limit


def record_soft_bounces(
    session: Session, hashes: Iterable[str], *, now: datetime, source: str, limit: int
) -> list[str]:
    """Count today's soft bounce for each address (once a day); return those now over the
    limit. Set-based: one insert and one grouped count, whatever the number of addresses."""
    wanted = sorted(set(hashes))
    if not wanted:
        return []
    today = now.date()
    rows = [{"email_hash": h, "day": today, "source": source, "created_at": now} for h in wanted]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(SoftBounce).on_conflict_do_nothing(), rows)
    since: date = (now - WINDOW).date()
    counts = session.execute(
        select(SoftBounce.email_hash, func.count())
        .where(SoftBounce.email_hash.in_(wanted), SoftBounce.day > since)
        .group_by(SoftBounce.email_hash)
    )
    return sorted(h for h, days in counts if limit_reached(days, limit))


def clear_soft_bounces(session: Session, hashes: Iterable[str]) -> None:
    """A delivery to the address: its earlier soft bounces no longer count."""
    wanted = sorted(set(hashes))
    if wanted:
        session.execute(delete(SoftBounce).where(SoftBounce.email_hash.in_(wanted)))
