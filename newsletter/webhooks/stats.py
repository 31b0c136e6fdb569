"""Per-issue statistics, read back from the stored provider events.

Counts are of distinct recipients (a subscriber, else an address hash), not of events: a
redelivered event, or a reader opening the email three times, counts once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import String, cast, distinct, func, select
from sqlalchemy.orm import Session

from newsletter.db.models import Event

# What the editor sees -> the provider event types it is made of.
METRICS: dict[str, tuple[str, ...]] = {
    "delivered": ("delivered",),
    "bounced": ("bounce", "dropped"),
    "opened": ("open",),
    "clicked": ("click",),
    "unsubscribed": ("unsubscribe", "group_unsubscribe"),
    "complained": ("spamreport",),
}
_METRIC_OF = {kind: metric for metric, kinds in METRICS.items() for kind in kinds}


@dataclass(frozen=True, slots=True)
class IssueStats:
    issue_id: int
    counts: dict[str, int]
    events_total: int
    # (bucket start, metric, events in that bucket), in time order
    timeline: list[tuple[datetime, str, int]] = field(default_factory=list)
    bucket: timedelta = timedelta(hours=1)


def issue_event_stats(
    session: Session, issue_id: int, *, bucket: timedelta = timedelta(hours=1)
) -> IssueStats:
    who = func.coalesce(cast(Event.subscriber_id, String), Event.email_hash, Event.event_id)
    rows = session.execute(
        select(Event.type, func.count(distinct(who)), func.count())
        .where(Event.issue_id == issue_id)
        .group_by(Event.type)
    ).all()
    counts = dict.fromkeys(METRICS, 0)
    total = 0
    for kind, recipients, events in rows:
        total += events
        metric = _METRIC_OF.get(kind)
        if metric is not None:
            counts[metric] += recipients
    times = session.execute(
        select(Event.occurred_at, Event.type).where(
            Event.issue_id == issue_id, Event.type.in_(list(_METRIC_OF))
        )
    ).all()
    pairs = ((row[0], row[1]) for row in times)
    return IssueStats(issue_id, counts, total, bucket_events(pairs, bucket), bucket)


def bucket_events(
    times: Iterable[tuple[datetime, str]], bucket: timedelta
) -> list[tuple[datetime, str, int]]:
    """Group (time, type) pairs into fixed buckets per metric; pure, for the chart."""
    seconds = bucket.total_seconds()
    tally: dict[tuple[datetime, str], int] = {}
    for at, kind in times:
        start = datetime.fromtimestamp((at.timestamp() // seconds) * seconds, at.tzinfo)
        key = (start, _METRIC_OF[kind])
        tally[key] = tally.get(key, 0) + 1
    return sorted((start, metric, n) for (start, metric), n in tally.items())
