"""What the provider said about a posted batch, written to the ledger in the caller's
transaction: accepted and refused recipients, retries (the whole batch, or the deferred ones
moved to a batch of their own), halves of a split, failures with their kind, and SMTP messages
whose answer was lost parked in an in-doubt batch of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db.models import Delivery, SendBatch
from newsletter.db.types import UTCDateTime
from newsletter.delivery.ledger import ClaimedBatch, chunks
from newsletter.types import BatchStatus, DeliveryStatus, FailureKind

_DELIVERIES = Delivery.__table__
_BATCHES = SendBatch.__table__
_UNSETTLED = (DeliveryStatus.QUEUED, DeliveryStatus.IN_DOUBT)


_ACCEPT_IN_DOUBT_MEMBERS = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.batch_id == bindparam("p_batch_id"),
        _DELIVERIES.c.status == DeliveryStatus.IN_DOUBT.value,
    )
    .values(
        status=DeliveryStatus.ACCEPTED.value,
        accepted_at=bindparam("p_now", type_=UTCDateTime()),
        error=None,
        updated_at=bindparam("p_now", type_=UTCDateTime()),
    )
)
_RECORD_BATCH = (
    update(_BATCHES)
    .where(_BATCHES.c.id == bindparam("p_batch_id"))
    .values(
        status=bindparam("p_status"),
        lease_until=None,
        provider=bindparam("p_provider"),
        provider_message_id=bindparam("p_provider_message_id"),
        error=bindparam("p_error"),
        size=bindparam("p_size"),
        updated_at=bindparam("p_now", type_=UTCDateTime()),
    )
)
# The provider took the whole batch: the batch row alone says so. Its members stay `queued`
# and read as accepted through it (`models.delivery_status`); `accepted` counts them, for
# index-only counts (`issue_state.recipient_counts`).
_ACCEPT_WHOLE_BATCH = _RECORD_BATCH.values(
    accepted_at=bindparam("p_now", type_=UTCDateTime()),
    accepted=select(func.count())
    .where(
        _DELIVERIES.c.batch_id == bindparam("p_batch_id"),
        _DELIVERIES.c.status == DeliveryStatus.QUEUED.value,
    )
    .scalar_subquery(),
)


def record_accepted(
    session: Session,
    batch_id: int,
    attempted: Sequence[int],
    accepted: Iterable[int],
    failed: dict[int, str],
    *,
    provider: str,
    provider_message_id: str | None,
    clock: Clock,
) -> list[int]:
    """Record what the provider said, in the caller's transaction; returns the ids not settled.

    Only ids the provider listed as accepted become `accepted`; ids it listed as failed become
    `failed`; any other attempted id is returned so the caller can retry it. A batch accepted
    whole is one write to its own row (see `_ACCEPT_WHOLE_BATCH`).
    """
    now = clock.now()
    connection = session.connection()
    accepted_set = set(accepted).intersection(attempted)
    if accepted_set and len(accepted_set) == len(attempted):
        # Members turned in doubt meanwhile (the lease ran out before the answer came) are
        # settled by their rows; usually there are none, and the index says so at once.
        connection.execute(_ACCEPT_IN_DOUBT_MEMBERS, {"p_batch_id": batch_id, "p_now": now})
        connection.execute(
            _ACCEPT_WHOLE_BATCH,
            {
                "p_batch_id": batch_id,
                "p_status": BatchStatus.ACCEPTED.value,
                "p_provider": provider,
                "p_provider_message_id": provider_message_id,
                "p_error": None,
                "p_size": len(attempted),
                "p_now": now,
            },
        )
        return []
    # Some refused or deferred: the accepted and the refused get their own rows (the
    # deferred move to a batch of their own, in the caller's same transaction).
    unsettled = [i for i in attempted if i not in accepted_set and i not in failed]
    for chunk in chunks(sorted(accepted_set)):
        connection.execute(
            update(_DELIVERIES)
            .where(_DELIVERIES.c.id.in_(chunk))
            .values(status=DeliveryStatus.ACCEPTED, accepted_at=now, updated_at=now)
        )
    attempted_set = set(attempted)
    refused = {i: e for i, e in failed.items() if i in attempted_set}
    _fail_deliveries(session, refused, now, FailureKind.ADDRESS)
    connection.execute(
        _RECORD_BATCH,
        {
            "p_batch_id": batch_id,
            "p_status": (BatchStatus.ACCEPTED if accepted_set else BatchStatus.FAILED).value,
            "p_provider": provider,
            "p_provider_message_id": provider_message_id,
            "p_error": None if accepted_set else "every recipient was refused",
            "p_size": len(attempted) - len(unsettled),
            "p_now": now,
        },
    )
    return unsettled


def record_refused(session: Session, refused: dict[int, str], clock: Clock) -> None:
    """Recipients the provider refused by address (before the rest of the call failed)."""
    _fail_deliveries(session, refused, clock.now(), FailureKind.ADDRESS)


def _fail_deliveries(
    session: Session, errors: dict[int, str], now: datetime, kind: FailureKind
) -> None:
    if errors:
        session.execute(
            update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("d")),
            [
                {
                    "d": i,
                    "status": DeliveryStatus.FAILED.value,
                    "error": e[:500],
                    "failure_kind": kind.value,
                    "updated_at": now,
                }
                for i, e in errors.items()
            ],
        )


def requeue(
    session: Session,
    batch: ClaimedBatch,
    delivery_ids: Sequence[int],
    *,
    delay_s: float,
    reason: str,
    clock: Clock,
    move: bool,
) -> int:
    """Put recipients back in the queue, not before `delay_s` from now.

    `move=False` returns the whole batch to `queued` (a transient failure of the call);
    `move=True` moves `delivery_ids` into a new batch (recipients the provider deferred).
    Returns the id of the batch that holds them. Runs in the caller's transaction.
    """
    now = clock.now()
    not_before = now + timedelta(seconds=delay_s)
    if not move:
        session.execute(
            update(_DELIVERIES)
            .where(
                _DELIVERIES.c.batch_id == batch.id,
                _DELIVERIES.c.status == DeliveryStatus.IN_DOUBT,
            )
            .values(status=DeliveryStatus.QUEUED, updated_at=now)
        )
        _back_to_queue(session, batch.id, now, not_before=not_before, error=reason[:500])
        return batch.id
    return _new_batch(
        session,
        batch,
        delivery_ids,
        attempts=batch.attempts + 1,
        not_before=not_before,
        error=reason,
        now=now,
    )


def split(
    session: Session,
    batch: ClaimedBatch,
    first: Sequence[int],
    second: Sequence[int],
    *,
    reason: str,
    clock: Clock,
) -> int:
    """Keep `first` in the batch and move `second` to a new one; both queued. Caller's txn."""
    now = clock.now()
    _back_to_queue(
        session,
        batch.id,
        now,
        not_before=None,
        attempts=0,
        size=len(first),
        error=f"split after: {reason}"[:500],
    )
    return _new_batch(session, batch, second, attempts=0, not_before=None, error=None, now=now)


