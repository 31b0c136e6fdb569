"""The daily job for one list: build the issue, render it, then send it or queue it for workers.

`run_daily` is what the scheduler runs at each list's send time and what `newsletter run` runs
by hand. It is safe to run any number of times, from any number of processes at once:

- the issue is built exactly once per list and date (the `issues` unique constraint decides;
  a second builder gets the same row back);
- the send is claimed atomically (`newsletter.delivery.send_claim`: one winner, renewed while
  it sends, so a crashed sender's claim expires and the next run resumes from the ledger);
- the ledger (`newsletter.delivery`) guarantees that no recipient is mailed twice.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db.models import Issue, MailingList
from newsletter.db.session import transaction
from newsletter.delivery.planning import enqueue_issue
from newsletter.delivery.preflight import preflight
from newsletter.delivery.progress import default_worker_id
from newsletter.delivery.send_claim import ClaimKeeper, claim_send
from newsletter.delivery.sending import send_issue
from newsletter.delivery.subject_tests import SCHEDULER, decide_test, due_issue_ids
from newsletter.engagement.subject_tests import describe_test, find_test, status_line
from newsletter.errors import StateError
from newsletter.issues.assembly import build_issue
from newsletter.logs import log_event
from newsletter.providers.base import Provider
from newsletter.providers.factory import make_provider
from newsletter.runtime import Runtime
from newsletter.schedule import cutoff_for, issue_date_for, schedule_for
from newsletter.types import FINISHED_ISSUE_STATUSES, IssueStatus
from subscribers.lists import get_or_create_list

log = logging.getLogger(__name__)

_SEND_FIELDS = ("accepted", "failed", "skipped", "in_doubt", "batches", "seconds")


class Outcome:
    """What one run did (`RunReport.outcome`)."""

    SENT = "sent"  # this run sent the issue to the end: everyone accepted or skipped by rule
    SENT_WITH_FAILURES = "sent_with_failures"  # ... and some recipients failed
    FAILED = "failed"  # nobody was accepted (a refused key or From, an outage)
    IN_DOUBT = "in_doubt"  # some batches wait for provider events or the operator
    ENQUEUED = "enqueued"  # queued for external workers (NEWSLETTER_WORKERS=external)
    INTERRUPTED = "interrupted"  # stopped (SIGTERM) mid-send; the next run resumes
    PAUSED = "paused"  # the sending core paused it (circuit breaker) or an operator did
    NOT_BUILT = "not_built"  # no issue: e.g. too few articles (see `reason`)
    ALREADY_DONE = "already_done"  # the issue's send was already over, skipped or cancelled
    CLAIMED_ELSEWHERE = "claimed_elsewhere"  # another process is sending it right now
    SKIPPED = "skipped"  # recorded as skipped (missed the catch-up deadline)
    AWAITING_APPROVAL = "awaiting_approval"  # NEWSLETTER_REQUIRE_APPROVAL and not approved yet
    SUBJECT_TEST = "subject_test"  # a subject-line test's sample is out: the rest waits for it


@dataclass
class RunReport:
    list_slug: str
    outcome: str
    issue_date: date | None = None
    issue_id: int | None = None
    built: bool = False  # this run created the issue
    reused: bool = False  # the issue existed already (built by hand, another run, or earlier)
    status: str | None = None  # the issue's status when the run ended
    reason: str | None = None
    send: dict[str, Any] = field(default_factory=dict)  # the sending core's report
    enqueue: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["issue_date"] = self.issue_date.isoformat() if self.issue_date else None
        return data


def process_owner() -> str:
    """Who holds a claim: host and process id, as the sending core names its workers."""
    return default_worker_id()


# --- recording a missed day -----------------------------------------------------------------


def record_skip(runtime: Runtime, list_slug: str, issue_date: date, note: str) -> RunReport:
    """Record the day as `skipped` with `note` (a new row, or a `built` issue that never went).

    A skipped issue holds no selection window (the selection looks past it to the last issue
    that did), so the articles of the missed day go into the next issue instead of being lost.
    """
    settings, clock = runtime.settings, runtime.clock
    now = clock.now()
    report = RunReport(list_slug=list_slug, outcome=Outcome.SKIPPED, issue_date=issue_date)
    try:
        with transaction(runtime.sessions) as session:
            mailing_list = get_or_create_list(
                session,
                clock,
                list_slug,
                settings.newsletter_name,
                click_tracking=settings.click_tracking,
            )
            existing = _issue(session, mailing_list.id, issue_date)
            if existing is None:
                schedule = schedule_for(settings, mailing_list)
                edge = cutoff_for(issue_date, schedule.tz, schedule.send_time)
                issue = Issue(
                    list_id=mailing_list.id,
                    issue_date=issue_date,
                    status=IssueStatus.SKIPPED,
                    window_start=edge,
                    cutoff_at=edge,
                    created_at=now,
                    built_at=now,
                    note=note,
                )
                session.add(issue)
                session.flush()
                report.issue_id, report.status, report.built = issue.id, issue.status, True
            else:
                report.issue_id, report.reused = existing.id, True
                changed = session.execute(
                    update(Issue)
                    .where(Issue.id == existing.id, Issue.status == IssueStatus.BUILT)
                    .values(status=IssueStatus.SKIPPED, note=note)
                )
                if changed.rowcount != 1:  # type: ignore[attr-defined]
                    session.refresh(existing)
                    report.outcome, report.status = Outcome.ALREADY_DONE, existing.status
                    report.reason = f"the issue is already {existing.status}"
                    return report
                report.status = IssueStatus.SKIPPED
    except IntegrityError:  # a concurrent scheduler recorded or built it first: read its result
        with runtime.sessions() as session:
            mailing_list = get_or_create_list(
                session,
                clock,
                list_slug,
                settings.newsletter_name,
                click_tracking=settings.click_tracking,
            )
            existing = _issue(session, mailing_list.id, issue_date)
            assert existing is not None
            report.issue_id, report.reused, report.status = existing.id, True, existing.status
            if existing.status != IssueStatus.SKIPPED:  # built meanwhile: the next check decides
                report.outcome = Outcome.ALREADY_DONE
                report.reason = f"the issue was made {existing.status} concurrently"
                return report
    report.reason = note
    log_event(
        log,
        "pipeline.skipped",
        level=logging.WARNING,
        list=list_slug,
        issue_date=issue_date.isoformat(),
        issue_id=report.issue_id,
        reason=note,
    )
    return report


def _issue(session: Session, list_id: int, issue_date: date) -> Issue | None:
    return session.scalar(
        select(Issue).where(Issue.list_id == list_id, Issue.issue_date == issue_date)
    )


# --- the daily run --------------------------------------------------------------------------


def run_daily(
    runtime: Runtime,
    *,
    list_slug: str,
    issue_date: date | None = None,
    provider: Provider | None = None,
    stop: threading.Event | None = None,
    owner: str | None = None,
) -> RunReport:
    """Build (once), render, then send in-process or enqueue, per NEWSLETTER_WORKERS.

    `provider` defaults to `make_provider(settings)` (closed afterwards); `stop`, when set by a
    signal handler, makes the sending core finish the batch in flight and return.
    """
    settings, clock = runtime.settings, runtime.clock
    owner = owner or process_owner()
    with transaction(runtime.sessions) as session:
        if issue_date is None:  # decided here so that every report names its date
            mailing_list = session.scalar(select(MailingList).where(MailingList.slug == list_slug))
            issue_date = issue_date_for(settings, mailing_list, clock.now())
        result = build_issue(session, settings, clock, list_slug=list_slug, issue_date=issue_date)
        issue = result.issue
        report = RunReport(list_slug=list_slug, outcome=Outcome.NOT_BUILT, issue_date=issue_date)
        if issue is None:
            report.reason = result.reason or "no issue was built"
            log_event(
                log,
                "pipeline.not_built",
                list=list_slug,
                issue_date=issue_date.isoformat(),
                reason=report.reason,
            )
            return report
        report.issue_id, report.issue_date = issue.id, issue.issue_date
        report.built, report.reused = bool(result.created), not result.created
        report.status = issue.status
        approved = issue.approved_at is not None
    log_event(
        log,
        "pipeline.built" if report.built else "pipeline.reused",
        list=list_slug,
        issue_id=report.issue_id,
        issue_date=report.issue_date.isoformat(),
        status=report.status,
    )
    if _finished(report):
        return report
    if settings.require_approval and report.status == IssueStatus.BUILT and not approved:
        report.outcome = Outcome.AWAITING_APPROVAL
        report.reason = (
            "waiting for an editor's approval (NEWSLETTER_REQUIRE_APPROVAL): "
            f"`newsletter issue approve {report.issue_id}` or the desk"
        )
        log_event(
            log,
            "pipeline.awaiting_approval",
            level=logging.WARNING,
            list=list_slug,
            issue_id=report.issue_id,
            issue_date=report.issue_date.isoformat(),
        )
        return report
    _preflight(settings, provider)
    holder = claim_send(runtime.sessions, issue.id, owner, clock.now())
    if holder is not None:
        report.outcome = Outcome.CLAIMED_ELSEWHERE
        report.reason = f"{holder} is sending this issue"
        log_event(
            log, "pipeline.claimed_elsewhere", list=list_slug, issue_id=issue.id, holder=holder
        )
        return report
    with ClaimKeeper(runtime, issue.id, owner):
        with runtime.sessions() as session:  # re-read: another run may have finished meanwhile
            report.status = session.get_one(Issue, issue.id).status
        if _finished(report):
            return report
        decide_if_due(runtime, issue.id)
        if settings.workers == "external":
            _enqueue(runtime, issue.id, report)
            report.outcome = Outcome.ENQUEUED
        else:  # send_issue freezes, renders and plans too (idempotent), then sends
            _send_inline(runtime, issue.id, owner, provider, stop, report)
    log_event(
        log,
        f"pipeline.{report.outcome}",
        level=_OUTCOME_LEVEL.get(report.outcome, logging.INFO),
        list=list_slug,
        issue_id=report.issue_id,
        issue_date=report.issue_date.isoformat(),
        status=report.status,
        **{k: v for k, v in report.send.items() if k in _SEND_FIELDS},
    )
    return report


def send_started(
    runtime: Runtime,
    issue_id: int,
    *,
    provider: Provider | None = None,
    stop: threading.Event | None = None,
    owner: str | None = None,
) -> RunReport:
    """Deliver an issue an operator started (`operations.start_send` from the desk or the API)
    under the same send claim as the daily run: a scheduler that wakes meanwhile waits for it,
    and a send interrupted here is resumed by the next run like any other."""
    owner = owner or process_owner()
    with runtime.sessions() as session:
        issue = session.get_one(Issue, issue_id)
        report = RunReport(
            list_slug=issue.mailing_list.slug,
            outcome=Outcome.INTERRUPTED,
            issue_date=issue.issue_date,
            issue_id=issue_id,
            reused=True,
            status=issue.status,
        )
    if _finished(report):
        return report
    holder = claim_send(runtime.sessions, issue_id, owner, runtime.clock.now())
    if holder is not None:
        report.outcome, report.reason = Outcome.CLAIMED_ELSEWHERE, f"{holder} is sending this issue"
        return report
    with ClaimKeeper(runtime, issue_id, owner):
        _send_inline(runtime, issue_id, owner, provider, stop, report)
    log_event(
        log,
        f"pipeline.{report.outcome}",
        level=_OUTCOME_LEVEL.get(report.outcome, logging.INFO),
        list=report.list_slug,
        issue_id=issue_id,
        status=report.status,
        **{k: v for k, v in report.send.items() if k in _SEND_FIELDS},
    )
    return report


def send_in_background(runtime: Runtime, issue_id: int) -> threading.Thread | None:
    """`send_started` on a thread of this process (the web server's), when sends run inline;
    with NEWSLETTER_WORKERS=external the workers take the planned batches and this does
    nothing."""
    if runtime.settings.workers == "external":
        return None

    def run() -> None:
        try:
            send_started(runtime, issue_id)
        except Exception:  # the ledger keeps the state; the next run or `issue send` resumes
            log.exception("background send of issue %s stopped", issue_id)

    thread = threading.Thread(target=run, name=f"send-issue-{issue_id}", daemon=True)
    thread.start()
    return thread


_OUTCOME_LEVEL = {
    Outcome.SENT_WITH_FAILURES: logging.WARNING,
    Outcome.IN_DOUBT: logging.WARNING,
    Outcome.FAILED: logging.ERROR,
}


def _preflight(settings: Settings, provider: Provider | None) -> None:
    """The settings that would fail every batch, checked before anything is claimed or planned."""
    own = provider is None
    checked = provider if provider is not None else make_provider(settings)
    try:
        preflight(settings, checked)
    finally:
        if own:
            checked.close()


def _finished(report: RunReport) -> bool:
    """True (with the outcome set) when the issue needs no sending from this run."""
    if report.status in FINISHED_ISSUE_STATUSES or report.status == IssueStatus.SKIPPED:
        report.outcome = Outcome.ALREADY_DONE
        report.reason = f"the issue is already {report.status}"
        return True
    if report.status == IssueStatus.PAUSED:
        report.outcome = Outcome.PAUSED
        report.reason = "the send is paused: `newsletter issue resume` continues it"
        return True
    return False


def _enqueue(runtime: Runtime, issue_id: int, report: RunReport) -> None:
    """Freeze, render (once) and plan the ledger; workers take it from there."""
    with transaction(runtime.sessions) as session:
        issue = session.get_one(Issue, issue_id)
        report.enqueue = _as_dict(enqueue_issue(session, issue, runtime.settings, runtime.clock))
        report.status = issue.status


def _send_inline(
    runtime: Runtime,
    issue_id: int,
    owner: str,
    provider: Provider | None,
    stop: threading.Event | None,
    report: RunReport,
) -> None:
    own_provider = provider is None
    if provider is None:
        provider = make_provider(runtime.settings)
    active = provider
    try:
        sent = send_issue(
            runtime.sessions,
            runtime.settings,
            active,
            issue_id,
            runtime.clock,
            worker_id=owner,
            stop=stop or threading.Event(),
        )
    finally:
        if own_provider:
            active.close()
    report.send = _as_dict(sent)
    with runtime.sessions() as session:
        report.status = session.get_one(Issue, issue_id).status
    report.outcome = {
        IssueStatus.SENT: Outcome.SENT,
        IssueStatus.SENT_WITH_FAILURES: Outcome.SENT_WITH_FAILURES,
        IssueStatus.FAILED: Outcome.FAILED,
        IssueStatus.PAUSED: Outcome.PAUSED,
    }.get(IssueStatus(report.status), Outcome.INTERRUPTED)
    waiting = _test_waiting(runtime, issue_id)
    if report.outcome == Outcome.INTERRUPTED and waiting and not sent.in_doubt:
        report.outcome, report.reason = Outcome.SUBJECT_TEST, waiting
    if report.outcome == Outcome.INTERRUPTED and sent.in_doubt and not (stop and stop.is_set()):
        report.outcome = Outcome.IN_DOUBT
        report.reason = (
            f"{sent.in_doubt} recipients are in doubt; provider events settle them, or "
            f"`newsletter issue resolve {issue_id}`"
        )


# --- subject-line tests ---------------------------------------------------------------------


def decide_if_due(runtime: Runtime, issue_id: int) -> bool:
    """Decide the issue's subject-line test when its wait is over (the winner's recipients are
    planned); True when this call decided it. Another process deciding first is no error."""
    with transaction(runtime.sessions) as session:
        if issue_id not in due_issue_ids(session, runtime.clock.now()):
            return False
    try:
        with transaction(runtime.sessions) as session:
            report = decide_test(
                session, runtime.settings, runtime.clock, SCHEDULER, issue_id,
                batch_size=runtime.settings.send_batch_size,
            )  # fmt: skip
    except StateError:  # decided (or cancelled) meanwhile by someone else
        return False
    log_event(
        log, "pipeline.subject_test_decided", issue_id=issue_id,
        winner_arm=report.winner_arm, added=report.added,
    )  # fmt: skip
    return True


def decide_due_tests(
    runtime: Runtime, *, stop: threading.Event | None = None, owner: str | None = None
) -> list[RunReport]:
    """Every subject-line test whose wait is over: decide it, then send the winner to the rest
    (in-process under the send claim, or for workers with NEWSLETTER_WORKERS=external)."""
    with transaction(runtime.sessions) as session:
        due = due_issue_ids(session, runtime.clock.now())
    reports = []
    for issue_id in due:
        if stop is not None and stop.is_set():
            break
        if not decide_if_due(runtime, issue_id):
            continue
        if runtime.settings.workers == "external":
            continue
        reports.append(send_started(runtime, issue_id, stop=stop, owner=owner))
    return reports


def _test_waiting(runtime: Runtime, issue_id: int) -> str | None:
    """Why an unfinished send is not interrupted: its subject-line test is waiting."""
    with runtime.sessions() as session:
        test = find_test(session, issue_id)
        if test is None or test.status not in ("sampling", "waiting"):
            return None
        return status_line(describe_test(session, test))


def _as_dict(value: Any) -> dict[str, Any]:
    """A report from another part as plain JSON-able values, whatever its class."""
    if value is None:
        return {}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = dataclasses.asdict(value)
    elif isinstance(value, dict):
        data = dict(value)
    else:
        data = {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return {k: v for k, v in data.items() if isinstance(v, str | int | float | bool | None)}
