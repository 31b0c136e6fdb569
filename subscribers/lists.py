"""Mailing lists: the default daily list and any others an admin creates."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db.models import MailingList
from newsletter.errors import NotFoundError
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
