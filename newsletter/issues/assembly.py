"""Assemble the day's issue: selection from the database, the Issue row (dates: `schedule`).

One issue per list and date, guaranteed by the unique constraint: a concurrent second builder
loses the insert, rolls back its savepoint and returns the winner's issue. An issue may be
re-selected (`rebuild`) only while it is `built`; from the first send on it is frozen and its
articles are snapshotted (`freeze_issue`) so later re-imports never change what was sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.articles import queries
from newsletter.articles.schema import article_to_dict
from newsletter.articles.selection import Selection, select_articles
from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import Issue, IssueArticle, IssueLink, IssueVariant, MailingList
from newsletter.errors import NotFoundError, StateError, UsageError
from newsletter.issues.overrides import load_overrides

# `schedule_for` and `issue_date_for` live in newsletter.schedule; these names stay importable
# from here for newsletter/pipeline.py until it imports them from there.
from newsletter.schedule import Schedule as Schedule
from newsletter.schedule import issue_date_for as issue_date_for
from newsletter.schedule import schedule_for as schedule_for
from newsletter.schedule import window_for
from newsletter.types import IssueStatus
from newsletter.urls import DEFAULT_LIST_SLUG
from subscribers.lists import get_list, get_or_create_list


@dataclass(frozen=True)
class BuildResult:
    issue: Issue | None
    created: bool
    selection: Selection | None  # None when an existing issue was returned unchanged
    reason: str | None = None  # why no issue was built, or why the existing one was kept


def load_list(session: Session, settings: Settings, clock: Clock, slug: str) -> MailingList:
    """The list by slug; the default list is created on first use."""
    if slug != DEFAULT_LIST_SLUG:
        return get_list(session, slug)
    try:
        with session.begin_nested():  # two first-ever builders may race to create it
            return get_or_create_list(
                session,
                clock,
                slug,
                name=settings.newsletter_name,
                click_tracking=settings.click_tracking,
            )
    except IntegrityError:
        return get_list(session, slug)


def _find_issue(session: Session, list_id: int, issue_date: date) -> Issue | None:
    return session.scalar(
        select(Issue).where(Issue.list_id == list_id, Issue.issue_date == issue_date)
    )


def select_for(
    session: Session, settings: Settings, mailing_list: MailingList, issue_date: date
) -> Selection:
    """Run the selection for a list and date against the database (no writes)."""
    schedule = schedule_for(settings, mailing_list)
    previous = queries.previous_issue(session, mailing_list.id, issue_date)
    previous_cutoff = previous.cutoff_at if previous is not None else None
    start, cutoff = window_for(issue_date, schedule.tz, schedule.send_time, previous_cutoff)
    overrides = load_overrides(session, mailing_list.id, issue_date)
    candidates = queries.window_candidates(session, start, cutoff, overrides.article_ids)
    sent = queries.sent_before(
        session, mailing_list.id, issue_date, [c.article_id for c in candidates]
    )
    return select_articles(
        candidates,
        issue_date=issue_date,
        tz=schedule.tz,
        send_time=schedule.send_time,
        previous_cutoff=previous_cutoff,
        already_sent_ids=sent,
        overrides=overrides,
        max_articles=schedule.max_articles,
        min_articles=schedule.min_articles,
    )


def build_issue(
    session: Session,
    settings: Settings,
    clock: Clock,
    *,
    list_slug: str = DEFAULT_LIST_SLUG,
    issue_date: date | None = None,
    rebuild: bool = False,
) -> BuildResult:
    """Create the issue for a list and date once; with `rebuild`, re-select a `built` issue.

    Flushes but does not commit: the caller owns the transaction.
    """
    mailing_list = load_list(session, settings, clock, list_slug)
    if issue_date is None:
        issue_date = issue_date_for(settings, mailing_list, clock.now())
    label = f"{mailing_list.slug}:{issue_date.isoformat()}"
    existing = _find_issue(session, mailing_list.id, issue_date)
    if existing is not None and not rebuild:
        return BuildResult(existing, False, None, f"issue {label} already built")
    if existing is not None and existing.status != IssueStatus.BUILT:
        raise StateError(
            f"issue {label} is {existing.status}: it is frozen once sending starts, "
            "so it cannot be rebuilt"
        )

    selection = select_for(session, settings, mailing_list, issue_date)
    if not selection.buildable:
        if existing is not None:
            return BuildResult(
                existing, False, selection, f"{selection.reason}; the issue was left as it was"
            )
        return BuildResult(None, False, selection, selection.reason)

    now = clock.now()
    if existing is not None:
        _fill(session, existing, selection, now, replace=True)
        return BuildResult(existing, False, selection)

    issue = Issue(
        list_id=mailing_list.id,
        issue_date=issue_date,
        status=IssueStatus.BUILT.value,
        window_start=selection.window_start,
        cutoff_at=selection.cutoff_at,
        created_at=now,
        built_at=now,
    )
    try:
        with session.begin_nested():
            session.add(issue)
            session.flush()
            _fill(session, issue, selection, now, replace=False)
    except IntegrityError:
        winner = _find_issue(session, mailing_list.id, issue_date)
        if winner is None:
            raise
        return BuildResult(winner, False, None, f"issue {label} was built concurrently")
    return BuildResult(issue, True, selection)


def _fill(
    session: Session, issue: Issue, selection: Selection, now: datetime, *, replace: bool
) -> None:
    if replace:
        session.execute(delete(IssueArticle).where(IssueArticle.issue_id == issue.id))
        # Rendered variants and their tracked links describe the old selection: drop them so
        # they are rendered again.
        session.execute(delete(IssueVariant).where(IssueVariant.issue_id == issue.id))
        session.execute(delete(IssueLink).where(IssueLink.issue_id == issue.id))
        session.expire(issue, ["articles"])
        issue.window_start = selection.window_start
        issue.cutoff_at = selection.cutoff_at
        issue.built_at = now
        # An approval was given to the articles being replaced.
        issue.approved_by = None
        issue.approved_at = None
    rows = [
        IssueArticle(
            issue_id=issue.id, article_id=d.article_id, position=d.position, pinned=d.pinned
        )
        for d in selection.chosen
    ]
    session.add_all(rows)
    session.flush()
    session.expire(issue, ["articles"])


def rebuild_if_built(
    session: Session, settings: Settings, clock: Clock, mailing_list: MailingList, issue_date: date
) -> BuildResult | None:
    """After an editor's change: re-select the issue if it exists and is still editable."""
    existing = _find_issue(session, mailing_list.id, issue_date)
    if existing is None or existing.status != IssueStatus.BUILT:
        return None
    return build_issue(
        session, settings, clock, list_slug=mailing_list.slug, issue_date=issue_date, rebuild=True
    )


