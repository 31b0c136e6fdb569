"""Batches whose fate is unknown, and how each is settled to exactly one delivery.

A batch is `in_doubt` when it was posted and the answer never came: the sender died between
posting and recording (`reap_expired`), or the provider's answer was lost after the request was
sent (a read timeout, a reset). Posting it again could send it twice; never posting it could
leave its recipients without the issue. The rule (`decide`):

1. **Taken.** SendGrid takes or refuses a mail-send request as a whole, and every request
   carries its batch id in `custom_args`. Any provider event for any recipient of the batch
   (processed, delivered, deferred, bounce, dropped, open, click...) proves it was taken: the
   batch's recipients are accepted. The webhook applies this as events arrive; the sender
   applies it to events that arrived before the batch turned in doubt.
2. **Not taken.** No event for any of its recipients, the grace window
   (`NEWSLETTER_RECONCILE_AFTER`) has passed since it was posted, and events for other batches
   of the same issue *have* arrived since it was posted (for the batches posted after it, or
   late ones for those before it, which covers the last batch of a send): the event stream
   worked and said nothing about this batch, so the provider never took it. It is queued again
   and sent by whatever is sending.
3. **Otherwise it waits**: inside the grace window, or (with no proof that events flow: no
   webhook configured, a provider without events, no events at all) it stays in doubt for the
   operator (`resolve_in_doubt`: resend or skip).

The one risk left: a provider that took a batch but whose events for it arrive later than the
grace window while events for other batches arrived in time. SendGrid reports `processed` within
seconds; the window is 15 minutes by default.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db.models import Delivery, Event, Issue, SendBatch
from newsletter.delivery.ledger import chunks, get_issue_row, move_batches
from newsletter.types import BatchStatus, DeliveryStatus, IssueStatus

_DELIVERIES = Delivery.__table__
IN_DOUBT_REASON = "the sender stopped after posting this batch; the provider may have accepted it"


class Verdict(StrEnum):
    TAKEN = "taken"  # accept its recipients
    NOT_TAKEN = "not_taken"  # queue it again
    WAIT = "wait"  # events may still come, or the grace window decides soon
    OPERATOR = "operator"  # no way to know: `issue resolve`


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """What the ledger knows about one in-doubt batch."""

    batch_id: int
    posted_at: datetime | None
    has_event: bool  # an event for the batch or for one of its recipients
    events_since_posted: bool  # events for other batches of the issue arrived after its post


def decide(facts: BatchFacts, *, now: datetime, grace_s: float, events_expected: bool) -> Verdict:
    """The reconciliation rule for one in-doubt batch. Pure."""
    if facts.has_event:
        return Verdict.TAKEN
    if not events_expected or facts.posted_at is None:
        return Verdict.OPERATOR
    if now < facts.posted_at + timedelta(seconds=grace_s):
        return Verdict.WAIT
    if facts.events_since_posted:
        return Verdict.NOT_TAKEN
    return Verdict.OPERATOR


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    accepted: int = 0  # recipients settled as accepted (their batch was taken)
    requeued: int = 0  # recipients queued again (their batch was never taken)
    waiting: int = 0  # in-doubt batches inside their grace window
    stuck: int = 0  # in-doubt batches only an operator can settle

    @property
    def changed(self) -> bool:
        return bool(self.accepted or self.requeued)


# --- turning in doubt ------------------------------------------------------------------------


def mark_in_doubt(session: Session, batch_id: int, reason: str, clock: Clock) -> None:
    """The call ended in a way that does not say whether the provider sent it. Caller's txn."""
    now = clock.now()
    move_batches(
        session,
        [batch_id],
        members_from=DeliveryStatus.QUEUED,
        members={"status": DeliveryStatus.IN_DOUBT, "error": reason[:500], "updated_at": now},
        batches_from=None,
        batches={
            "status": BatchStatus.IN_DOUBT,
            "lease_until": None,
            "error": reason[:500],
            "updated_at": now,
        },
    )


