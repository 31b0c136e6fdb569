"""The send ledger: who gets an issue, in which batch, and what became of each recipient.

State machine of a batch (`send_batches.status`)::

    queued --claim--> claimed --mark_sending (COMMIT)--> sending --record (one COMMIT)--> accepted
      ^                  |                                  |                            failed
      |   lease expired  |                                  | transient: back to queued (not_before)
      +------------------+                                  | splittable: halved, both queued
                                                            | lease expired: in_doubt

A batch is committed as `sending` before the provider is called and its outcome is committed in
one transaction after, so the only recipients whose fate is unknown after a crash are those of
the batches that were in flight: they become `in_doubt`, never silently re-sent. Every write is
set-based (one UPDATE by batch id); nothing loads the audience into Python. A batch accepted
whole is one write to its own row: its members still `queued` read as accepted through it
(`models.delivery_status`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache, lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db.fastpath import fetch_packed, fetch_plain, packed
from newsletter.db.models import Delivery, Issue, SendBatch, Subscriber
from newsletter.db.types import UTCDateTime
from newsletter.errors import NotFoundError
from newsletter.types import BatchStatus, DeliveryStatus, IssueStatus
from subscribers.audience import mailable

_DELIVERIES = Delivery.__table__
_BATCHES = SendBatch.__table__
_SUBSCRIBERS = Subscriber.__table__
_ISSUES = Issue.__table__
OPEN_BATCH = (BatchStatus.QUEUED, BatchStatus.CLAIMED, BatchStatus.SENDING)
_UNSETTLED = (DeliveryStatus.QUEUED, DeliveryStatus.IN_DOUBT)


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    id: int
    issue_id: int
    variant: str
    attempts: int
    size: int
    tracked: bool = False  # the tracked form of the variant (links through /c/)
    subject_arm: int | None = None  # a subject-line test's arm


class RecipientRow(NamedTuple):
    id: int  # the delivery id
    subscriber_id: int
    email: str
    name: str | None


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A claimed batch's recipients to post, and the delivery ids to skip."""

    batch: ClaimedBatch
    list_id: int
    recipients: Sequence[RecipientRow]
    skipped: Sequence[int]


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def get_issue_row(session: Session, issue_id: int, *, lock: bool = False) -> Issue:
    stmt = select(Issue).where(Issue.id == issue_id)
    if lock and is_postgres(session):
        stmt = stmt.with_for_update()
    issue = session.scalar(stmt)
    if issue is None:
        raise NotFoundError(f"no issue with id {issue_id}")
    return issue


# --- claiming -------------------------------------------------------------------------------


def claim_batch(
    session: Session,
    worker: str,
    clock: Clock,
    lease_s: float,
    issue_id: int | None = None,
) -> ClaimedBatch | None:
    """Lease one batch of a `sending` issue to `worker` and COMMIT, or None if none is ready.

    Ready: queued and past its `not_before`, or claimed by a worker whose lease expired.
    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so many workers never wait on or take the same row.
    SQLite: the single UPDATE is atomic (one writer at a time, whichever process it is in).
    """
    now = clock.now()
    stmt = _claim_statement(issue_id is not None, is_postgres(session))
    params: dict[str, Any] = {
        "p_now": now,
        "p_worker": worker,
        "p_lease_until": now + timedelta(seconds=lease_s),
    }
    if issue_id is not None:
        params["p_issue_id"] = issue_id
    row = session.connection().execute(stmt, params).one_or_none()
    session.commit()
    if row is None:
        return None
    return ClaimedBatch(
        row.id, row.issue_id, row.variant, row.attempts, row.size, row.tracked, row.subject_arm
    )


