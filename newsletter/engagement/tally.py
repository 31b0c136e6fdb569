"""Engagement counts in one shape, whether they come from raw events or from what retention kept.

A tally maps a breakdown key `(metric, variant, article_id, kind, position)` to
`[events, people]`; `""` / `0` in a key mean "all". Statistics read tallies, and retention folds
exactly the tally of an issue's raw events into `engagement_totals`, so an issue's numbers are
the same before and after its raw events are purged: both sides are this one computation.

Metrics (the `engagement_totals.metric` vocabulary):
- `click`: reader clicks. Kept issue-wide, per variant, per article, per article and variant,
  and per article, variant and link kind.
- `machine_click`: scanners and prefetchers, issue-wide, `kind` = the reason (head, early,
  burst, agent; `unknown` when none was recorded).
- `open`: pixel fetches by readers, issue-wide.
- `proxy_open`: pixel fetches that say nothing about reading, issue-wide, `kind` = the source
  (apple_mpp, proxy, machine).

`people` is the number of distinct deliveries (one per subscriber and issue) at that key.
Everything is counted by the database (GROUP BY), never row by row in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from newsletter.db.models import ClickEvent, EngagementTotal, OpenEvent

Key = tuple[str, str, int, str, int]  # metric, variant, article_id, kind, position
Tally = dict[Key, list[int]]  # key -> [events, people]

CLICK = "click"
MACHINE_CLICK = "machine_click"
OPEN = "open"
PROXY_OPEN = "proxy_open"
READER_SOURCE = "reader"
AUTOMATED_SOURCES = ("apple_mpp", "proxy", "machine")
MACHINE_REASONS = ("head", "early", "burst", "agent", "unknown")

ALL = ""  # the variant / kind of an issue-wide row


def _add(tallies: dict[int, Tally], issue_id: int, key: Key, events: int, people: int) -> None:
    counts = tallies[issue_id].setdefault(key, [0, 0])
    counts[0] += int(events)
    counts[1] += int(people)


def _in(column: Any, ids: Sequence[int]) -> Any:
    return column == ids[0] if len(ids) == 1 else column.in_(ids)


def raw_tallies(
    session: Session,
    issue_ids: Sequence[int],
    *,
    before: Any = None,
    detail: bool = True,
) -> dict[int, Tally]:
    """The tally of each issue's raw click and open events (`before`: only events older).

    Without `detail` only the issue-wide and per-article click rows (what trends read).
    """
    tallies: dict[int, Tally] = defaultdict(dict)
    if not issue_ids:
        return tallies
    people = func.count(func.distinct(ClickEvent.delivery_id))
    events = func.count()

    def clicks(*columns: Any) -> Select[Any]:
        stmt = select(ClickEvent.issue_id, *columns, events, people).where(
            _in(ClickEvent.issue_id, issue_ids), ClickEvent.machine.is_(False)
        )
        if before is not None:
            stmt = stmt.where(ClickEvent.at < before)
        return stmt.group_by(ClickEvent.issue_id, *columns)

    for issue_id, n, p in session.execute(clicks()):
        _add(tallies, issue_id, (CLICK, ALL, 0, ALL, 0), n, p)
    article, position = ClickEvent.article_id, ClickEvent.position
    for issue_id, a, pos, n, p in session.execute(
        clicks(article, position).where(article.is_not(None))
    ):
        _add(tallies, issue_id, (CLICK, ALL, a, ALL, pos), n, p)
    if not detail:
        return tallies
    variant, kind = ClickEvent.variant, ClickEvent.kind
    for issue_id, v, n, p in session.execute(clicks(variant)):
        _add(tallies, issue_id, (CLICK, v, 0, ALL, 0), n, p)
    for issue_id, a, v, pos, n, p in session.execute(
        clicks(article, variant, position).where(article.is_not(None))
    ):
        _add(tallies, issue_id, (CLICK, v, a, ALL, pos), n, p)
    for issue_id, a, v, k, pos, n, p in session.execute(
        clicks(article, variant, kind, position).where(article.is_not(None))
    ):
        _add(tallies, issue_id, (CLICK, v, a, k, pos), n, p)

    machine = (
        select(ClickEvent.issue_id, ClickEvent.reason, events, people)
        .where(_in(ClickEvent.issue_id, issue_ids), ClickEvent.machine.is_(True))
        .group_by(ClickEvent.issue_id, ClickEvent.reason)
    )
    if before is not None:
        machine = machine.where(ClickEvent.at < before)
    for issue_id, reason, n, p in session.execute(machine):
        _add(tallies, issue_id, (MACHINE_CLICK, ALL, 0, reason or "unknown", 0), n, p)

    opens = (
        select(
            OpenEvent.issue_id,
            OpenEvent.source,
            func.count(),
            func.count(func.distinct(OpenEvent.delivery_id)),
        )
        .where(_in(OpenEvent.issue_id, issue_ids))
        .group_by(OpenEvent.issue_id, OpenEvent.source)
    )
    if before is not None:
        opens = opens.where(OpenEvent.at < before)
    for issue_id, source, n, p in session.execute(opens):
        if source == READER_SOURCE:
            _add(tallies, issue_id, (OPEN, ALL, 0, ALL, 0), n, p)
        else:
            _add(tallies, issue_id, (PROXY_OPEN, ALL, 0, source, 0), n, p)
    return tallies


def kept_tallies(session: Session, issue_ids: Sequence[int]) -> dict[int, Tally]:
    """What retention kept of each issue's purged events (`engagement_totals`)."""
    tallies: dict[int, Tally] = defaultdict(dict)
    if not issue_ids:
        return tallies
    t = EngagementTotal
    columns = (t.issue_id, t.metric, t.variant, t.article_id, t.kind, t.position)
    rows = session.execute(select(*columns, t.events, t.people).where(_in(t.issue_id, issue_ids)))
    for issue_id, metric, variant, article_id, kind, position, n, p in rows:
        _add(tallies, issue_id, (metric, variant, article_id, kind, position), n, p)
    return tallies


def combined_tallies(
    session: Session, issue_ids: Sequence[int], *, detail: bool = True
) -> dict[int, Tally]:
    """Raw events plus what retention kept: the numbers statistics show."""
    out = raw_tallies(session, issue_ids, detail=detail)
    for issue_id, tally in kept_tallies(session, issue_ids).items():
        for key, (n, p) in tally.items():
            _add(out, issue_id, key, n, p)
    return out


def value(tally: Tally, key: Key) -> tuple[int, int]:
    counts = tally.get(key)
    return (counts[0], counts[1]) if counts else (0, 0)


def summed(tally: Tally, keys: Iterable[Key]) -> tuple[int, int]:
    events = people = 0
    for key in keys:
        n, p = value(tally, key)
        events += n
        people += p
    return events, people
