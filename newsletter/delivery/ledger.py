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
set-based (one UPDATE by batch id); nothing loads the audience into Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db.models import Delivery, Issue, IssueVariant, SendBatch, Subscriber
from newsletter.db.types import UTCDateTime
from newsletter.errors import NotFoundError, StateError
from newsletter.types import VARIANTS, BatchStatus, DeliveryStatus, FailureKind, IssueStatus
from subscribers.audience import eligible_recipients, mailable

_DELIVERIES = Delivery.__table__
_BATCHES = SendBatch.__table__
_SUBSCRIBERS = Subscriber.__table__
_ISSUES = Issue.__table__
OPEN_BATCH = (BatchStatus.QUEUED, BatchStatus.CLAIMED, BatchStatus.SENDING)
_UNSETTLED = (DeliveryStatus.QUEUED, DeliveryStatus.IN_DOUBT)


@dataclass(frozen=True, slots=True)
class EnqueueReport:
    issue_id: int
    added: int  # deliveries planned by this call
    batches: int  # batches created by this call
    total: int  # deliveries of the issue in the ledger


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    id: int
    issue_id: int
    variant: str
    attempts: int
    size: int


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


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def get_issue_row(session: Session, issue_id: int, *, lock: bool = False) -> Issue:
    stmt = select(Issue).where(Issue.id == issue_id)
    if lock and _is_postgres(session):
        stmt = stmt.with_for_update()
    issue = session.scalar(stmt)
    if issue is None:
        raise NotFoundError(f"no issue with id {issue_id}")
    return issue


# --- planning -------------------------------------------------------------------------------


def plan_deliveries(session: Session, issue: Issue, batch_size: int, clock: Clock) -> EnqueueReport:
    """Add every eligible subscriber not yet in the ledger and group them into batches.

    Idempotent: (issue_id, subscriber_id) is unique and only new rows are inserted, so running
    it again adds only subscribers who became eligible since. Runs in the caller's transaction.
    """
    if batch_size < 1:
        raise StateError(f"batch size must be at least 1, got {batch_size}")
    now = clock.now()
    get_issue_row(session, issue.id, lock=True)  # serialise concurrent planners (PostgreSQL)
    eligible = eligible_recipients(issue.list_id).subquery()
    already = exists().where(Delivery.issue_id == issue.id, Delivery.subscriber_id == eligible.c.id)
    language = eligible.c.language
    variant = case((language.in_(("en", "both")), language), else_=literal("ja"))
    rows = select(
        literal(issue.id),
        eligible.c.id,
        variant,
        literal(DeliveryStatus.QUEUED.value),
        literal(now, UTCDateTime()),
    ).where(~already)
    count = select(func.count()).where(Delivery.issue_id == issue.id)
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:
        # Take SQLite's write lock first (a no-op write): from here to the commit nobody else
        # writes, so the count below and the batch ids numbered in _plan_sqlite stay true.
        session.execute(
            update(_ISSUES).where(_ISSUES.c.id == issue.id).values(status=_ISSUES.c.status)
        )
    before = session.scalar(count) or 0
    if sqlite:
        batches = _plan_sqlite(session, issue.id, rows, variant, eligible.c.id, batch_size, now)
        total = session.scalar(count) or 0
        return EnqueueReport(issue.id, total - before, batches, total)
    if _is_postgres(session):
        # Statistics first: right after a bulk import the planner may still believe the
        # audience tables are empty and pick a nested loop that takes minutes at 50,000 rows.
        # ANALYZE samples at most 30,000 rows per table, so this costs well under a second.
        session.execute(text("ANALYZE subscribers, subscriptions, suppressions"))
    session.execute(
        insert(Delivery).from_select(
            ["issue_id", "subscriber_id", "variant", "status", "updated_at"], rows
        )
    )
    total = session.scalar(count) or 0
    if _is_postgres(session) and total - before > 1000:
        # The same for the rows just planned, which the batch ranges below are cut from.
        session.execute(text("ANALYZE deliveries"))
    batches = group_into_batches(session, issue.id, batch_size, now)
    return EnqueueReport(issue.id, total - before, batches, total)


def _plan_sqlite(
    session: Session,
    issue_id: int,
    rows: Any,
    variant: Any,
    subscriber_id: Any,
    batch_size: int,
    now: datetime,
) -> int:
    """SQLite: insert the new deliveries already cut into batches, then their batch rows.

    One pass instead of insert, group and update. The caller holds SQLite's write lock, so the
    batch ids numbered from the table's largest id (variant k of group g gets base + g * 3 + k)
    stay ours: the deliveries are inserted with them (the foreign key is checked at commit),
    then the batch rows are made from the inserted deliveries.
    """
    session.execute(text("PRAGMA defer_foreign_keys = ON"))  # until this transaction ends
    base = (session.scalar(select(func.max(_BATCHES.c.id))) or 0) + 1
    stride = len(VARIANTS)
    index = case(
        *((variant == literal(v), literal(n)) for n, v in enumerate(VARIANTS)), else_=literal(0)
    )
    group = (func.row_number().over(partition_by=variant, order_by=subscriber_id) - 1) // batch_size
    session.execute(
        insert(Delivery).from_select(
            ["issue_id", "subscriber_id", "variant", "status", "updated_at", "batch_id"],
            rows.add_columns(literal(base) + group * stride + index),
        )
    )
    d = _DELIVERIES.c
    return (
        session.execute(
            insert(_BATCHES).from_select(
                ["id", "issue_id", "variant", "status", "size", "attempts", "created_at",
                 "updated_at"],
                select(
                    d.batch_id,
                    literal(issue_id),
                    func.min(d.variant),
                    literal(BatchStatus.QUEUED.value),
                    func.count(),
                    literal(0),
                    literal(now, UTCDateTime()),
                    literal(now, UTCDateTime()),
                )
                .where(d.batch_id >= base)
                .group_by(d.batch_id),
            )
        ).rowcount
        or 0
    )  # fmt: skip