def freeze_issue(session: Session, issue: Issue, clock: Clock) -> None:
    """Snapshot each article as it is now; articles already snapshotted keep theirs."""
    for item in issue.articles:
        if item.snapshot is None:
            item.snapshot = article_to_dict(item.article)
    session.flush()


_REF = re.compile(r"^(?:(?P<slug>[a-z0-9][a-z0-9_-]*):)?(?P<date>\d{4}-\d{2}-\d{2})$")


def get_issue(session: Session, ref: str) -> Issue:
    """An issue by id (`12`), date on the default list (`2026-06-13`) or `slug:2026-06-13`."""
    text = ref.strip()
    if text.isdigit():
        issue = session.get(Issue, int(text))
        if issue is None:
            raise NotFoundError(f"no issue with id {text}")
        return issue
    match = _REF.match(text)
    if match is None:
        raise UsageError(
            f"cannot read issue reference {ref!r}: expected an id, YYYY-MM-DD or list:YYYY-MM-DD"
        )
    try:
        issue_date = date.fromisoformat(match["date"])
    except ValueError:
        raise UsageError(f"cannot read issue reference {ref!r}: not a real date") from None
    slug = match["slug"] or DEFAULT_LIST_SLUG
    mailing_list = session.scalar(select(MailingList).where(MailingList.slug == slug))
    issue = None if mailing_list is None else _find_issue(session, mailing_list.id, issue_date)
    if issue is None:
        raise NotFoundError(f"no issue {slug}:{issue_date.isoformat()}")
    return issue
