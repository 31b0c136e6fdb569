"""The day's choice of articles: a pure function of the candidates, the clock-free schedule
and the editor's overrides. No database here, so every rule is testable in microseconds.

The window (previous issue's cutoff, this cutoff] comes from `newsletter.schedule`, the one
module that computes issue dates, cutoffs and windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from newsletter.schedule import window_for
from newsletter.wording import plural


@dataclass(frozen=True, slots=True)
class Candidate:
    """What selection needs to know about one article."""

    article_id: int
    external_id: str
    published_at: datetime  # aware
    importance: int


@dataclass(frozen=True, slots=True)
class Overrides:
    """The editor's decisions for one list and date."""

    pins: tuple[int, ...] = ()  # article ids, in pin order
    excludes: frozenset[int] = frozenset()
    order: tuple[int, ...] = ()  # explicit order after the pins (`issue reorder`)

    @property
    def article_ids(self) -> frozenset[int]:
        return frozenset(self.pins) | self.excludes | frozenset(self.order)


@dataclass(frozen=True, slots=True)
class Decision:
    """One candidate's fate, with the reason in words an editor reads."""

    article_id: int
    external_id: str
    selected: bool
    position: int | None  # 1-based when selected
    pinned: bool
    reason: str


@dataclass(frozen=True)
class Selection:
    issue_date: date
    window_start: datetime  # exclusive, UTC
    cutoff_at: datetime  # inclusive, UTC
    chosen: tuple[Decision, ...]  # selected, in issue order
    decisions: tuple[Decision, ...]  # every candidate: chosen first, then the rest
    min_articles: int
    max_articles: int
    reason: str | None = None  # why no issue should be built (below the minimum)

    @property
    def buildable(self) -> bool:
        return self.reason is None

    @property
    def article_ids(self) -> list[int]:
        return [d.article_id for d in self.chosen]


def _rank_key(c: Candidate) -> tuple[int, float, int]:
    return (-c.importance, -c.published_at.timestamp(), c.article_id)


def select_articles(
    candidates: Sequence[Candidate],
    *,
    issue_date: date,
    tz: ZoneInfo,
    send_time: time,
    previous_cutoff: datetime | None,
    already_sent_ids: Mapping[int, date],
    overrides: Overrides,
    max_articles: int,
    min_articles: int,
) -> Selection:
    """Choose and order the issue's articles, explaining every candidate.

    Pins are always in, first, in pin order (even outside the window, beyond the cap, or sent
    before: the editor asked). Then the editor's explicit order, then the rest by importance
    (highest first), then recency, up to the cap. Excluded and already-sent articles are out.
    """
    start, cutoff = window_for(issue_date, tz, send_time, previous_cutoff)
    by_id = {c.article_id: c for c in candidates}
    chosen: list[tuple[Candidate, bool, str]] = []  # (candidate, pinned, why)
    chosen_ids: set[int] = set()
    left_out: dict[int, str] = {}  # article id -> why not

    for article_id in overrides.pins:
        c = by_id.get(article_id)
        if c is None or article_id in chosen_ids:
            continue
        note = "pinned by editor"
        if article_id in already_sent_ids:
            note += f" (already sent in issue {already_sent_ids[article_id].isoformat()})"
        chosen.append((c, True, note))
        chosen_ids.add(article_id)

    def eligible(c: Candidate) -> str | None:
        """None when the candidate may be selected, else why not."""
        if c.article_id in overrides.excludes:
            return "excluded by editor"
        if c.article_id in already_sent_ids:
            return f"already sent in issue {already_sent_ids[c.article_id].isoformat()}"
        if not start < c.published_at <= cutoff:
            local = c.published_at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
            return f"outside window (published {local})"
        return None

    room = max(0, max_articles - len(chosen))
    ordered = [by_id[i] for i in dict.fromkeys(overrides.order) if i in by_id]
    ranked = sorted(candidates, key=_rank_key)
    for c, why in [(c, "placed by editor") for c in ordered] + [
        (c, f"importance {c.importance}") for c in ranked
    ]:
        if c.article_id in chosen_ids or c.article_id in left_out:
            continue
        problem = eligible(c)
        if problem is not None:
            left_out[c.article_id] = problem
        elif room > 0:
            chosen.append((c, False, why))
            chosen_ids.add(c.article_id)
            room -= 1
        else:
            left_out[c.article_id] = f"below cap ({max_articles} articles)"

    chosen_decisions = tuple(
        Decision(c.article_id, c.external_id, True, n, pinned, f"selected #{n} ({why})")
        for n, (c, pinned, why) in enumerate(chosen, start=1)
    )
    rest = tuple(
        Decision(c.article_id, c.external_id, False, None, False, left_out[c.article_id])
        for c in ranked
        if c.article_id in left_out
    )
    reason = None
    if len(chosen_decisions) < min_articles:
        window = (
            f"{start.astimezone(tz):%Y-%m-%d %H:%M} – {cutoff.astimezone(tz):%Y-%m-%d %H:%M %Z}"
        )
        reason = (
            f"only {plural(len(chosen_decisions), 'article')} selectable in the window {window}; "
            f"the minimum is {min_articles}"
        )
    return Selection(
        issue_date=issue_date,
        window_start=start,
        cutoff_at=cutoff,
        chosen=chosen_decisions,
        decisions=chosen_decisions + rest,
        min_articles=min_articles,
        max_articles=max_articles,
        reason=reason,
    )
