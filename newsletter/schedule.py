"""The calendar of a list: its schedule, the issue date at an instant, the cutoff and window.

Pure (no clock, no database): the callers pass `now` and the list. The issue assembly, the
article selection, the sample re-dating, the catch-up rule and the scheduler all compute
dates and instants here, so they cannot disagree about which issue is current or what its
window is.

Times are wall-clock times in the list's zone, converted to UTC at the end. A local time that
does not exist on a DST spring-forward day is read with the offset before the change (fold=0);
an ambiguous one on a fall-back day is its first occurrence.

Issue D's cutoff is D at the send time. Its window is (previous issue's cutoff, this cutoff]:
start exclusive, end inclusive, so consecutive issues tile time with no gap and no overlap.
With no previous issue the window is the 24 hours (local wall clock) before the cutoff; a
previous cutoff older than `MAX_LOOKBACK_DAYS` is clamped so a long pause does not flood the
first issue back with stale news.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.config import Settings
from newsletter.errors import ConfigError

MAX_LOOKBACK_DAYS = 7


class ListSettings(Protocol):
    """What a list row may override (`newsletter.db.models.MailingList` has these)."""

    slug: str
    timezone: str | None
    send_time: str | None
    max_articles: int | None
    min_articles: int | None


@dataclass(frozen=True)
class Schedule:
    """A list's effective schedule: its own values, else the settings'."""

    tz: ZoneInfo
    send_time: time
    max_articles: int
    min_articles: int


def schedule_for(settings: Settings, mailing_list: ListSettings | None) -> Schedule:
    """The list's own zone, send time and article limits, else the settings'."""
    tz = settings.timezone
    send_time = settings.send_time
    max_articles = settings.max_articles
    min_articles = settings.min_articles
    if mailing_list is not None:
        if mailing_list.timezone:
            try:
                tz = ZoneInfo(mailing_list.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(
                    f"list {mailing_list.slug!r}: unknown time zone {mailing_list.timezone!r}"
                ) from None
        if mailing_list.send_time:
            try:
                hours, minutes = mailing_list.send_time.split(":")
                send_time = time(int(hours), int(minutes))
            except ValueError:
                raise ConfigError(
                    f"list {mailing_list.slug!r}: send time {mailing_list.send_time!r} is not HH:MM"
                ) from None
        if mailing_list.max_articles is not None:
            max_articles = mailing_list.max_articles
        if mailing_list.min_articles is not None:
            min_articles = mailing_list.min_articles
    return Schedule(tz, send_time, max_articles, min(min_articles, max_articles))


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """`day` at wall-clock `at` in `tz`, as an aware UTC datetime (DST rules above)."""
    return datetime.combine(day, at).replace(tzinfo=tz, fold=0).astimezone(UTC)


def cutoff_for(issue_date: date, tz: ZoneInfo, send_time: time) -> datetime:
    """The issue's send time as a UTC instant: the end of its window."""
    return local_instant(issue_date, send_time, tz)


def window_for(
    issue_date: date, tz: ZoneInfo, send_time: time, previous_cutoff: datetime | None
) -> tuple[datetime, datetime]:
    """(start exclusive, cutoff inclusive), both UTC."""
    cutoff = cutoff_for(issue_date, tz, send_time)
    default_start = cutoff_for(issue_date - timedelta(days=1), tz, send_time)
    if previous_cutoff is None:
        return default_start, cutoff
    floor = cutoff_for(issue_date - timedelta(days=MAX_LOOKBACK_DAYS), tz, send_time)
    start = max(previous_cutoff.astimezone(UTC), floor)
    return min(start, cutoff), cutoff


def issue_date_for(settings: Settings, mailing_list: ListSettings | None, now: datetime) -> date:
    """The issue whose send is next or still current at `now` in the list's time zone.

    Today's issue stays current until the catch-up deadline (a late morning build still means
    this morning's issue), or until the send time if that is later; after it, tomorrow's.
    """
    schedule = schedule_for(settings, mailing_list)
    local = now.astimezone(schedule.tz)
    switch = max(schedule.send_time, settings.catchup_deadline)
    if local.time().replace(tzinfo=None) < switch:
        return local.date()
    return local.date() + timedelta(days=1)


def catchup_grace(send_time: time, deadline: time) -> timedelta:
    """How long after the send time a missed send may still go out (to the deadline)."""
    return datetime.combine(date.min, deadline) - datetime.combine(date.min, send_time)