def group_into_batches(session: Session, issue_id: int, batch_size: int, now: datetime) -> int:
    """Cut the unbatched deliveries of each variant into id ranges of `batch_size`, in SQL."""
    number = func.row_number().over(partition_by=Delivery.variant, order_by=Delivery.id)
    unbatched = (
        select(Delivery.id, Delivery.variant, number.label("rn"))
        .where(
            Delivery.issue_id == issue_id,
            Delivery.batch_id.is_(None),
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .subquery()
    )
    group = (unbatched.c.rn - 1) // batch_size
    ranges = session.execute(
        select(
            unbatched.c.variant,
            func.min(unbatched.c.id).label("lo"),
            func.max(unbatched.c.id).label("hi"),
            func.count().label("n"),
        )
        .group_by(unbatched.c.variant, group)
        .order_by(func.min(unbatched.c.id))
    ).all()
    if not ranges:
        return 0
    batch_rows = [
        {
            "issue_id": issue_id,
            "variant": r.variant,
            "status": BatchStatus.QUEUED.value,
            "size": r.n,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for r in ranges
    ]
    ids = session.scalars(
        insert(SendBatch).returning(SendBatch.id, sort_by_parameter_order=True), batch_rows
    ).all()
    session.execute(
        update(_DELIVERIES)
        .where(
            _DELIVERIES.c.issue_id == issue_id,
            _DELIVERIES.c.variant == bindparam("v"),
            _DELIVERIES.c.id.between(bindparam("lo"), bindparam("hi")),
            _DELIVERIES.c.batch_id.is_(None),
        )
        .values(batch_id=bindparam("b")),
        [
            {"v": r.variant, "lo": r.lo, "hi": r.hi, "b": b}
            for r, b in zip(ranges, ids, strict=True)
        ],
    )
    return len(ids)


def has_variants(session: Session, issue_id: int) -> bool:
    found = session.scalar(select(func.count()).where(IssueVariant.issue_id == issue_id)) or 0
    return found > 0


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
    stmt = _claim_statement(issue_id is not None, _is_postgres(session))
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
    return ClaimedBatch(row.id, row.issue_id, row.variant, row.attempts, row.size)


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
        .returning(b.id, b.issue_id, b.variant, b.attempts, b.size)
    )


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
    rows = _fetch_plain(session, _load_statement(list_id), {"p_batch_id": batch.id})
    keep: list[RecipientRow] = []
    dropped: list[int] = []
    for delivery_id, subscriber_id, email, name, ok in rows:
        if ok and subscriber_id is not None:
            keep.append(RecipientRow(delivery_id, subscriber_id, email, name))
        else:
            dropped.append(delivery_id)
    return PreparedBatch(batch, list_id, keep, dropped)


def _fetch_plain(session: Session, stmt: Any, params: dict[str, Any]) -> list[Any]:
    """The rows of a SELECT whose columns need no result processing, as the driver's tuples.

    The statement is compiled once per dialect (cached with it) and run on the session's own
    connection, so it sees the session's transaction; this skips building a result row object
    per recipient, a third of the batch load's time.
    """
    connection = session.connection()
    compiled = _compiled(stmt, connection.dialect)
    values = compiled.construct_params(params)
    if compiled.positiontup is not None:
        parameters: Any = [values[name] for name in compiled.positiontup]
    else:
        parameters = values
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.string, parameters)
        return cursor.fetchall()
    finally:
        cursor.close()


@lru_cache(maxsize=64)
def _compiled(stmt: Any, dialect: Any) -> Any:
    compiled = stmt.compile(dialect=dialect)
    assert not compiled._bind_processors, "plain fetches take only unprocessed parameters"
    return compiled


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
            mailable(d.subscriber_id, list_id).label("mailable"),
        )
        .select_from(_DELIVERIES.outerjoin(_SUBSCRIBERS, _SUBSCRIBERS.c.id == d.subscriber_id))
        .where(d.batch_id == bindparam("p_batch_id"), d.status == DeliveryStatus.QUEUED.value)
        .order_by(d.id)
    )


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


_ACCEPT_BATCH_MEMBERS = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.batch_id == bindparam("p_batch_id"),
        _DELIVERIES.c.status.in_([s.value for s in _UNSETTLED]),
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
    `failed`; any other attempted id is returned so the caller can retry it.
    """
    now = clock.now()
    connection = session.connection()
    accepted_set = set(accepted).intersection(attempted)
    if accepted_set and len(accepted_set) == len(attempted):
        unsettled: list[int] = []
        connection.execute(_ACCEPT_BATCH_MEMBERS, {"p_batch_id": batch_id, "p_now": now})
    else:
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


def chunks(ids: list[int], size: int = 900) -> Iterable[list[int]]:
    """Id lists short enough for every database's parameter limit."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
