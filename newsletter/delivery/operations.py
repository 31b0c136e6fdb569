"""What an operator does to a send, with who did it: start, pause, resume, cancel, retry, resolve.

The desk, the HTTP API and the command line call these, never the state functions directly,
so every one of them is refused to a role without the SEND permission and lands in the audit
log in the same transaction as the change.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.accounts import audit
from newsletter.accounts.actors import Actor
from newsletter.accounts.roles import Permission
from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.delivery import in_doubt, issue_state
from newsletter.delivery.ledger import get_issue_row
from newsletter.delivery.planning import EnqueueReport, enqueue_issue


def start_send(
    session: Session,
    settings: Settings,
    clock: Clock,
    actor: Actor,
    issue_id: int,
    *,
    batch_size: int | None = None,
) -> EnqueueReport:
    """Freeze, render and plan the send (idempotent); a sender or worker then delivers it."""
    actor.require(Permission.SEND)
    issue = get_issue_row(session, issue_id, lock=True)
    before = issue.status
    report = enqueue_issue(session, issue, settings, clock, batch_size=batch_size)
    audit.record(
        session,
        clock,
        actor,
        "issue.send",
        issue=issue,
        before={"status": before},
        after={"status": issue.status, "recipients": report.total, "added": report.added},
    )
    return report


def pause(session: Session, clock: Clock, actor: Actor, issue_id: int) -> None:
    actor.require(Permission.SEND)
    issue = get_issue_row(session, issue_id)
    issue_state.pause_issue(session, issue_id, f"by {actor.name}")
    audit.record(
        session, clock, actor, "issue.pause", issue=issue, before={"status": "sending"},
        after={"status": "paused"},
    )  # fmt: skip


def resume(session: Session, clock: Clock, actor: Actor, issue_id: int) -> None:
    actor.require(Permission.SEND)
    issue = get_issue_row(session, issue_id)
    issue_state.resume_issue(session, issue_id)
    audit.record(
        session, clock, actor, "issue.resume", issue=issue, before={"status": "paused"},
        after={"status": "sending"},
    )  # fmt: skip


def cancel(session: Session, clock: Clock, actor: Actor, issue_id: int) -> int:
    """Cancel the rest of the send; returns how many queued recipients will never get it."""
    actor.require(Permission.SEND)
    issue = get_issue_row(session, issue_id)
    before = issue.status
    cancelled = issue_state.cancel_issue(session, issue_id, clock)
    audit.record(
        session, clock, actor, "issue.cancel", issue=issue, before={"status": before},
        after={"status": "cancelled", "recipients_cancelled": cancelled},
    )  # fmt: skip
    return cancelled


def retry(
    session: Session,
    clock: Clock,
    actor: Actor,
    issue_id: int,
    *,
    batch_size: int,
    dry_run: bool = False,
) -> issue_state.RetryReport:
    actor.require(Permission.SEND)
    issue = get_issue_row(session, issue_id)
    before = issue.status
    report = issue_state.retry_failed(
        session, issue_id, clock, batch_size=batch_size, dry_run=dry_run
    )
    if not dry_run:
        audit.record(
            session, clock, actor, "issue.retry", issue=issue, before={"status": before},
            after={"status": issue.status, "requeued": report.requeued},
        )  # fmt: skip
    return report


def resolve(
    session: Session, clock: Clock, actor: Actor, issue_id: int, *, resend: bool
) -> in_doubt.ResolveReport:
    """The operator's choice for recipients still in doubt: resend them, or mark them skipped."""
    actor.require(Permission.SEND)
    issue = get_issue_row(session, issue_id)
    report = in_doubt.resolve_in_doubt(session, issue_id, resend=resend, clock=clock)
    audit.record(
        session, clock, actor, "issue.resolve", issue=issue,
        after={
            "choice": "resend" if resend else "skip",
            "reconciled": report.reconciled,
            "requeued": report.requeued,
            "skipped": report.skipped,
        },
    )  # fmt: skip
    return report
