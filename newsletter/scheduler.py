"""`newsletter scheduler`: runs each list's daily job at its send time, and catches up.

APScheduler 3.x `BlockingScheduler`, with jobs kept in memory on purpose: what has been sent is
read from the `issues` table, never from the scheduler's own store, so a restart, a second
scheduler or a hand-run `newsletter run` can never make it send twice or forget a day.

Jobs:
- `daily:<slug>`: a `CronTrigger` at the list's send time in its time zone. APScheduler's
  default `misfire_grace_time` of 1 s would silently drop the 07:00 run after a one-second
  hiccup (a GC pause, a busy database, a suspended VM); we allow the whole catch-up window
  (send time to NEWSLETTER_CATCHUP_DEADLINE) and `coalesce=True` so a backlog runs once. The
  job asks `newsletter.catchup.decide_catchup` anyway, so a late run past the deadline records
  a skip.
- `catch-up`: at start and every `CATCHUP_INTERVAL`, the same decision for every list (this is
  how a scheduler started after the send time sends, or skips, the day), and it picks up lists
  created or rescheduled since.
- `heartbeat`: writes `meta.scheduler_heartbeat` for `newsletter health`.
- `engagement-retention`: daily at `RETENTION_AT` UTC, folds click and open events older than
  NEWSLETTER_EVENTS_RETENTION_DAYS into counts (`newsletter.engagement.retention`).
- `subject-tests`: every `SUBJECT_TEST_INTERVAL`, decides the subject-line tests whose wait is
  over and sends the winner to the rest (`pipeline.decide_due_tests`), whatever the time of
  day: the wait was chosen by whoever started the test.
- `once` (`--at`): an operator's one-off run of the pipeline at a given instant.

SIGTERM/SIGINT set a stop event the sending core watches: the batch in flight is finished and
recorded, the send claim is released, and the process exits 0; the next start resumes the send.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from newsletter.catchup import CatchupAction, Decision, check_window, decide_catchup
from newsletter.db.models import Issue, MailingList, Meta
from newsletter.db.session import transaction
from newsletter.engagement.retention import purge_events
from newsletter.errors import ConfigError, NewsletterError, NotFoundError
from newsletter.heartbeat import HEARTBEAT_INTERVAL, HEARTBEAT_KEY
from newsletter.logs import log_event
from newsletter.pipeline import (
    Outcome,
    RunReport,
    decide_due_tests,
    process_owner,
    record_skip,
    run_daily,
)
from newsletter.runtime import Runtime
from newsletter.schedule import catchup_grace, schedule_for
from newsletter.types import IssueStatus
from newsletter.urls import DEFAULT_LIST_SLUG
from subscribers.lists import get_or_create_list

log = logging.getLogger(__name__)

CATCHUP_INTERVAL = timedelta(minutes=5)
RETENTION_AT = (3, 17)  # hour, minute UTC: away from the morning sends
SUBJECT_TEST_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class ListPlan:
    """When one list is due: what the cron job and the catch-up decision are built from."""

    slug: str
    tz_name: str
    hour: int
    minute: int
    grace_seconds: int


@dataclass
class TickResult:
    slug: str
    decision: Decision
    run: RunReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "list": self.slug,
            "action": str(self.decision.action),
            "issue_date": self.decision.issue_date.isoformat(),
            "reason": self.decision.reason,
            "run": self.run.to_dict() if self.run else None,
        }


def list_plans(
    runtime: Runtime, on_error: Callable[[str, NewsletterError], None] | None = None
) -> list[ListPlan]:
    """Every list's schedule (the default list is created if there is none yet).

    A list with an impossible schedule raises, or with `on_error` is reported and left out,
    so one bad list never stops the others from being sent.
    """
    settings = runtime.settings
    with transaction(runtime.sessions) as session:
        lists = list(session.scalars(select(MailingList).order_by(MailingList.slug)))
        if not lists:
            lists = [
                get_or_create_list(
                    session,
                    runtime.clock,
                    DEFAULT_LIST_SLUG,
                    settings.newsletter_name,
                    click_tracking=settings.click_tracking,
                )
            ]
        plans = []
        for mailing_list in lists:
            try:
                schedule = schedule_for(settings, mailing_list)
                tz, send_time = schedule.tz, schedule.send_time
                check_window(
                    send_time,
                    settings.catchup_deadline,
                    where=f"list {mailing_list.slug!r} (send time) / NEWSLETTER_CATCHUP_DEADLINE",
                )
            except NewsletterError as err:
                if on_error is None:
                    raise
                on_error(mailing_list.slug, err)
                continue
            grace = catchup_grace(send_time, settings.catchup_deadline).seconds
            plans.append(
                ListPlan(mailing_list.slug, str(tz.key), send_time.hour, send_time.minute, grace)
            )
    return plans


def catch_up_list(
    runtime: Runtime,
    slug: str,
    *,
    stop: threading.Event | None = None,
    owner: str | None = None,
    last_failure: tuple[date, str] | None = None,
) -> TickResult:
    """Decide from the issues table what today needs for `slug`, and do it.

    `last_failure` (issue date, why an earlier attempt built nothing) goes into a skip's note.
    """
    settings, now = runtime.settings, runtime.clock.now()
    with runtime.sessions() as session:
        mailing_list = session.scalar(select(MailingList).where(MailingList.slug == slug))
        status = None
        if mailing_list is None:
            tz, send_time = settings.timezone, settings.send_time
        else:
            schedule = schedule_for(settings, mailing_list)
            tz, send_time = schedule.tz, schedule.send_time
            today = now.astimezone(tz).date()
            status = session.scalar(
                select(Issue.status).where(
                    Issue.list_id == mailing_list.id, Issue.issue_date == today
                )
            )
    decision = decide_catchup(now, tz, send_time, settings.catchup_deadline, status)
    result = TickResult(slug, decision)
    if decision.action in (CatchupAction.RUN, CatchupAction.RESUME):
        log_event(
            log, "scheduler.due", list=slug, action=str(decision.action), reason=decision.reason
        )
        result.run = run_daily(
            runtime, list_slug=slug, issue_date=decision.issue_date, stop=stop, owner=owner
        )
    elif decision.action is CatchupAction.SKIP:
        note = decision.reason
        if settings.require_approval and status == IssueStatus.BUILT:
            note = (
                f"not approved by the catch-up deadline {settings.catchup_deadline:%H:%M} "
                "(NEWSLETTER_REQUIRE_APPROVAL): the issue was built but no editor approved it"
            )
        if last_failure is not None and last_failure[0] == decision.issue_date:
            note += f"; last attempt: {last_failure[1]}"
        result.run = record_skip(runtime, slug, decision.issue_date, note)
    else:
        log.debug("%s: %s", slug, decision.reason)
    return result


def write_heartbeat(
    runtime: Runtime,
    owner: str,
    lists: Iterable[str],
    next_runs: dict[str, str] | None = None,
    *,
    stopped: bool = False,
) -> None:
    """Upsert `meta.scheduler_heartbeat` for `newsletter health`.

    The value is {"at", "owner", "lists", "next_runs": {slug: ISO date-time}, "stopped"};
    a clean shutdown writes a last beat with `stopped: true`.
    """
    value = json.dumps(
        {
            "at": runtime.clock.now().isoformat(),
            "owner": owner,
            "lists": sorted(lists),
            "next_runs": next_runs or {},
            "stopped": stopped,
        }
    )
    with transaction(runtime.sessions) as session:
        updated = session.execute(update(Meta).where(Meta.key == HEARTBEAT_KEY).values(value=value))
        if updated.rowcount == 1:  # type: ignore[attr-defined]
            return
    try:
        with transaction(runtime.sessions) as session:
            session.add(Meta(key=HEARTBEAT_KEY, value=value))
    except IntegrityError:  # another scheduler inserted it first: its beat counts too
        pass


@dataclass
class Scheduler:
    """The long-running process. `start()` blocks until SIGTERM/SIGINT (or `stop()`)."""

    runtime: Runtime
    run_at: datetime | None = None  # `--at`: a one-off run of every list at this instant
    only_list: str | None = None
    owner: str = field(default_factory=process_owner)

    def __post_init__(self) -> None:
        self.stopping = threading.Event()
        self.failures = 0  # jobs that raised (a `--at` run exits 1 when any did)
        self._stop_lock = threading.Lock()
        # APScheduler's shutdown holds its job-store lock while it waits for running jobs, so a
        # job that asks the scheduler anything (get_job, add_job) at that moment waits forever.
        # Jobs make such calls only while holding this lock and not stopping; the shutdown
        # begins only after taking it once (`_shutdown`).
        self._aps_lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._plans: dict[str, ListPlan] = {}
        self._pending: set[str] = set()
        self._not_built: dict[str, tuple[date, str]] = {}
        self._aps = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )

    # -- jobs --------------------------------------------------------------------------------

    def _lock(self, slug: str) -> threading.Lock:
        return self._locks.setdefault(slug, threading.Lock())

    def _guarded(self, slug: str, work: Callable[[], TickResult | RunReport]) -> None:
        """One job per list at a time in this process; errors are logged, never fatal."""
        if self.stopping.is_set():
            return
        lock = self._lock(slug)
        if not lock.acquire(blocking=False):
            log.debug("%s: a run is already in progress in this process", slug)
            return
        try:
            work()
        except Exception as err:
            with self._stop_lock:
                self.failures += 1
            log_event(
                log,
                "scheduler.job_failed",
                level=logging.ERROR,
                exc_info=not isinstance(err, NewsletterError),  # a bug: keep the traceback
                list=slug,
                error=f"{type(err).__name__}: {err}",
            )
        finally:
            lock.release()

    def tick(self, slug: str) -> None:
        def work() -> TickResult:
            result = catch_up_list(
                self.runtime,
                slug,
                stop=self.stopping,
                owner=self.owner,
                last_failure=self._not_built.get(slug),
            )
            if result.run is not None and result.run.outcome == Outcome.NOT_BUILT:
                self._not_built[slug] = (result.decision.issue_date, result.run.reason or "")
            return result

        self._guarded(slug, work)

    def run_once(self, slug: str, when: datetime) -> None:
        def work() -> RunReport:
            with self.runtime.sessions() as session:
                mailing_list = session.scalar(select(MailingList).where(MailingList.slug == slug))
                tz = (
                    schedule_for(self.runtime.settings, mailing_list).tz
                    if mailing_list
                    else (self.runtime.settings.timezone)
                )
            return run_daily(
                self.runtime,
                list_slug=slug,
                issue_date=when.astimezone(tz).date(),
                stop=self.stopping,
                owner=self.owner,
            )

        self._guarded(slug, work)
        self._pending.discard(slug)
        if not self._pending:
            self.stop()

    def decide_subject_tests(self) -> None:
        """Decide the subject-line tests that are due and send their winners (one at a time,
        under the same per-process lock as the daily runs, whose lists they belong to)."""

        def work() -> RunReport:
            reports = decide_due_tests(self.runtime, stop=self.stopping, owner=self.owner)
            return reports[-1] if reports else RunReport("", Outcome.ALREADY_DONE)

        self._guarded("subject-tests", work)

    def catch_up_all(self) -> None:
        """Refresh the cron jobs from the lists table, then decide for every list."""
        try:
            self.sync_jobs()
        except Exception as err:  # e.g. the database is briefly away: keep the known lists
            log_event(log, "scheduler.sync_failed", level=logging.ERROR, error=str(err))
        for slug in self._targets():
            self.tick(slug)

    def heartbeat(self) -> None:
        try:
            write_heartbeat(self.runtime, self.owner, self._targets(), self.next_runs())
        except Exception as err:
            log_event(log, "scheduler.heartbeat_failed", level=logging.WARNING, error=str(err))

    def retention(self) -> None:
        """The daily fold of old engagement events; a failure is logged and retried tomorrow."""
        if self.stopping.is_set():
            return
        try:
            report = purge_events(self.runtime.sessions, self.runtime.settings, self.runtime.clock)
            log_event(log, "scheduler.retention", issues=len(report.issues),
                      clicks=report.clicks, opens=report.opens)  # fmt: skip
        except Exception as err:
            log_event(log, "scheduler.retention_failed", level=logging.ERROR, error=str(err))

    def next_runs(self) -> dict[str, str]:
        """Each list's next scheduled send, in the list's own zone (for `health`)."""
        runs = {}
        with self._aps_lock:
            if self.stopping.is_set():
                return runs
            for slug in self._targets():
                job = self._aps.get_job(f"daily:{slug}")
                when = getattr(job, "next_run_time", None) if job is not None else None
                if when is not None:
                    runs[slug] = when.isoformat()
        return runs

    def _targets(self) -> list[str]:
        return [s for s in self._plans if self.only_list in (None, s)]

    def sync_jobs(self) -> None:
        plans = {plan.slug: plan for plan in list_plans(self.runtime, self._bad_list)}
        with self._aps_lock:
            if not (self.stopping.is_set() and self._aps.running):
                self._schedule(plans)

    def _schedule(self, plans: dict[str, ListPlan]) -> None:
        for slug, plan in plans.items():
            if self.only_list not in (None, slug) or self._plans.get(slug) == plan:
                continue
            self._aps.add_job(
                self.tick,
                CronTrigger(hour=plan.hour, minute=plan.minute, timezone=plan.tz_name),
                args=[slug],
                id=f"daily:{slug}",
                replace_existing=True,
                misfire_grace_time=plan.grace_seconds,
                coalesce=True,
            )
            log_event(
                log,
                "scheduler.scheduled",
                list=slug,
                send_time=f"{plan.hour:02d}:{plan.minute:02d}",
                timezone=plan.tz_name,
                misfire_grace_seconds=plan.grace_seconds,
            )
        for slug in set(self._plans) - set(plans):
            if self._aps.get_job(f"daily:{slug}"):
                self._aps.remove_job(f"daily:{slug}")
        self._plans = plans

    def _bad_list(self, slug: str, err: NewsletterError) -> None:
        log_event(
            log, "scheduler.list_not_scheduled", level=logging.ERROR, list=slug, error=str(err)
        )

    # -- life cycle --------------------------------------------------------------------------

    def start(self, *, install_signals: bool = True) -> None:
        """Block, running jobs, until stopped. Returns after the in-flight batch is recorded.

        With `run_at` the process runs the pipeline once at that instant and then exits.
        """
        now = datetime.now(UTC)
        if self.run_at is not None:
            self._plans = {p.slug: p for p in list_plans(self.runtime, self._bad_list)}
            self._check_targets()
            self._pending = set(self._targets())
            for slug in self._targets():
                self._aps.add_job(
                    self.run_once,
                    DateTrigger(run_date=self.run_at),
                    args=[slug, self.run_at],
                    id=f"once:{slug}",
                    misfire_grace_time=None,
                )
        else:
            self.sync_jobs()
            self._check_targets()
            self._aps.add_job(
                self.catch_up_all,
                IntervalTrigger(seconds=CATCHUP_INTERVAL.total_seconds()),
                id="catch-up",
                next_run_time=now,
                misfire_grace_time=None,
            )
            self._aps.add_job(
                self.retention,
                CronTrigger(hour=RETENTION_AT[0], minute=RETENTION_AT[1], timezone=UTC),
                id="engagement-retention",
                misfire_grace_time=None,
                coalesce=True,
            )
            self._aps.add_job(
                self.decide_subject_tests,
                IntervalTrigger(seconds=SUBJECT_TEST_INTERVAL.total_seconds()),
                id="subject-tests",
                next_run_time=now,
                misfire_grace_time=None,
            )
        self._aps.add_job(
            self.heartbeat,
            IntervalTrigger(seconds=HEARTBEAT_INTERVAL.total_seconds()),
            id="heartbeat",
            next_run_time=now,
        )
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        log_event(
            log,
            "scheduler.started",
            owner=self.owner,
            lists=",".join(self._targets()),
            run_at=self.run_at.isoformat() if self.run_at else None,
        )
        # A signal that arrived while the jobs were being set up stops it as soon as it runs.
        self._aps.add_listener(self._stop_if_asked, EVENT_SCHEDULER_STARTED)
        self._aps.start()
        try:
            write_heartbeat(self.runtime, self.owner, self._targets(), stopped=True)
        except Exception as err:  # the database may be the reason we stop
            log_event(log, "scheduler.heartbeat_failed", level=logging.WARNING, error=str(err))
        log_event(log, "scheduler.stopped", owner=self.owner)

    def _check_targets(self) -> None:
        if self.only_list is not None and self.only_list not in self._plans:
            raise NotFoundError(f"--list: no list {self.only_list!r} can be scheduled")
        if not self._targets():
            raise ConfigError("no list can be scheduled (see the errors logged above)")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log_event(log, "scheduler.stopping", signal=signal.Signals(signum).name)
        self.stop()

    def _stop_if_asked(self, _event: object) -> None:
        if self.stopping.is_set():
            threading.Thread(target=self._shutdown).start()

    def _shutdown(self) -> None:
        """Shut APScheduler down once no job is inside a scheduler call (see `_aps_lock`):
        a call in progress finishes first, later ones see `stopping` and skip."""
        with self._aps_lock:
            pass
        self._aps.shutdown(wait=True)

    def stop(self) -> None:
        """Ask running sends to finish their batch in flight, then stop the scheduler.

        Idempotent (a second SIGTERM changes nothing). The shutdown waits for running jobs, so
        it runs on its own thread: a job may call `stop()` too (`--at` does when it is done).
        """
        with self._stop_lock:
            first = not self.stopping.is_set()
            self.stopping.set()
            if first and self._aps.running:
                threading.Thread(target=self._shutdown).start()
