"""Raw click and open events are kept NEWSLETTER_EVENTS_RETENTION_DAYS; then only counts remain.

The rule: an issue is folded once *all* of its raw events are older than the retention period
(its last click or open, not its send date). Its tally (`newsletter.engagement.tally`: the
same breakdowns statistics read, `people` counted before the rows go) is added to
`engagement_totals` and its raw events are deleted, in one transaction per issue. So:

- statistics of the issue are the same before and after (both read the same tally);
- a second run finds nothing left to fold and changes nothing;
- a crash leaves each issue either folded and purged, or untouched: never counted twice;
- two purges at once (the scheduler's daily job and `newsletter engagement purge`) take the
  issue's row lock first, and the second finds the events already gone.

A click on an old email after its issue was folded (tracked links keep working) is kept raw
until it too is past retention, then added to the totals; its reader may then be counted
twice in `people` for that issue, an over-count of at most the late clickers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, union_all, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import ClickEvent, EngagementTotal, Issue, OpenEvent
from newsletter.db.session import transaction
from newsletter.engagement.tally import raw_tallies

log = logging.getLogger(__name__)


@dataclass
class PurgeReport:
    cutoff: datetime
    dry_run: bool
    issues: list[int] = field(default_factory=list)  # folded (or, dry run, would be)
    clicks: int = 0  # raw click events removed (or that would be)
    opens: int = 0
    kept_issues: int = 0  # issues with old events but also recent ones: wait

    def to_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "issues": self.issues,
            "clicks": self.clicks,
            "opens": self.opens,
            "kept_issues": self.kept_issues,
        }


def retention_cutoff(settings: Settings, clock: Clock) -> datetime:
    return clock.now() - timedelta(days=settings.events_retention_days)


def issues_due(session: Session, cutoff: datetime) -> tuple[list[int], int]:
    """(issues whose every raw event is older than `cutoff`, issues with old and new events)."""
    events = union_all(
        select(ClickEvent.issue_id.label("issue_id"), ClickEvent.at.label("at")),
        select(OpenEvent.issue_id.label("issue_id"), OpenEvent.at.label("at")),
    ).subquery()
    last = func.max(events.c.at)
    rows = session.execute(
        select(events.c.issue_id, last < cutoff)
        .group_by(events.c.issue_id)
        .having(func.min(events.c.at) < cutoff)
        .order_by(events.c.issue_id)
    ).all()
    due = [issue_id for issue_id, all_old in rows if all_old]
    return due, len(rows) - len(due)


def _lock_issue(session: Session, issue_id: int) -> None:
    """Serialise folds of one issue: a row lock on PostgreSQL, the write lock on SQLite."""
    session.execute(update(Issue).where(Issue.id == issue_id).values(id=Issue.id))


def _count(session: Session, model: type[ClickEvent] | type[OpenEvent], issue_id: int,
           cutoff: datetime) -> int:  # fmt: skip
    return int(
        session.scalar(
            select(func.count()).where(model.issue_id == issue_id, model.at < cutoff)
        ) or 0
    )  # fmt: skip


def fold_issue(session: Session, issue_id: int, cutoff: datetime) -> tuple[int, int]:
    """Add the issue's raw events older than `cutoff` to its totals and delete them.

    The caller's transaction makes it all-or-nothing. Returns (clicks, opens) removed.
    """
    _lock_issue(session, issue_id)
    tally = raw_tallies(session, [issue_id], before=cutoff).get(issue_id, {})
    if not tally:
        return 0, 0
    existing = {
        (t.metric, t.variant, t.article_id, t.kind, t.position): t
        for t in session.scalars(
            select(EngagementTotal).where(EngagementTotal.issue_id == issue_id)
        )
    }
    for key, (events, people) in tally.items():
        row = existing.get(key)
        if row is None:
            metric, variant, article_id, kind, position = key
            session.add(
                EngagementTotal(
                    issue_id=issue_id, metric=metric, variant=variant, article_id=article_id,
                    kind=kind, position=position, events=events, people=people,
                )
            )  # fmt: skip
        else:
            row.events += events
            row.people += people
    clicks = _count(session, ClickEvent, issue_id, cutoff)
    opens = _count(session, OpenEvent, issue_id, cutoff)
    session.execute(
        delete(ClickEvent).where(ClickEvent.issue_id == issue_id, ClickEvent.at < cutoff)
    )
    session.execute(delete(OpenEvent).where(OpenEvent.issue_id == issue_id, OpenEvent.at < cutoff))
    return clicks, opens


def purge_events(
    sessions: sessionmaker[Session], settings: Settings, clock: Clock, *, dry_run: bool = False
) -> PurgeReport:
    """Fold and delete every issue's raw events past retention, one transaction per issue."""
    cutoff = retention_cutoff(settings, clock)
    report = PurgeReport(cutoff=cutoff, dry_run=dry_run)
    with sessions() as session:
        due, report.kept_issues = issues_due(session, cutoff)
    for issue_id in due:
        with transaction(sessions) as session:
            if dry_run:
                clicks = _count(session, ClickEvent, issue_id, cutoff)
                opens = _count(session, OpenEvent, issue_id, cutoff)
            else:
                clicks, opens = fold_issue(session, issue_id, cutoff)
        if clicks or opens:
            report.issues.append(issue_id)
            report.clicks += clicks
            report.opens += opens
    if report.issues and not dry_run:
        log.info(
            "engagement: folded %d issues past %d days (%d clicks, %d opens)",
            len(report.issues), settings.events_retention_days, report.clicks, report.opens,
        )  # fmt: skip
    return report
