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
    session: Session,
    clock: Clock,
    slug: str = DEFAULT_LIST_SLUG,
    name: str | None = None,
    *,
    click_tracking: bool = False,
) -> MailingList:
    """The list by slug, created on first use (`click_tracking`: NEWSLETTER_CLICK_TRACKING)."""
    found = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        found = MailingList(
            slug=slug, name=name or slug, click_tracking=click_tracking, created_at=clock.now()
        )
        session.add(found)
        session.flush()
    return found


_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d\Z")


def _check_settings(timezone: str | None, send_time: str | None) -> None:
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"timezone: unknown time zone {timezone!r}") from None
    if send_time is not None and not _HHMM.match(send_time):
        raise ValidationError(f"send time: expected HH:MM (24-hour), got {send_time!r}")


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
    click_tracking: bool = False,
    open_tracking: bool = False,
) -> MailingList:
    """A new list; ValidationError naming the field for a bad slug, time zone or send time.

    The callers pass NEWSLETTER_CLICK_TRACKING as `click_tracking` unless told otherwise."""
    if not _SLUG.match(slug):
        raise ValidationError(
            f"slug: expected lower-case letters, digits and hyphens (e.g. weekly-en), got {slug!r}"
        )
    if not name.strip():
        raise ValidationError("name: must not be empty")
    _check_settings(timezone, send_time)
    if session.scalar(select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise StateError(f"list {slug!r} already exists")
    mailing_list = MailingList(
        slug=slug,
        name=name.strip(),
        description=description,
        timezone=timezone,
        send_time=send_time,
        double_opt_in=double_opt_in,
        click_tracking=bool(click_tracking),
        open_tracking=bool(open_tracking),
        created_at=clock.now(),
    )
    session.add(mailing_list)
    session.flush()
    return mailing_list


_UNSET: Any = object()


def update_list(
    session: Session,
    *,
    slug: str,
    name: str | None = None,
    description: str | None = _UNSET,
    timezone: str | None = _UNSET,
    send_time: str | None = _UNSET,
    click_tracking: bool | None = None,
    open_tracking: bool | None = None,
) -> tuple[MailingList, dict[str, Any], dict[str, Any]]:
    """Change a list's name, description, time zone or send time (None: back to the default),
    or switch its click or open tracking (None: unchanged).

    Returns the list and its settings before and after, for the audit log. The next issue
    is scheduled by the new time; issues already built keep their window. Tracking applies
    from the next send: an issue already sending keeps the forms it was rendered in.
    """
    mailing_list = get_list(session, slug)
    given = {
        key: value
        for key, value in (
            ("description", description), ("timezone", timezone), ("send_time", send_time)
        )
        if value is not _UNSET
    }  # fmt: skip
    if name is not None:
        if not name.strip():
            raise ValidationError("name: must not be empty")
        given["name"] = name.strip()
    for key, flag in (("click_tracking", click_tracking), ("open_tracking", open_tracking)):
        if flag is not None:
            if not isinstance(flag, bool):
                raise ValidationError(f"{key.replace('_', ' ')}: expected on or off, got {flag!r}")
            given[key] = flag
    _check_settings(given.get("timezone"), given.get("send_time"))
    before = {key: getattr(mailing_list, key) for key in given}
    for key, value in given.items():
        setattr(mailing_list, key, value)
    session.flush()
    return mailing_list, before, given


def list_summaries(session: Session, slug: str | None = None) -> list[dict[str, Any]]:
    """Every list (or the one named `slug`) with its settings and subscription counts."""
    counts: dict[int, dict[str, int]] = {}
    count_query = select(Subscription.list_id, Subscription.status, func.count()).group_by(
        Subscription.list_id, Subscription.status
    )
    lists_query = select(MailingList).order_by(MailingList.slug)
    if slug is not None:
        list_id = get_list(session, slug).id
        count_query = count_query.where(Subscription.list_id == list_id)
        lists_query = lists_query.where(MailingList.id == list_id)
    for list_id, status, count in session.execute(count_query):
        counts.setdefault(list_id, {})[status] = count
    return [
        {
            "slug": m.slug,
            "name": m.name,
            "description": m.description,
            "timezone": m.timezone,
            "send_time": m.send_time,
            "double_opt_in": m.double_opt_in,
            "click_tracking": bool(m.click_tracking),
            "open_tracking": bool(m.open_tracking),
            "created_at": m.created_at.isoformat(),
            "subscriptions": counts.get(m.id, {}),
        }
        for m in session.scalars(lists_query)
    ]