@cache
def _claim_statement(one_issue: bool, postgres: bool) -> Any:
    """The claim UPDATE, built once per shape (compiled once, then served from the cache)."""
    b = _BATCHES.c
    now = bindparam("p_now", type_=UTCDateTime())
    ready = or_(
        and_(
            b.status == BatchStatus.QUEUED.value,
            or_(b.not_before.is_(None), b.not_before <= now),
        ),
        and_(b.status == BatchStatus.CLAIMED.value, b.lease_until < now),
    )
    pick = (
        select(b.id)
        .join(_ISSUES, _ISSUES.c.id == b.issue_id)
        .where(_ISSUES.c.status == IssueStatus.SENDING.value, ready)
        .order_by(b.id)
        .limit(1)
    )
    if one_issue:
        pick = pick.where(b.issue_id == bindparam("p_issue_id"))
        if not postgres:
            pick = _first_ready_of_issue(now)
    if postgres:
        pick = pick.with_for_update(skip_locked=True, of=_BATCHES)
    return (
        update(_BATCHES)
        .where(b.id == pick.scalar_subquery())
        .values(
            status=BatchStatus.CLAIMED.value,
            worker=bindparam("p_worker"),
            lease_until=bindparam("p_lease_until", type_=UTCDateTime()),
            updated_at=now,
        )
        .returning(b.id, b.issue_id, b.variant, b.attempts, b.size, b.tracked, b.subject_arm)
    )


def _first_ready_of_issue(now: Any) -> Any:
    """SQLite, one issue: the same pick as one ordered probe per ready state. Each branch
    reads `ix_send_batches_issue_status` (issue, status, id) in id order and stops at its
    first row; the single query with OR sorted every batch of the issue on every claim."""
    b = _BATCHES.c
    issue = bindparam("p_issue_id")
    sending = exists().where(_ISSUES.c.id == issue, _ISSUES.c.status == IssueStatus.SENDING.value)
    queued = (
        select(b.id)
        .where(
            b.issue_id == issue,
            b.status == BatchStatus.QUEUED.value,
            or_(b.not_before.is_(None), b.not_before <= now),
        )
        .order_by(b.id)
        .limit(1)
        .subquery()
    )
    expired = (
        select(b.id)
        .where(b.issue_id == issue, b.status == BatchStatus.CLAIMED.value, b.lease_until < now)
        .order_by(b.id)
        .limit(1)
        .subquery()
    )
    either = union_all(select(queued.c.id), select(expired.c.id)).subquery()
    return select(func.min(either.c.id)).where(sending)


