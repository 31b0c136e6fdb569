"""Mailing lists: the default daily list and any others an admin creates."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db.models import MailingList, Subscription
from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.urls import DEFAULT_LIST_SLUG


def get_list(session: Session, slug: str = DEFAULT_LIST_SLUG) -> MailingList:
    found = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        raise NotFoundError(f"no list {slug!r} (create it with `newsletter lists create`)")
    return found


def get_or_create_list(
    session: Session, clock: Clock, slug: str = DEFAULT_LIST_SLUG, name: str | None = None
) -> MailingList:
    found = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        found = MailingList(slug=slug, name=name or slug, created_at=clock.now())
        session.add(found)
        session.flush()
    return found


_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d\Z")


def create_list(
    session: Session,
    clock: Clock,
    *,
    slug: str,
    name: str,
    description: str | None = None,
    timezone: str | None = None,
    send_time: str | None = None,
    double_opt_in: bool = True,
) -> MailingList:
    """A new list; ValidationError naming the field for a bad slug, time zone or send time."""
    if not _SLUG.match(slug):
        raise ValidationError(
            f"slug: expected lower-case letters, digits and hyphens (e.g. weekly-en), got {slug!r}"
        )
    if not name.strip():
        raise ValidationError("name: must not be empty")
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"timezone: unknown time zone {timezone!r}") from None
    if send_time is not None and not _HHMM.match(send_time):
        raise ValidationError(f"send time: expected HH:MM (24-hour), got {send_time!r}")
    if session.scalar(select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise StateError(f"list {slug!r} already exists")
    mailing_list = MailingList(
        slug=slug,
        name=name.strip(),
        description=description,
        timezone=timezone,
        send_time=send_time,
        double_opt_in=double_opt_in,
        created_at=clock.now(),
    )
    session.add(mailing_list)
    session.flush()
    return mailing_list


def list_summaries(session: Session) -> list[dict[str, Any]]:
    """Every list with its settings and subscription counts per status."""
    counts: dict[int, dict[str, int]] = {}
    for list_id, status, count in session.execute(
        select(Subscription.list_id, Subscription.status, func.count()).group_by(
            Subscription.list_id, Subscription.status
        )
    ):
        counts.setdefault(list_id, {})[status] = count
    return [
        {
            "slug": m.slug,
            "name": m.name,
            "description": m.description,
            "timezone": m.timezone,
            "send_time": m.send_time,
            "double_opt_in": m.double_opt_in,
            "created_at": m.created_at.isoformat(),
            "subscriptions": counts.get(m.id, {}),
        }
        for m in session.scalars(select(MailingList).order_by(MailingList.slug))
    ]
