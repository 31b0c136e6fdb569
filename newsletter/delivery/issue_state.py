"""An issue's send state: pause, resume, cancel, the truthful end of a send, and retry.

An issue is `sent` only when every planned recipient was accepted or skipped by rule (no
longer subscribed, suppressed). When some failed it is `sent_with_failures`; when nobody was
accepted and some failed, `failed` (a refused From or API key fails every batch). While any
recipient is in doubt the send is not over: the issue stays `sending` until reconciliation
or the operator settles them. An issue whose subject-line test is still sampling or waiting
stays `sending` too: the rest of its audience is planned when the test decides
(`newsletter.delivery.subject_tests`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db.models import Delivery, Issue, SendBatch
from newsletter.delivery.ledger import OPEN_BATCH, chunks, get_issue_row, move_batches, open_work
from newsletter.delivery.planning import group_into_batches
from newsletter.engagement import subject_tests
from newsletter.errors import StateError
from newsletter.types import BatchStatus, DeliveryStatus, FailureKind, IssueStatus

_DELIVERIES = Delivery.__table__


# Says in SQL what `ix_deliveries_issue_marked` holds: SQLite uses a partial index only for a
# query that repeats its predicate.
MARKED = Delivery.status != DeliveryStatus.QUEUED.value


def recipient_counts(session: Session, issue_id: int) -> dict[str, int]:
    """Deliveries of the issue by status (every status present, 0 if none).

    Index-only reads, never a read of every row: the issue's rows (the (issue, subscriber)
    key), those whose own row carries an outcome (the marked-rows index), and how many
    members each accepted batch settled (`SendBatch.accepted`: their rows still say
    `queued`). Queued is the rest of the issue's rows less those."""
    counts = {s.value: 0 for s in DeliveryStatus}
    total = session.scalar(select(func.count()).where(Delivery.issue_id == issue_id)) or 0
    for status, count in session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.issue_id == issue_id, MARKED)
        .group_by(Delivery.status)
    ):
        counts[status] = count
    by_batch = settled_by_batches(session, issue_id)
    counts[DeliveryStatus.QUEUED.value] = total - sum(counts.values()) - by_batch
    counts[DeliveryStatus.ACCEPTED.value] += by_batch
    return counts


def settled_count(session: Session, issue_id: int) -> int:
    """Deliveries of the issue no longer queued (`recipient_counts` less its queued), without
    counting the issue's rows: what a send's progress starts from, read from the marked-rows
    index and the accepted batches only."""
    marked = session.scalar(select(func.count()).where(Delivery.issue_id == issue_id, MARKED))
    return (marked or 0) + settled_by_batches(session, issue_id)


def settled_by_batches(session: Session, issue_id: int | None = None) -> int:
    """Deliveries that accepted batches settled, of one issue or of all: accepted, though
    their own rows still say `queued` (`models.delivery_status`)."""
    stmt = select(func.coalesce(func.sum(SendBatch.accepted), 0)).where(
        SendBatch.status == BatchStatus.ACCEPTED.value
    )
    if issue_id is not None:
        stmt = stmt.where(SendBatch.issue_id == issue_id)
    return int(session.scalar(stmt) or 0)


def final_status(counts: dict[str, int]) -> IssueStatus | None:
    """The issue's status when its send is over, or None while someone is unsettled. Pure."""
    if counts.get(DeliveryStatus.QUEUED, 0) or counts.get(DeliveryStatus.IN_DOUBT, 0):
        return None
    failed = counts.get(DeliveryStatus.FAILED, 0)
    if not failed:
        return IssueStatus.SENT
    if not counts.get(DeliveryStatus.ACCEPTED, 0):
        return IssueStatus.FAILED
    return IssueStatus.SENT_WITH_FAILURES


def finish_if_done(session: Session, issue_id: int, clock: Clock) -> IssueStatus | None:
    """End a `sending` issue's send once every recipient is settled. Caller's transaction.

    Returns the status it ended with, or None when it is not over (or not `sending`).
    """
    if open_work(session, issue_id):
        return None
    # Every sender thread that runs out of work comes here: only the first finds the issue
    # still `sending`, so the others skip counting every recipient of it.
    if session.scalar(select(Issue.status).where(Issue.id == issue_id)) != IssueStatus.SENDING:
        return None
    if subject_tests.is_waiting(session, issue_id):
        return None  # an idle worker asks every poll: no count of the sample's recipients
    status = final_status(recipient_counts(session, issue_id))
    if status is None:
        return None
    if subject_tests.hold_send(session, issue_id, clock.now()):
        return None  # a subject-line test's sample: the issue waits for its decision
    done = session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status == IssueStatus.SENDING)
        .values(status=status, sent_at=clock.now())
        .execution_options(synchronize_session=False)
    ).rowcount
    if done:
        subject_tests.finish_test(session, issue_id)
    return status if done else None


def finish_done_issues(session: Session, clock: Clock) -> list[int]:
    """End every sending issue with no open batch left (workers over all issues). Caller's
    transaction."""
    open_batch = exists().where(SendBatch.issue_id == Issue.id, SendBatch.status.in_(OPEN_BATCH))
    ids = list(
        session.scalars(select(Issue.id).where(Issue.status == IssueStatus.SENDING, ~open_batch))
    )
    return [i for i in ids if finish_if_done(session, i, clock) is not None]


