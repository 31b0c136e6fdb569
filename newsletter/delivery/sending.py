"""`send_issue`: plan an issue (idempotent), send it from this host, settle what can be settled.

The loop itself is `sender.Sender`; planning is `planning.enqueue_issue`; helper processes are
`processes.HelperProcesses`. A newcomer reading how one batch is sent starts at
`Sender._process`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import Issue
from newsletter.db.session import planning_transaction, transaction
from newsletter.delivery import in_doubt, issue_state, ledger
from newsletter.delivery.planning import EnqueueReport, enqueue_issue, prepare_issue
from newsletter.delivery.processes import HelperProcesses
from newsletter.delivery.progress import (
    Progress,
    ProgressCallback,
    ProviderFactory,
    default_worker_id,
)
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sender import Sender
from newsletter.delivery.status import SendStatus, send_status
from newsletter.errors import (
    StateError,
)
from newsletter.providers.base import Provider
from newsletter.types import FINISHED_ISSUE_STATUSES, IssueStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SendReport:
    issue_id: int | None
    accepted: int
    failed: int
    skipped: int
    retried: int
    in_doubt: int
    batches: int
    requests: int
    seconds: float
    paused_reason: str | None
    status: SendStatus | None  # the ledger after the run (None for a worker over all issues)
    plan_seconds: float = 0.0  # of `seconds`: planning (freeze, render, the ledger's rows)
    loop_seconds: float = 0.0  # of `seconds`: the sending loop; the rest is before and after it


def send_issue(
    runtime_or_sessions: Any,  # a Runtime (its .sessions) or a sessionmaker
    settings: Settings,
    provider: Provider,
    issue_id: int,
    clock: Clock,
    *,
    worker_id: str | None = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    config: SendConfig | None = None,
    processes: int = 1,
    provider_factory: ProviderFactory | None = None,
) -> SendReport:
    """Plan (idempotent), run the loop to the end, settle what can be settled, report.

    A finished issue sends nothing; a paused one must be resumed first; on `stop`, batches in
    flight finish and are recorded. `processes` > 1 forks helpers after planning, each with its
    own connections and a provider from `provider_factory`, sharing the batches through the
    ledger's claims (on SQLite too); the report counts every process.
    """
    if processes < 1:
        raise ValueError(f"processes: expected at least 1, got {processes}")
    if processes > 1 and provider_factory is None:
        raise ValueError("processes > 1 needs a provider_factory (one provider per process)")
    sessions: sessionmaker[Session] = getattr(runtime_or_sessions, "sessions", runtime_or_sessions)
    cfg = (config or SendConfig.from_settings(settings)).for_provider(provider.max_batch_size)
    started = time.monotonic()
    planned = _plan(sessions, settings, issue_id, clock, cfg)
    plan_seconds = time.monotonic() - started
    if planned is None:
        with transaction(sessions) as session:
            status = send_status(session, issue_id)
        return SendReport(issue_id, 0, 0, 0, 0, 0, 0, 0, time.monotonic() - started, None, status)
    helpers = HelperProcesses(processes - 1)
    sender = Sender(
        sessions,
        settings,
        provider,
        clock,
        cfg,
        worker_id=worker_id or default_worker_id(),
        stop=stop or threading.Event(),
        progress=helpers.wrap(progress),
    )
    result, loop_seconds = _run(
        sessions, sender, helpers, issue_id, planned.total, progress, provider_factory, worker_id
    )
    status = _settle(sessions, issue_id, clock, cfg, sender.events_expected)
    return SendReport(
        issue_id=issue_id,
        accepted=result.accepted,
        failed=result.failed,
        skipped=result.skipped,
        retried=result.retried,
        in_doubt=status.recipients["in_doubt"],
        batches=result.batches,
        requests=result.requests,
        seconds=time.monotonic() - started,
        paused_reason=sender.paused_reason or helpers.paused_reason,
        status=status,
        plan_seconds=plan_seconds,
        loop_seconds=loop_seconds,
    )


def _run(
    sessions: sessionmaker[Session],
    sender: Sender,
    helpers: HelperProcesses,
    issue_id: int,
    total: int,
    progress: ProgressCallback | None,
    provider_factory: ProviderFactory | None,
    worker_id: str | None,
) -> tuple[Progress, float]:
    """The loop in this process and its helpers' (named after `worker_id` when one was
    given, else after their own pid); the counts of every process and the loop's seconds.

    `total`: the issue's recipients as planning left them, so the progress does not count a
    million rows again before the first batch leaves."""
    with transaction(sessions) as session:
        done_before = issue_state.settled_count(session, issue_id)
    if helpers.count:
        assert provider_factory is not None
        helpers.start(
            sessions, sender.settings, provider_factory, issue_id, sender.clock,
            sender.config, worker_id,
        )  # fmt: skip
    sender.progress.total = total
    sender.progress.done_before = done_before
    loop_started = time.monotonic()
    try:
        sender.run(issue_id)
    finally:
        helpers.join(sender.stop)
    loop_seconds = time.monotonic() - loop_started
    result = helpers.add_to(sender.progress)
    if helpers.count and progress is not None:
        progress(result)  # the final counts of every process
    return result, loop_seconds


def _plan(
    sessions: sessionmaker[Session],
    settings: Settings,
    issue_id: int,
    clock: Clock,
    cfg: SendConfig,
) -> EnqueueReport | None:
    """Plan the issue (idempotent); None when its send is already over (nothing to do).

    Two transactions: the snapshot and the variants first, then the ledger's rows alone, in
    `planning_transaction` (on SQLite, foreign keys are not looked up for each of a million
    rows that the same transaction reads or writes itself). A crash between the two leaves a
    `built` issue with its variants stored, which the next call plans as usual.
    """
    with transaction(sessions) as session:
        issue = ledger.get_issue_row(session, issue_id, lock=True)
        if not _still_to_send(issue):
            return None
        prepare_issue(session, issue, settings, clock)
    with planning_transaction(sessions) as session:
        issue = ledger.get_issue_row(session, issue_id, lock=True)
        if not _still_to_send(issue):  # cancelled or sent by someone else in between
            return None
        return enqueue_issue(
            session, issue, settings, clock, batch_size=cfg.batch_size, prepared=True
        )


def _still_to_send(issue: Issue) -> bool:
    """False when the issue's send is over (failed recipients go again only through `issue
    retry`); StateError when it is paused."""
    if issue.status in FINISHED_ISSUE_STATUSES:
        return False
    if issue.status == IssueStatus.PAUSED:
        raise StateError(
            f"issue {issue.id} is paused ({issue.note or 'by an operator'}); "
            "run `newsletter issue resume` first"
        )
    return True


def _settle(
    sessions: sessionmaker[Session],
    issue_id: int,
    clock: Clock,
    cfg: SendConfig,
    events_expected: bool,
) -> SendStatus:
    """After the loop: dead senders' batches in doubt, the rule applied once more, the issue
    ended if everyone is settled; the ledger as the report shows it."""
    with transaction(sessions) as session:
        in_doubt.reap_expired(session, clock, issue_id)
        in_doubt.reconcile(
            session,
            clock,
            issue_id=issue_id,
            grace_s=cfg.reconcile_after_s,
            events_expected=events_expected,
        )
        session.commit()
        issue_state.finish_if_done(session, issue_id, clock)
        return send_status(session, issue_id)