def reap_expired(session: Session, clock: Clock, issue_id: int | None = None) -> int:
    """Batches left in `sending` by a dead sender become `in_doubt` (with their recipients).

    Dead: its lease expired, or it ran on this host and its process is gone (a SIGKILLed
    `issue send` is noticed at once, not after its lease). It may have posted them, so they are
    never re-sent on a guess (see the module's rule). A dead local sender's merely claimed
    batches go back to the queue. Commits; returns how many batches turned in doubt.
    """
    now = clock.now()
    scope = [SendBatch.issue_id == issue_id] if issue_id is not None else []
    expired = select(SendBatch.id).where(
        SendBatch.status == BatchStatus.SENDING, SendBatch.lease_until < now, *scope
    )
    ids = list(session.scalars(expired))
    leased = session.execute(
        select(SendBatch.id, SendBatch.worker, SendBatch.status).where(
            SendBatch.status.in_((BatchStatus.SENDING, BatchStatus.CLAIMED)),
            SendBatch.lease_until >= now,
            SendBatch.worker.like(f"{socket.gethostname()}:%"),
            *scope,
        )
    ).all()
    gone = {w for _, w, _ in leased if worker_gone(w)}
    ids += [i for i, w, status in leased if w in gone and status == BatchStatus.SENDING]
    unclaim = [i for i, w, status in leased if w in gone and status == BatchStatus.CLAIMED]
    for chunk in chunks(unclaim):
        session.execute(
            update(SendBatch)
            .where(SendBatch.id.in_(chunk), SendBatch.status == BatchStatus.CLAIMED)
            .values(status=BatchStatus.QUEUED, worker=None, lease_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    move_batches(
        session,
        ids,
        members_from=DeliveryStatus.QUEUED,
        members={"status": DeliveryStatus.IN_DOUBT, "updated_at": now},
        batches_from=(BatchStatus.SENDING,),
        batches={
            "status": BatchStatus.IN_DOUBT,
            "lease_until": None,
            "error": IN_DOUBT_REASON,
            "updated_at": now,
        },
    )
    session.commit()
    return len(ids)


def worker_gone(worker: str | None, host: str | None = None) -> bool:
    """True for a worker id `host:pid[/n]` of this host whose process no longer exists.

    A pid reused by another process reads as alive: the batch then waits for its lease, which
    is the safe direction.
    """
    if not worker:
        return False
    name, _, rest = worker.partition(":")
    pid = rest.split("/", 1)[0]
    if name != (host or socket.gethostname()) or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


# --- settling --------------------------------------------------------------------------------


def _facts(
    session: Session, issue_id: int | None, batch_ids: Sequence[int] | None
) -> list[BatchFacts]:
    """The facts of every in-doubt batch of the issue (or of `batch_ids`): few rows, at most
    the batches that were in flight when something went wrong."""
    batch = SendBatch.__table__.c
    event_for_batch = exists().where(Event.batch_id == batch.id)
    event_for_member = exists().where(
        Delivery.batch_id == batch.id,
        Delivery.status == DeliveryStatus.IN_DOUBT,
        Delivery.last_event.is_not(None),
    )
    events_since = exists().where(
        Event.issue_id == batch.issue_id,
        Event.batch_id != batch.id,
        Event.received_at > batch.posted_at,
    )
    stmt = select(batch.id, batch.posted_at, event_for_batch | event_for_member, events_since)
    stmt = stmt.where(batch.status == BatchStatus.IN_DOUBT.value)
    if issue_id is not None:
        stmt = stmt.where(batch.issue_id == issue_id)
    if batch_ids is not None:
        rows: list[BatchFacts] = []
        for chunk in chunks(sorted(set(batch_ids))):
            rows.extend(
                BatchFacts(*row) for row in session.execute(stmt.where(batch.id.in_(chunk)))
            )
        return rows
    return [BatchFacts(*row) for row in session.execute(stmt)]


def reconcile(
    session: Session,
    clock: Clock,
    *,
    issue_id: int | None = None,
    batch_ids: Sequence[int] | None = None,
    grace_s: float = 900.0,
    events_expected: bool = True,
) -> ReconcileReport:
    """Apply the rule to the in-doubt batches of an issue (or of every issue, or `batch_ids`).

    Caller's transaction. Set-based writes per verdict; returns what changed and what waits.
    """
    now = clock.now()
    verdicts: dict[Verdict, list[int]] = {v: [] for v in Verdict}
    for facts in _facts(session, issue_id, batch_ids):
        verdicts[decide(facts, now=now, grace_s=grace_s, events_expected=events_expected)].append(
            facts.batch_id
        )
    accepted = _accept(session, verdicts[Verdict.TAKEN], now)
    requeued = _requeue(session, verdicts[Verdict.NOT_TAKEN], now, grace_s)
    return ReconcileReport(
        accepted=accepted,
        requeued=requeued,
        waiting=len(verdicts[Verdict.WAIT]),
        stuck=len(verdicts[Verdict.OPERATOR]),
    )


def settle_from_events(session: Session, batch_ids: Iterable[int | None], clock: Clock) -> int:
    """The webhook's half of the rule: batches an event names were taken. Caller's txn.

    Only acceptance happens here; re-queueing is the senders' job (they send what they queue).
    Returns how many recipients were settled.
    """
    wanted = [b for b in batch_ids if b is not None]
    if not wanted:
        return 0
    taken = [f.batch_id for f in _facts(session, None, wanted) if f.has_event]
    return _accept(session, taken, clock.now())


def _accept(session: Session, batch_ids: list[int], now: datetime) -> int:
    return move_batches(
        session,
        batch_ids,
        members_from=DeliveryStatus.IN_DOUBT,
        members={
            "status": DeliveryStatus.ACCEPTED,
            "accepted_at": now,
            "error": None,
            "updated_at": now,
        },
        batches_from=(BatchStatus.IN_DOUBT,),
        batches={
            "status": BatchStatus.ACCEPTED,
            "error": "was in doubt; a provider event showed it was taken",
            "updated_at": now,
        },
    )


def _requeue(session: Session, batch_ids: list[int], now: datetime, grace_s: float) -> int:
    reason = (
        f"was in doubt; no provider event within {grace_s:g} s while other batches reported: "
        "never taken, sent again"
    )
    return move_batches(
        session,
        batch_ids,
        members_from=DeliveryStatus.IN_DOUBT,
        members={"status": DeliveryStatus.QUEUED, "error": None, "updated_at": now},
        batches_from=(BatchStatus.IN_DOUBT,),
        batches={
            "status": BatchStatus.QUEUED,
            "worker": None,
            "lease_until": None,
            "not_before": None,
            "error": reason,
            "updated_at": now,
        },
    )


# --- the operator's tool ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolveReport:
    issue_id: int
    reconciled: int  # accepted thanks to provider events
    requeued: int  # recipients queued to be sent again
    skipped: int  # recipients the operator chose not to resend


def resolve_in_doubt(
    session: Session, issue_id: int, *, resend: bool, clock: Clock
) -> ResolveReport:
    """The operator's decision on in-doubt recipients, after settling from provider events.

    `resend`: queue them again (some may get the issue twice); otherwise mark them `skipped`
    (some may never get it). A finished issue with recipients to resend goes back to
    `sending`. Caller's transaction.
    """
    get_issue_row(session, issue_id, lock=True)
    reconciled = reconcile(session, clock, issue_id=issue_id, events_expected=False).accepted
    now = clock.now()
    batch_ids = list(
        session.scalars(
            select(SendBatch.id).where(
                SendBatch.issue_id == issue_id, SendBatch.status == BatchStatus.IN_DOUBT
            )
        )
    )
    count = move_batches(
        session,
        batch_ids,
        members_from=DeliveryStatus.IN_DOUBT,
        members={
            "status": DeliveryStatus.QUEUED if resend else DeliveryStatus.SKIPPED,
            "error": None if resend else "in doubt; the operator chose not to resend",
            "updated_at": now,
        },
        batches_from=None,
        batches={
            "status": BatchStatus.QUEUED if resend else BatchStatus.CANCELLED,
            "worker": None,
            "lease_until": None,
            "not_before": None,
            "error": "in doubt: resent by the operator" if resend else "in doubt: not resent",
            "updated_at": now,
        },
    )
    if resend and count:
        session.execute(
            update(Issue)
            .where(
                Issue.id == issue_id,
                Issue.status.in_(
                    (IssueStatus.SENT, IssueStatus.SENT_WITH_FAILURES, IssueStatus.FAILED)
                ),
            )
            .values(status=IssueStatus.SENDING, sent_at=None)
            .execution_options(synchronize_session=False)
        )
    return ResolveReport(issue_id, reconciled, count if resend else 0, 0 if resend else count)
