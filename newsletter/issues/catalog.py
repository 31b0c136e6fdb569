"""Which issues exist: a list's issues newest first, a page at a time (`issue list`, the API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from newsletter.db.models import Issue, IssueArticle, MailingList
from newsletter.errors import NotFoundError, ValidationError
from newsletter.types import IssueStatus


@dataclass(frozen=True, slots=True)
class IssueSummary:
    id: int
    list: str
    date: date
    status: str
    articles: int
    approved_by: str | None
    approved_at: datetime | None
    sent_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "list": self.list,
            "date": self.date.isoformat(),
            "status": self.status,
            "articles": self.articles,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


def list_issues(
    session: Session,
    *,
    list_slug: str | None = None,
    status: str | None = None,
    after: tuple[date, int] | None = None,
    limit: int = 50,
) -> list[IssueSummary]:
    """Newest first (date, then id); `after` is the last (date, id) of the previous page."""
    if status is not None and status not in {s.value for s in IssueStatus}:
        choices = ", ".join(s.value for s in IssueStatus)
        raise ValidationError(f"status: {status!r} is not one of {choices}")
    counts = (
        select(IssueArticle.issue_id, func.count().label("n"))
        .group_by(IssueArticle.issue_id)
        .subquery()
    )
    query = (
        select(
            Issue.id,
            MailingList.slug,
            Issue.issue_date,
            Issue.status,
            func.coalesce(counts.c.n, 0),
            Issue.approved_by,
            Issue.approved_at,
            Issue.sent_at,
        )
        .join(MailingList, MailingList.id == Issue.list_id)
        .outerjoin(counts, counts.c.issue_id == Issue.id)
        .order_by(Issue.issue_date.desc(), Issue.id.desc())
        .limit(limit)
    )
    if list_slug is not None:
        if session.scalar(select(MailingList.id).where(MailingList.slug == list_slug)) is None:
            raise NotFoundError(f"no list {list_slug!r}")
        query = query.where(MailingList.slug == list_slug)
    if status is not None:
        query = query.where(Issue.status == status)
    if after is not None:
        day, ident = after
        query = query.where(
            or_(Issue.issue_date < day, and_(Issue.issue_date == day, Issue.id < ident))
        )
    return [IssueSummary(*row) for row in session.execute(query)]