def _back_to_queue(session: Session, batch_id: int, now: datetime, **values: Any) -> None:
    """Queued again and unleased, so any worker may claim it (after `not_before`)."""
    session.execute(
        update(SendBatch)
        .where(SendBatch.id == batch_id)
        .values(status=BatchStatus.QUEUED, worker=None, lease_until=None, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )


def _new_batch(
    session: Session,
    batch: ClaimedBatch,
    delivery_ids: Sequence[int],
    *,
    attempts: int,
    not_before: datetime | None,
    error: str | None,
    now: datetime,
    in_doubt: bool = False,
) -> int:
    new_id = session.scalar(
        insert(SendBatch)
        .values(
            issue_id=batch.issue_id,
            variant=batch.variant,
            tracked=batch.tracked,
            subject_arm=batch.subject_arm,
            status=BatchStatus.IN_DOUBT if in_doubt else BatchStatus.QUEUED,
            size=len(delivery_ids),
            attempts=attempts,
            not_before=not_before,
            posted_at=now if in_doubt else None,
            error=error[:500] if error else None,
            created_at=now,
            updated_at=now,
        )
        .returning(SendBatch.id)
    )
    assert new_id is not None
    status = DeliveryStatus.IN_DOUBT if in_doubt else DeliveryStatus.QUEUED
    for chunk in chunks(list(delivery_ids)):
        session.execute(
            update(_DELIVERIES)
            .where(_DELIVERIES.c.id.in_(chunk))
            .values(batch_id=new_id, status=status, updated_at=now)
        )
    return new_id


def park_in_doubt(
    session: Session, batch: ClaimedBatch, delivery_ids: Sequence[int], reason: str, clock: Clock
) -> int:
    """Recipients whose message was sent but not answered (SMTP: after end of DATA) move to an
    `in_doubt` batch of their own, so the rest of the batch settles normally. Caller's txn."""
    return _new_batch(
        session,
        batch,
        delivery_ids,
        attempts=batch.attempts + 1,
        not_before=None,
        error=reason,
        now=clock.now(),
        in_doubt=True,
    )


def fail_batch(
    session: Session, batch_id: int, reason: str, clock: Clock, *, kind: FailureKind
) -> int:
    """Every unsettled recipient of the batch failed with `reason`. Caller's transaction."""
    now = clock.now()
    failed = session.execute(
        update(_DELIVERIES)
        .where(_DELIVERIES.c.batch_id == batch_id, _DELIVERIES.c.status.in_(_UNSETTLED))
        .values(
            status=DeliveryStatus.FAILED,
            error=reason[:500],
            failure_kind=kind.value,
            updated_at=now,
        )
    ).rowcount
    session.execute(
        update(SendBatch)
        .where(SendBatch.id == batch_id)
        .values(status=BatchStatus.FAILED, lease_until=None, error=reason[:500], updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return failed or 0


def fail_batch_members(
    session: Session, delivery_ids: Sequence[int], reason: str, clock: Clock
) -> None:
    """These recipients of a batch failed with `reason` (e.g. deferred too many times): the
    service's failure, not their address's, so `issue retry` may try them again."""
    _fail_deliveries(session, dict.fromkeys(delivery_ids, reason), clock.now(), FailureKind.SEND)
