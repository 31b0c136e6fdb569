"""What `issue status` shows: ledger counts, per worker, and one recipient's outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.db.models import (
    Delivery,
    SendBatch,
    Subscriber,
    delivery_accepted_at,
    delivery_status,
)
from newsletter.delivery.issue_state import recipient_counts
from newsletter.delivery.ledger import get_issue_row
from newsletter.engagement.subject_tests import describe_test, find_test
from newsletter.errors import (
    EXIT_FAILED,
    EXIT_IN_DOUBT,
    EXIT_SENT_WITH_FAILURES,
    NotFoundError,
    SendIncomplete,
)
from newsletter.logs import mask_email
from newsletter.types import BatchStatus, DeliveryStatus, IssueStatus


@dataclass(frozen=True, slots=True)
class SendStatus:
    issue_id: int
    issue_status: str
    recipients: dict[str, int]  # DeliveryStatus -> count (every status present, 0 if none)
    batches: dict[str, int]  # BatchStatus -> count
    workers: dict[str, dict[str, int]]  # worker -> BatchStatus -> count
    in_doubt_batches: list[int] = field(default_factory=list)
    send_started_at: datetime | None = None
    sent_at: datetime | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    subject_test: dict[str, Any] | None = None  # the issue's subject-line test, if it has one

    @property
    def total(self) -> int:
        return sum(self.recipients.values())

    @property
    def done(self) -> int:
        return self.total - self.recipients[DeliveryStatus.QUEUED]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total"] = self.total
        return data


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    issue_id: int
    email: str  # masked
    status: str
    variant: str
    batch_id: int | None
    batch_status: str | None
    error: str | None
    accepted_at: datetime | None
    last_event: str | None


def send_status(session: Session, issue_id: int) -> SendStatus:
    issue = get_issue_row(session, issue_id)
    recipients = recipient_counts(session, issue_id)
    batches = {s.value: 0 for s in BatchStatus}
    workers: dict[str, dict[str, int]] = {}
    for worker, status, count in session.execute(
        select(SendBatch.worker, SendBatch.status, func.count())
        .where(SendBatch.issue_id == issue_id)
        .group_by(SendBatch.worker, SendBatch.status)
    ):
        batches[status] = batches.get(status, 0) + count
        if worker:
            workers.setdefault(worker, {})[status] = count
    in_doubt = list(
        session.scalars(
            select(SendBatch.id)
            .where(SendBatch.issue_id == issue_id, SendBatch.status == BatchStatus.IN_DOUBT)
            .order_by(SendBatch.id)
        )
    )
    return SendStatus(
        issue_id=issue_id,
        issue_status=issue.status,
        recipients=recipients,
        batches=batches,
        workers=workers,
        in_doubt_batches=in_doubt,
        send_started_at=issue.send_started_at,
        sent_at=issue.sent_at,
        approved_by=issue.approved_by,
        approved_at=issue.approved_at,
        subject_test=_subject_test(session, issue_id),
    )


def _subject_test(session: Session, issue_id: int) -> dict[str, Any] | None:
    test = find_test(session, issue_id)
    return None if test is None else describe_test(session, test)


def outcome_error(status: SendStatus) -> SendIncomplete | None:
    """The one-line error (and exit code) for a send that did not settle everyone, or None."""
    counts = status.recipients
    issue = status.issue_id
    if counts[DeliveryStatus.IN_DOUBT]:
        return SendIncomplete(
            f"issue {issue}: {counts[DeliveryStatus.IN_DOUBT]} recipients in batches "
            f"{_ids(status.in_doubt_batches)} are in doubt (posted, the answer lost, no provider "
            f"event to settle them); provider events will settle them, or run "
            f"`newsletter issue resolve {issue} --resend` or `--skip`",
            exit_code=EXIT_IN_DOUBT,
        )
    if status.issue_status == IssueStatus.FAILED:
        return SendIncomplete(
            f"issue {issue}: failed for every recipient ({counts[DeliveryStatus.FAILED]}); "
            f"fix the cause, then `newsletter issue retry {issue}`",
            exit_code=EXIT_FAILED,
        )
    if status.issue_status == IssueStatus.SENT_WITH_FAILURES:
        return SendIncomplete(
            f"issue {issue}: sent with failures ({counts[DeliveryStatus.FAILED]} failed); "
            f"`newsletter issue retry {issue} --dry-run` shows what a retry would send",
            exit_code=EXIT_SENT_WITH_FAILURES,
        )
    return None


def _ids(ids: list[int], shown: int = 10) -> str:
    text = ", ".join(str(i) for i in ids[:shown])
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def recipient_status(session: Session, issue_id: int, email: str) -> RecipientStatus:
    row = session.execute(
        select(Delivery, SendBatch.status, delivery_status(), delivery_accepted_at())
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(SendBatch, SendBatch.id == Delivery.batch_id)
        .where(Delivery.issue_id == issue_id, Subscriber.email_key == email.strip().lower())
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"{mask_email(email)} is not a recipient of issue {issue_id}")
    delivery, batch_status, status, accepted_at = row
    return RecipientStatus(
        issue_id=issue_id,
        email=mask_email(email.strip().lower()),
        status=status,
        variant=delivery.variant,
        batch_id=delivery.batch_id,
        batch_status=batch_status,
        error=delivery.error,
        accepted_at=accepted_at,
        last_event=delivery.last_event,
    )
