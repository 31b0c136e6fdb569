"""Planning a send: who gets the issue, in which batch; then the issue is `sending`.

Set-based: one `INSERT INTO deliveries ... SELECT` from the audience, the new rows cut into
batches in SQL. Idempotent: (issue, subscriber) is unique, so planning again adds only those
who became eligible since. See docs/delivery.md ("The ledger").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Any

from sqlalchemy import (
    Integer,
    bindparam,
    case,
    exists,
    false,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import Delivery, Issue, IssueVariant, SendBatch
from newsletter.db.types import UTCDateTime
from newsletter.delivery.ledger import get_issue_row, is_postgres
from newsletter.engagement.subject_tests import planning_arm
from newsletter.errors import (
    RenderError,
    StateError,
)
from newsletter.issues.assembly import freeze_issue
from newsletter.issues.variants import ensure_variants
from newsletter.types import (
    VARIANTS,
    BatchStatus,
    DeliveryStatus,
    IssueStatus,
)
from subscribers.audience import eligible_recipients

_DELIVERIES = Delivery.__table__
_BATCHES = SendBatch.__table__
_ISSUES = Issue.__table__


@dataclass(frozen=True, slots=True)
class EnqueueReport:
    issue_id: int
    added: int  # deliveries planned by this call
    batches: int  # batches created by this call
    total: int  # deliveries of the issue in the ledger


def enqueue_issue(
    session: Session,
    issue: Issue,
    settings: Settings,
    clock: Clock,
    *,
    batch_size: int | None = None,
    subject_arm: int | None = None,
    prepared: bool = False,
) -> EnqueueReport:
    """Freeze and render the issue (first time), plan its deliveries, mark it `sending`.

    Idempotent. Subscribers who became eligible since the last call join the send, as long
    as the issue is still `built`, `sending` or `paused`; a sent or cancelled issue is never
    planned again. Runs in the caller's transaction. `prepared`: `prepare_issue` already
    froze and rendered it in an earlier transaction; this one only plans (and writes no row
    but the ledger's: see `newsletter.db.session.planning_transaction`).
    """
    _check_sendable(issue)
    if not prepared:
        _freeze_and_render(session, issue, settings, clock)
    elif not has_variants(session, issue.id):
        raise RenderError(f"issue {issue.id} has no rendered variants: prepare_issue it first")
    size = batch_size or settings.send_batch_size
    if subject_arm is None:
        # A subject-line test decides who else is planned: nobody while its sample is out,
        # then everyone (late subscribers too) with the winning subject.
        hold, subject_arm = planning_arm(session, issue.id)
        if hold:
            total = session.scalar(select(func.count()).where(Delivery.issue_id == issue.id))
            return EnqueueReport(issue.id, 0, 0, total or 0)
    report = plan_deliveries(session, issue, size, clock, subject_arm=subject_arm)
    if issue.status == IssueStatus.BUILT:
        issue.status = IssueStatus.SENDING
        issue.send_started_at = clock.now()
    session.flush()
    return report


def prepare_issue(session: Session, issue: Issue, settings: Settings, clock: Clock) -> None:
    """What `enqueue_issue` does before planning, on its own: the status check, the articles'
    snapshot and the variants (idempotent). Runs in the caller's transaction."""
    _check_sendable(issue)
    _freeze_and_render(session, issue, settings, clock)


def _check_sendable(issue: Issue) -> None:
    if issue.status not in (IssueStatus.BUILT, IssueStatus.SENDING, IssueStatus.PAUSED):
        raise StateError(
            f"issue {issue.id} is {issue.status}: only a built, sending or paused issue is sent"
        )


def _freeze_and_render(session: Session, issue: Issue, settings: Settings, clock: Clock) -> None:
    """Snapshot the articles and render the variants when the send starts (both idempotent);
    RenderError if the issue still has none.

    Once an issue is sending, its stored variants are what every worker sends: a re-render
    then would mix two versions in one send, so later calls only render what is missing.
    """
    if issue.status == IssueStatus.BUILT:
        freeze_issue(session, issue, clock)
        ensure_variants(session, issue, settings, clock)
    elif not has_variants(session, issue.id):
        ensure_variants(session, issue, settings, clock)
    if not has_variants(session, issue.id):
        raise RenderError(
            f"issue {issue.id} has no rendered variants: run `newsletter issue build` first"
        )


# --- planning -------------------------------------------------------------------------------


def _form(language: Any, tracking_off: Any, tracks: bool) -> tuple[Any, Any]:
    """A planned delivery's variant (its language when it names one, else `ja`) and whether it
    gets the tracked form (the issue has one and the subscriber did not switch tracking off)."""
    # A simple CASE (the language read once, compared by value) rather than `IN` and a second
    # read of it: at a million rows the difference is measurable.
    variant = case({v: literal(v) for v in VARIANTS[1:]}, value=language, else_=literal("ja"))
    return variant, (tracking_off == false() if tracks else false())


def plan_deliveries(
    session: Session,
    issue: Issue,
    batch_size: int,
    clock: Clock,
    *,
    subject_arm: int | None = None,
) -> EnqueueReport:
    """Add every eligible subscriber not yet in the ledger and group them into batches.

    Idempotent: (issue_id, subscriber_id) is unique and only new rows are inserted, so running
    it again adds only subscribers who became eligible since. Runs in the caller's transaction.

    Each delivery gets its form: `tracked` when the issue has a tracked form (its list tracked
    clicks or opens when the forms were stored) and the subscriber has not switched tracking
    off; `subject_arm` (a subject-line test's winner) when given. A batch holds one variant in
    one form.
    """
    if batch_size < 1:
        raise StateError(f"batch size must be at least 1, got {batch_size}")
    now = clock.now()
    get_issue_row(session, issue.id, lock=True)  # serialise concurrent planners (PostgreSQL)
    tracks = issue_tracks(session, issue.id)
    if session.get_bind().dialect.name == "sqlite":
        return _plan_sqlite(session, issue, batch_size, now, subject_arm, tracks)
    eligible = eligible_recipients(issue.list_id).subquery()
    already = exists().where(Delivery.issue_id == issue.id, Delivery.subscriber_id == eligible.c.id)
    variant, tracked = _form(eligible.c.language, eligible.c.tracking_off, tracks)
    rows = select(
        literal(issue.id),
        eligible.c.id,
        variant,
        tracked,
        literal(subject_arm, Integer()),
        literal(DeliveryStatus.QUEUED.value),
        literal(now, UTCDateTime()),
    ).where(~already)
    count = select(func.count()).where(Delivery.issue_id == issue.id)
    before = session.scalar(count) or 0
    if is_postgres(session):
        # Statistics first: right after a bulk import the planner may still believe the
        # audience tables are empty and pick a nested loop that takes minutes at 50,000 rows.
        # ANALYZE samples at most 30,000 rows per table, so this costs well under a second.
        session.execute(text("ANALYZE subscribers, subscriptions, suppressions"))
    session.execute(
        insert(Delivery).from_select(
            [
                "issue_id",
                "subscriber_id",
                "variant",
                "tracked",
                "subject_arm",
                "status",
                "updated_at",
            ],
            rows,
        )  # fmt: skip
    )
    total = session.scalar(count) or 0
    if is_postgres(session) and total - before > 1000:
        # The same for the rows just planned, which the batch ranges below are cut from.
        session.execute(text("ANALYZE deliveries"))
    batches = group_into_batches(session, issue.id, batch_size, now)
    return EnqueueReport(issue.id, total - before, batches, total)


@dataclass(frozen=True, slots=True)
class SampleReport:
    issue_id: int
    eligible: int  # the audience the sample was drawn from
    arms: list[int]  # recipients per arm
    batches: int

    @property
    def sample(self) -> int:
        return sum(self.arms)


def plan_sample(
    session: Session,
    issue: Issue,
    settings: Settings,
    clock: Clock,
    *,
    sample: Any,  # (eligible audience size) -> how many to draw
    arms: int,
    batch_size: int | None = None,
) -> SampleReport:
    """A subject-line test's first phase: freeze and render the issue, plan a uniformly random
    sample of the eligible audience split evenly at random across `arms`, mark it `sending`.

    Set-based: one `INSERT ... SELECT` numbers the audience in a random order
    (`ROW_NUMBER() OVER (ORDER BY random())`); the first `sample` rows are planned, row n with
    arm (n - 1) mod `arms`, so the arms differ by at most one recipient. Only the counts reach
    Python. Everyone else is planned when the test decides (`enqueue_issue(subject_arm=...)`).
    Caller's transaction.
    """
    if issue.status != IssueStatus.BUILT:
        raise StateError(
            f"issue {issue.id} is {issue.status}: a subject-line test starts only on a built "
            "issue that is not sending yet"
        )
    get_issue_row(session, issue.id, lock=True)
    if session.scalar(select(func.count()).where(Delivery.issue_id == issue.id)):
        raise StateError(f"issue {issue.id} already has recipients: its send has started")
    audience = eligible_recipients(issue.list_id).order_by(None).subquery()
    eligible = session.scalar(select(func.count()).select_from(audience)) or 0
    size = sample(eligible)
    _freeze_and_render(session, issue, settings, clock)
    now = clock.now()
    shuffled = select(
        audience.c.id,
        audience.c.language,
        audience.c.tracking_off,
        func.row_number().over(order_by=func.random()).label("n"),
    ).subquery()
    variant, tracked = _form(
        shuffled.c.language, shuffled.c.tracking_off, issue_tracks(session, issue.id)
    )
    session.execute(
        insert(Delivery).from_select(
            ["issue_id", "subscriber_id", "variant", "tracked", "subject_arm", "status",
             "updated_at"],
            select(
                literal(issue.id),
                shuffled.c.id,
                variant,
                tracked,
                (shuffled.c.n - 1) % literal(arms),
                literal(DeliveryStatus.QUEUED.value),
                literal(now, UTCDateTime()),
            ).where(shuffled.c.n <= size),
        )
    )  # fmt: skip
    per_arm = dict(
        session.execute(
            select(Delivery.subject_arm, func.count())
            .where(Delivery.issue_id == issue.id)
            .group_by(Delivery.subject_arm)
        ).all()
    )
    batches = group_into_batches(session, issue.id, batch_size or settings.send_batch_size, now)
    issue.status = IssueStatus.SENDING
    issue.send_started_at = now
    session.flush()
    return SampleReport(issue.id, eligible, [per_arm.get(a, 0) for a in range(arms)], batches)


_COUNTER_FUNCTION = "newsletter_plan_seq"


def _form_counters(driver: Any, forms: int) -> list[Iterator[int]]:
    """One counter per variant and form, each an SQL function on the driver's connection
    (`newsletter_plan_seq{k}()`) that returns 0, 1, 2 ... one call after another.

    `itertools.count` is called by SQLite without a Python frame: half the cost of a Python
    function per row. Not deterministic, so SQLite calls it once for every row it inserts.
    """
    counters = [count() for _ in range(forms)]
    for k, counter in enumerate(counters):
        driver.create_function(f"{_COUNTER_FUNCTION}{k}", 0, counter.__next__)
    return counters


def _plan_sqlite(
    session: Session,
    issue: Issue,
    batch_size: int,
    now: datetime,
    subject_arm: int | None,
    tracks: bool,
) -> EnqueueReport:
    """SQLite: insert the new deliveries already cut into batches, then their batch rows.

    One pass in the audience's own order, without a sort: a window function numbering each
    form's rows sorted every row by form and subscriber and fed the indexes out of order,
    which cost more than the rest of the insert. Instead one counter per form numbers its rows
    as SQLite inserts them (`_form_counters`): the n-th (from 0) of form k goes to batch
    `base + (n // batch_size) * stride + k`. In whatever order the rows come, each form's are
    numbered 0, 1, 2 ... once each, so its batches hold `batch_size` but the last; the
    audience's order (by subscriber, as its index is read) only decides who shares a batch.

    Under SQLite's write lock (taken first) the batch ids numbered from the table's largest
    id stay ours: the deliveries carry them (the foreign key is checked at commit), and the
    batch rows follow from the counts alone.
    """
    # Take SQLite's write lock first (a no-op write): from here to the commit nobody else
    # writes, so the count below and the batch ids numbered here stay true.
    session.execute(update(_ISSUES).where(_ISSUES.c.id == issue.id).values(status=_ISSUES.c.status))
    before = session.scalar(select(func.count()).where(Delivery.issue_id == issue.id)) or 0
    session.execute(text("PRAGMA defer_foreign_keys = ON"))  # until this transaction ends
    base = (session.scalar(select(func.max(_BATCHES.c.id))) or 0) + 1
    stride = 2 * len(VARIANTS)  # ja, en, both, both-en; each untracked and tracked
    forms = stride if tracks else len(VARIANTS)
    audience = eligible_recipients(issue.list_id)  # by subscriber: its index's own order
    person = audience.selected_columns
    variant, tracked = _form(person.language, person.tracking_off, tracks)

    # Batch `base + (n // batch_size) * stride + k` for the n-th row of form k (the variant's
    # place in VARIANTS, plus 4 for the tracked form): simple CASEs on the language, each
    # branch calling its own form's counter, so each row reads its language once.
    def numbered(k: int) -> Any:
        counter = getattr(func, f"{_COUNTER_FUNCTION}{k}")(type_=Integer)
        return literal(base + k) + counter // literal(batch_size) * literal(stride)

    def by_language(offset: int) -> Any:
        return case(
            {v: numbered(offset + n) for n, v in enumerate(VARIANTS) if n},
            value=person.language,
            else_=numbered(offset),
        )

    batch_id = (
        case((tracked, by_language(len(VARIANTS))), else_=by_language(0))
        if tracks
        else by_language(0)
    )
    rows = audience.with_only_columns(
        literal(issue.id),
        person.id,
        variant,
        tracked,
        literal(subject_arm, Integer()),
        literal(DeliveryStatus.QUEUED.value),
        literal(now, UTCDateTime()),
        batch_id,
    )
    if before:
        # Planned again: only those not in the ledger yet. On a first planning (with the write
        # lock ours, nobody is in it) the per-row probe could only say no.
        rows = rows.where(
            ~exists().where(Delivery.issue_id == issue.id, Delivery.subscriber_id == person.id)
        )
    driver = session.connection().connection.driver_connection
    counters = _form_counters(driver, forms)
    try:
        added = session.execute(
            insert(Delivery).from_select(
                ["issue_id", "subscriber_id", "variant", "tracked", "subject_arm", "status",
                 "updated_at", "batch_id"],
                rows,
            )
        ).rowcount  # fmt: skip
    finally:
        for k in range(forms):
            driver.create_function(f"{_COUNTER_FUNCTION}{k}", 0, None)
    counts = [next(counter) for counter in counters]
    if added != sum(counts):
        raise StateError(f"planning numbered {sum(counts)} deliveries but inserted {added}")
    batches = [
        {
            "id": base + group * stride + k,
            "issue_id": issue.id,
            "variant": VARIANTS[k % len(VARIANTS)],
            "tracked": k >= len(VARIANTS),
            "subject_arm": subject_arm,
            "status": BatchStatus.QUEUED.value,
            "size": min(batch_size, n - group * batch_size),
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for group in range(-(-max(counts) // batch_size))
        for k, n in enumerate(counts)
        if n > group * batch_size
    ]
    if batches:
        session.execute(insert(_BATCHES), batches)
    return EnqueueReport(issue.id, added, len(batches), before + added)


def group_into_batches(session: Session, issue_id: int, batch_size: int, now: datetime) -> int:
    """Cut the unbatched deliveries of each variant and form into id ranges of `batch_size`,
    in SQL."""
    arm = func.coalesce(Delivery.subject_arm, -1)
    form = (Delivery.variant, Delivery.tracked, arm)
    number = func.row_number().over(partition_by=form, order_by=Delivery.id)
    unbatched = (
        select(
            Delivery.id,
            Delivery.variant,
            Delivery.tracked,
            arm.label("arm"),
            number.label("rn"),
        )
        .where(
            # `+ 0`: found through the batch index's (NULL, queued) entries, not by reading
            # every row of the issue (SQLite, without statistics, prefers the issue's key;
            # once batches settle their members, a sent issue's rows are all still queued).
            Delivery.issue_id + 0 == issue_id,
            Delivery.batch_id.is_(None),
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .subquery()
    )
    group = (unbatched.c.rn - 1) // batch_size
    ranges = session.execute(
        select(
            unbatched.c.variant,
            unbatched.c.tracked,
            unbatched.c.arm,
            func.min(unbatched.c.id).label("lo"),
            func.max(unbatched.c.id).label("hi"),
            func.count().label("n"),
        )
        .group_by(unbatched.c.variant, unbatched.c.tracked, unbatched.c.arm, group)
        .order_by(func.min(unbatched.c.id))
    ).all()
    if not ranges:
        return 0
    batch_rows = [
        {
            "issue_id": issue_id,
            "variant": r.variant,
            "tracked": bool(r.tracked),
            "subject_arm": None if r.arm < 0 else r.arm,
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
            _DELIVERIES.c.tracked == bindparam("t"),
            func.coalesce(_DELIVERIES.c.subject_arm, -1) == bindparam("a"),
            _DELIVERIES.c.id.between(bindparam("lo"), bindparam("hi")),
            _DELIVERIES.c.batch_id.is_(None),
        )
        .values(batch_id=bindparam("b")),
        [
            {"v": r.variant, "t": bool(r.tracked), "a": r.arm, "lo": r.lo, "hi": r.hi, "b": b}
            for r, b in zip(ranges, ids, strict=True)
        ],
    )
    return len(ids)


def issue_tracks(session: Session, issue_id: int) -> bool:
    """The issue was rendered in a tracked form (its list tracked clicks or opens when the
    forms were stored): its subscribers get that form. Read from the stored forms, not the
    list's current setting, so switching tracking during a send does not change the send."""
    found = session.scalar(
        select(IssueVariant.id)
        .where(IssueVariant.issue_id == issue_id, IssueVariant.tracked.is_(True))
        .limit(1)
    )
    return found is not None


def has_variants(session: Session, issue_id: int) -> bool:
    found = session.scalar(select(func.count()).where(IssueVariant.issue_id == issue_id)) or 0
    return found > 0
