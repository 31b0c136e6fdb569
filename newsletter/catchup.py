"""The catch-up rule: given the time and today's issue (if any), what should the scheduler do?

The scheduler's memory is not trusted: after a restart, a crash or a suspended VM it asks this
function, with the status read from the `issues` table, whether today's issue is due and missing.
Pure: no clock, no database; the caller passes `now` and the status.

Times are wall-clock times in the list's zone, turned into instants by `newsletter.schedule`
(`local_instant`): a send time that does not exist on a DST spring-forward day (02:30 in
America/New_York) is read with the offset before the change, so it falls one hour later in
wall-clock time (03:30); an ambiguous one on a fall-back day is its first occurrence. The
deadline is exclusive: at the deadline itself the day is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from zoneinfo import ZoneInfo

from newsletter.errors import ConfigError
from newsletter.schedule import local_instant
from newsletter.types import FINISHED_ISSUE_STATUSES, IssueStatus


class CatchupAction(StrEnum):
    """What the scheduler does about today's issue (not the sending core's retry actions)."""

    WAIT = "wait"  # before today's send time: the cron trigger will run it
    RUN = "run"  # due and not sent yet (no issue, or one built ahead): build if needed and send
    RESUME = "resume"  # a send that was interrupted (`sending`) before the deadline: continue it
    SKIP = "skip"  # missed and past the deadline: record the day as skipped, never mail at night
    DONE = "done"  # nothing to do (sent, skipped, cancelled, paused, or a stalled late send)


@dataclass(frozen=True, slots=True)
class Decision:
    action: CatchupAction
    issue_date: date
    send_at: datetime  # UTC
    deadline_at: datetime  # UTC
    reason: str


def check_window(
    send_time: time, deadline: time, *, where: str = "NEWSLETTER_CATCHUP_DEADLINE"
) -> None:
    """The catch-up window is [send time, deadline) on the same local day."""
    if deadline <= send_time:
        raise ConfigError(
            f"{where}: the catch-up deadline ({deadline:%H:%M}) must be later the same day than "
            f"the send time ({send_time:%H:%M})"
        )


def decide_catchup(
    now: datetime,
    tz: ZoneInfo,
    send_time: time,
    deadline: time,
    existing_issue_status: str | None,
) -> Decision:
    """Decide for the issue of `now`'s local date; `existing_issue_status` None = no issue row."""
    if now.tzinfo is None:
        raise ValueError("decide_catchup() needs a timezone-aware `now`")
    check_window(send_time, deadline)
    today = now.astimezone(tz).date()
    send_at = local_instant(today, send_time, tz)
    deadline_at = local_instant(today, deadline, tz)
    status = existing_issue_status

    def made(action: CatchupAction, reason: str) -> Decision:
        return Decision(action, today, send_at, deadline_at, reason)

    if status in FINISHED_ISSUE_STATUSES or status == IssueStatus.SKIPPED:
        return made(CatchupAction.DONE, f"today's issue is already {status}")
    if status == IssueStatus.PAUSED:
        return made(CatchupAction.DONE, "today's send is paused by an operator (`issue resume`)")
    if now < send_at:
        return made(CatchupAction.WAIT, f"before the send time {send_time:%H:%M}")
    in_window = now < deadline_at
    if status == IssueStatus.SENDING:
        if in_window:
            return made(CatchupAction.RESUME, "today's send was interrupted: resuming it")
        return made(
            CatchupAction.DONE,
            f"today's send was interrupted and the deadline {deadline:%H:%M} has passed: "
            "left for an operator (`issue send` resumes it)",
        )
    if in_window:
        return made(CatchupAction.RUN, "due and not sent yet")
    return made(
        CatchupAction.SKIP,
        f"missed: not sent between {send_time:%H:%M} and the catch-up deadline "
        f"{deadline:%H:%M} (scheduler down, or no issue could be built)",
    )


# Old names, for newsletter/health.py (`Action`, `decide`) and newsletter/pipeline.py
# (`local_datetime`) until they import the new ones.
Action = CatchupAction
decide = decide_catchup
local_datetime = local_instant