def release_claim(session: Session, batch_id: int, worker: str, clock: Clock) -> None:
    """Give a claimed (not yet posted) batch back to the queue. Caller's transaction."""
    session.execute(
        update(SendBatch)
        .where(
            SendBatch.id == batch_id,
            SendBatch.worker == worker,
            SendBatch.status == BatchStatus.CLAIMED,
        )
        .values(status=BatchStatus.QUEUED, worker=None, lease_until=None, updated_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def open_work(session: Session, issue_id: int | None = None) -> int:
    """Batches of sending issues not yet settled (queued, claimed or sending)."""
    stmt = (
        select(func.count())
        .select_from(SendBatch)
        .join(Issue, Issue.id == SendBatch.issue_id)
        .where(SendBatch.status.in_(OPEN_BATCH), Issue.status == IssueStatus.SENDING)
    )
    if issue_id is not None:
        stmt = stmt.where(SendBatch.issue_id == issue_id)
    return session.scalar(stmt) or 0


# --- one batch ------------------------------------------------------------------------------


def load_batch(session: Session, batch: ClaimedBatch, list_id: int | None = None) -> PreparedBatch:
    """Read the batch's queued recipients and which of them may still be mailed (no writes).

    `list_id` is the issue's list (looked up when not given; a sender knows it per issue).
    """
    if list_id is None:
        list_id = get_issue_row(session, batch.issue_id).list_id
    params = {"p_batch_id": batch.id}
    if is_postgres(session):  # one network round trip for the rows already
        rows: Sequence[Sequence[Any]] = fetch_plain(session, _load_statement(list_id), params)
    else:
        rows = fetch_packed(session, _load_statement_packed(list_id), params)
    keep: list[RecipientRow] = []
    dropped: list[int] = []
    row_of = tuple.__new__  # RecipientRow(*row[:4]) without the named tuple's Python __new__
    for row in rows:
        if row[4] and row[1] is not None:  # mailable, not erased
            keep.append(row_of(RecipientRow, row[:4]))
        else:
            dropped.append(row[0])
    return PreparedBatch(batch, list_id, keep, dropped)


@lru_cache(maxsize=64)
def _load_statement(list_id: int) -> Any:
    """A batch's queued recipients with the audience's `mailable` rule, built once per list."""
    d = _DELIVERIES.c
    return (
        select(
            d.id,
            d.subscriber_id,
            _SUBSCRIBERS.c.email,
            _SUBSCRIBERS.c.name,
            # The joined row's hash: an erased subscriber (no row) has no subscription either.
            mailable(d.subscriber_id, list_id, _SUBSCRIBERS.c.email_hash).label("mailable"),
        )
        .select_from(_DELIVERIES.outerjoin(_SUBSCRIBERS, _SUBSCRIBERS.c.id == d.subscriber_id))
        .where(d.batch_id == bindparam("p_batch_id"), d.status == DeliveryStatus.QUEUED.value)
        # `ix_deliveries_batch_members`'s own order: the members come from the index alone.
        .order_by(d.subscriber_id, d.id)
    )


@lru_cache(maxsize=64)
def _load_statement_packed(list_id: int) -> Any:
    """`_load_statement` as one JSON row, for SQLite (`fastpath.packed` says why)."""
    return packed(_load_statement(list_id))


_MARK_SENDING = (
    update(_BATCHES)
    .where(
        _BATCHES.c.id == bindparam("p_batch_id"),
        _BATCHES.c.worker == bindparam("p_worker"),
        _BATCHES.c.status == BatchStatus.CLAIMED.value,
    )
    .values(
        status=bindparam("p_status"),
        attempts=_BATCHES.c.attempts + bindparam("p_attempt"),
        lease_until=bindparam("p_lease_until", type_=UTCDateTime()),
        posted_at=bindparam("p_now", type_=UTCDateTime()),
        updated_at=bindparam("p_now", type_=UTCDateTime()),
    )
)


def mark_sending(
    session: Session, loaded: PreparedBatch, worker: str, clock: Clock, lease_s: float
) -> bool:
    """Skip the recipients no longer eligible and COMMIT the batch as `sending`.

    False (nothing written) when the lease was lost: the caller must not send.
    """
    now = clock.now()
    batch = loaded.batch
    connection = session.connection()
    # No longer subscribed, suppressed, or erased since planning (subscriber_id NULL).
    for chunk in chunks(list(loaded.skipped)):
        connection.execute(
            update(_DELIVERIES)
            .where(_DELIVERIES.c.id.in_(chunk), _DELIVERIES.c.status == DeliveryStatus.QUEUED)
            .values(
                status=DeliveryStatus.SKIPPED,
                error="no longer subscribed, suppressed or erased",
                updated_at=now,
            )
        )
    sending = bool(loaded.recipients)
    marked = connection.execute(
        _MARK_SENDING,
        {
            "p_batch_id": batch.id,
            "p_worker": worker,
            "p_status": (BatchStatus.SENDING if sending else BatchStatus.ACCEPTED).value,
            "p_attempt": 1 if sending else 0,
            "p_lease_until": now + timedelta(seconds=lease_s),
            "p_now": now,
        },
    ).rowcount
    if marked != 1:
        session.rollback()
        return False
    session.commit()
    return True


def prepare_batch(
    session: Session, batch: ClaimedBatch, worker: str, clock: Clock, lease_s: float
) -> PreparedBatch | None:
    """`load_batch` then `mark_sending`; None when the lease was lost."""
    loaded = load_batch(session, batch)
    return loaded if mark_sending(session, loaded, worker, clock, lease_s) else None


def move_batches(
    session: Session,
    batch_ids: Sequence[int],
    *,
    members_from: DeliveryStatus,
    members: dict[str, Any],
    batches_from: Sequence[BatchStatus] | None,
    batches: dict[str, Any],
) -> int:
    """Move batches and their members in one state to new values, set-based, by id chunks.

    Members in `members_from` get `members`; the batches (only those in `batches_from`, when
    given) get `batches`. Returns how many members moved. Caller's transaction.
    """
    moved = 0
    for chunk in chunks(list(batch_ids)):
        moved += (
            session.execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.batch_id.in_(chunk), _DELIVERIES.c.status == members_from)
                .values(**members)
            ).rowcount
            or 0
        )
        where = [SendBatch.id.in_(chunk)]
        if batches_from is not None:
            where.append(SendBatch.status.in_(batches_from))
        session.execute(
            update(SendBatch)
            .where(*where)
            .values(**batches)
            .execution_options(synchronize_session=False)
        )
    return moved


def chunks(ids: list[int], size: int = 900) -> Iterable[list[int]]:
    """Id lists short enough for every database's parameter limit."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