def set_issue_status(
    session: Session,
    issue_id: int,
    to: IssueStatus,
    allowed_from: Iterable[IssueStatus],
    *,
    note: str | None = None,
) -> None:
    """Move an issue between send states or raise StateError saying why not. Caller's txn."""
    issue = get_issue_row(session, issue_id, lock=True)
    allowed = tuple(allowed_from)
    if issue.status == to:
        return
    if issue.status not in allowed:
        raise StateError(
            f"issue {issue_id} is {issue.status}; it can become {to} only from "
            + " or ".join(allowed)
        )
    issue.status = to
    if note:
        issue.note = f"{issue.note}\n{note}" if issue.note else note


def pause_issue(session: Session, issue_id: int, reason: str | None = None) -> None:
    """Stop claiming new batches; batches in flight finish and are recorded. Caller's txn."""
    set_issue_status(
        session,
        issue_id,
        IssueStatus.PAUSED,
        (IssueStatus.SENDING,),
        note=f"paused: {reason}" if reason else None,
    )


def resume_issue(session: Session, issue_id: int) -> None:
    set_issue_status(session, issue_id, IssueStatus.SENDING, (IssueStatus.PAUSED,))


def cancel_issue(session: Session, issue_id: int, clock: Clock) -> int:
    """Cancel the rest of a send: queued recipients will never get it. Caller's txn.

    Batches in flight (sending) finish and are recorded; in-doubt ones stay for `resolve`.
    """
    set_issue_status(
        session, issue_id, IssueStatus.CANCELLED, (IssueStatus.SENDING, IssueStatus.PAUSED)
    )
    subject_tests.cancel_test(session, issue_id)
    now = clock.now()
    pending = select(SendBatch.id).where(
        SendBatch.issue_id == issue_id,
        SendBatch.status.in_((BatchStatus.QUEUED, BatchStatus.CLAIMED)),
    )
    return move_batches(
        session,
        list(session.scalars(pending)),
        members_from=DeliveryStatus.QUEUED,
        members={"status": DeliveryStatus.CANCELLED, "updated_at": now},
        batches_from=None,
        batches={
            "status": BatchStatus.CANCELLED,
            "worker": None,
            "lease_until": None,
            "updated_at": now,
        },
    )


# --- retry ----------------------------------------------------------------------------------

RETRYABLE_FROM = (
    IssueStatus.SENT_WITH_FAILURES,
    IssueStatus.FAILED,
    IssueStatus.SENDING,
    IssueStatus.PAUSED,
)


@dataclass(frozen=True, slots=True)
class RetryReport:
    issue_id: int
    requeued: int  # recipients queued again (0 with dry_run)
    retryable: int  # recipients whose failure was not about their address
    reasons: dict[str, int] = field(default_factory=dict)  # error -> recipients
    kept_failed: int = 0  # refused addresses: retrying cannot help
    batches: int = 0


def retry_failed(
    session: Session, issue_id: int, clock: Clock, *, batch_size: int, dry_run: bool = False
) -> RetryReport:
    """Queue again the recipients whose failure was the send's, not their address's.

    A refused From, a revoked API key, a provider that kept answering 5xx: after the fix, these
    recipients get the issue, each exactly once (their ledger rows are reused). Addresses the
    provider refused stay failed. A finished issue goes back to `sending`. Caller's txn.
    """
    issue = get_issue_row(session, issue_id, lock=True)
    if issue.status not in RETRYABLE_FROM:
        raise StateError(
            f"issue {issue_id} is {issue.status}: only an issue with failed recipients "
            "(sent_with_failures, failed) or a running send can be retried"
        )
    failed = (Delivery.issue_id == issue_id) & (Delivery.status == DeliveryStatus.FAILED) & MARKED
    reasons = {
        (error or "unknown")[:200]: count
        for error, count in session.execute(
            select(Delivery.error, func.count())
            .where(failed, Delivery.failure_kind == FailureKind.SEND.value)
            .group_by(Delivery.error)
            .order_by(func.count().desc())
        )
    }
    retryable = sum(reasons.values())
    kept = session.scalar(
        select(func.count()).where(
            failed,
            (Delivery.failure_kind.is_(None)) | (Delivery.failure_kind != FailureKind.SEND.value),
        )
    )
    if dry_run or not retryable:
        return RetryReport(issue_id, 0, retryable, reasons, kept or 0)
    now = clock.now()
    session.execute(
        update(_DELIVERIES)
        .where(
            _DELIVERIES.c.issue_id == issue_id,
            _DELIVERIES.c.status == DeliveryStatus.FAILED,
            MARKED,
            _DELIVERIES.c.failure_kind == FailureKind.SEND.value,
        )
        .values(
            status=DeliveryStatus.QUEUED,
            error=None,
            failure_kind=None,
            batch_id=None,
            updated_at=now,
        )
    )
    batches = group_into_batches(session, issue_id, batch_size, now)
    if issue.status != IssueStatus.PAUSED:
        issue.status = IssueStatus.SENDING
    issue.sent_at = None
    session.flush()
    return RetryReport(issue_id, retryable, retryable, reasons, kept or 0, batches)


def finish_settled(session: Session, batch_ids: Iterable[int | None], clock: Clock) -> None:
    """After the webhook settled in-doubt batches: end the sends they were the last of."""
    wanted = sorted({b for b in batch_ids if b is not None})
    issues: set[int] = set()
    for chunk in chunks(wanted):
        issues.update(
            session.scalars(select(SendBatch.issue_id).where(SendBatch.id.in_(chunk)).distinct())
        )
    for issue_id in sorted(issues):
        finish_if_done(session, issue_id, clock)
