"""The editor's decisions for one list and date (`issue_overrides`): pin, exclude, reorder.

One row per (list, date, article): `pin` (position = pin order), `exclude`, or `position`
(explicit order from `issue reorder`). Decisions are stored before the issue exists and apply
whenever it is (re)built; once the issue started sending they are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from newsletter.articles.selection import Overrides
from newsletter.clock import Clock
from newsletter.db.models import Issue, IssueOverride, MailingList
from newsletter.errors import StateError
from newsletter.types import FROZEN_ISSUE_STATUSES

PIN = "pin"
EXCLUDE = "exclude"
POSITION = "position"


def load_overrides(session: Session, list_id: int, issue_date: date) -> Overrides:
    rows = session.scalars(
        select(IssueOverride)
        .where(IssueOverride.list_id == list_id, IssueOverride.issue_date == issue_date)
        .order_by(IssueOverride.position, IssueOverride.id)
    ).all()
    return Overrides(
        pins=tuple(r.article_id for r in rows if r.action == PIN),
        excludes=frozenset(r.article_id for r in rows if r.action == EXCLUDE),
        order=tuple(r.article_id for r in rows if r.action == POSITION),
    )


def _ensure_editable(session: Session, mailing_list: MailingList, issue_date: date) -> None:
    issue = session.scalar(
        select(Issue).where(Issue.list_id == mailing_list.id, Issue.issue_date == issue_date)
    )
    if issue is not None and issue.status in FROZEN_ISSUE_STATUSES:
        raise StateError(
            f"issue {mailing_list.slug}:{issue_date.isoformat()} is {issue.status}: "
            "it is frozen and editor changes no longer apply"
        )


def _row(session: Session, list_id: int, issue_date: date, article_id: int) -> IssueOverride | None:
    return session.scalar(
        select(IssueOverride).where(
            IssueOverride.list_id == list_id,
            IssueOverride.issue_date == issue_date,
            IssueOverride.article_id == article_id,
        )
    )


def set_override(
    session: Session,
    clock: Clock,
    mailing_list: MailingList,
    issue_date: date,
    article_id: int,
    action: str,
) -> None:
    """Pin (appended after existing pins) or exclude an article, replacing any earlier decision."""
    if action not in (PIN, EXCLUDE):
        raise ValueError(f"unknown override action {action!r}")
    _ensure_editable(session, mailing_list, issue_date)
    row = _row(session, mailing_list.id, issue_date, article_id)
    if row is not None and row.action == action:
        return
    position = None
    if action == PIN:
        last = session.scalar(
            select(func.max(IssueOverride.position)).where(
                IssueOverride.list_id == mailing_list.id,
                IssueOverride.issue_date == issue_date,
                IssueOverride.action == PIN,
            )
        )
        position = (last or 0) + 1
    if row is None:
        row = IssueOverride(
            list_id=mailing_list.id,
            issue_date=issue_date,
            article_id=article_id,
            created_at=clock.now(),
        )
        session.add(row)
    row.action = action
    row.position = position
    session.flush()


def clear_override(
    session: Session, mailing_list: MailingList, issue_date: date, article_id: int
) -> bool:
    """Forget the editor's pin, exclusion or position for the article; False if there was none."""
    _ensure_editable(session, mailing_list, issue_date)
    result = session.execute(
        delete(IssueOverride).where(
            IssueOverride.list_id == mailing_list.id,
            IssueOverride.issue_date == issue_date,
            IssueOverride.article_id == article_id,
        )
    )
    return bool(getattr(result, "rowcount", 0))


def set_order(
    session: Session,
    clock: Clock,
    mailing_list: MailingList,
    issue_date: date,
    article_ids: Sequence[int],
) -> None:
    """Explicit order: the named articles come in this order (pins stay pins, reordered among
    themselves in the given order; others become `position` rows). Earlier positions are
    replaced; an excluded article named here is no longer excluded."""
    _ensure_editable(session, mailing_list, issue_date)
    session.execute(
        delete(IssueOverride).where(
            IssueOverride.list_id == mailing_list.id,
            IssueOverride.issue_date == issue_date,
            IssueOverride.action == POSITION,
        )
    )
    for n, article_id in enumerate(dict.fromkeys(article_ids), start=1):
        row = _row(session, mailing_list.id, issue_date, article_id)
        if row is None:
            row = IssueOverride(
                list_id=mailing_list.id,
                issue_date=issue_date,
                article_id=article_id,
                created_at=clock.now(),
                action=POSITION,
            )
            session.add(row)
        elif row.action == EXCLUDE:
            row.action = POSITION
        row.position = n
    session.flush()
