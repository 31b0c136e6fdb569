"""The sending loop: claim a batch, post it, record the outcome; many batches in flight.

`send_issue` plans an issue into the ledger and sends it in this process; `Sender.run` is the
loop that `newsletter worker` processes share through the ledger's leases. Messages are prepared
once per variant; each batch loads only its own recipients (memory stays flat in the audience
size); per-recipient values are only the signed links and the name.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import Issue, IssueVariant, MailingList
from newsletter.db.session import transaction
from newsletter.delivery import in_doubt, issue_state, ledger
from newsletter.delivery.breaker import CircuitBreaker
from newsletter.delivery.ledger import ClaimedBatch, EnqueueReport, PreparedBatch
from newsletter.delivery.policy import Action, decide, describe, failure_kind, halves
from newsletter.delivery.ratelimit import RateLimiter
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.status import SendStatus, send_status
from newsletter.errors import (
    DatabaseError,
    InDoubtProviderError,
    ProviderError,
    RenderError,
    StateError,
    TransientProviderError,
)
from newsletter.issues.assembly import freeze_issue
from newsletter.issues.variants import ensure_variants
from newsletter.providers.base import Batch, BatchResult, PreparedMessage, Provider, Recipient
from newsletter.types import FINISHED_ISSUE_STATUSES, VARIANTS, IssueStatus
from subscribers.tokens import LinkSigner

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_LOCKED_RETRIES = 4  # after SQLite's own busy timeout (30 s by default), each


def default_worker_id() -> str:
    """host:pid, so `issue status` says which process holds which batch."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Progress:
    """Counters of one run, passed to the progress callback after every batch."""

    total: int = 0  # recipients of the issue(s) in the ledger when the run started
    done_before: int = 0  # already settled when the run started
    accepted: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0  # recipients whose batch was queued again
    in_doubt: int = 0
    batches: int = 0
    requests: int = 0
    waiting: int = 0  # in-doubt batches waiting for provider events or their grace window
    started: float = field(default_factory=time.monotonic)

    @property
    def settled(self) -> int:
        return self.accepted + self.failed + self.skipped + self.in_doubt

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.settled / elapsed if elapsed > 0 else 0.0


ProgressCallback = Callable[[Progress], None]
ProviderFactory = Callable[[], Provider]

# Progress counters a helper process shares with the process that started it.
_SHARED_COUNTS = ("accepted", "failed", "skipped", "retried", "in_doubt", "batches", "requests")


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


class Sender:
    """Runs the claim-send-record loop on `config.concurrency` threads until told to stop.

    One Sender per process (or per `send_issue` call); it owns the rate limiter and the
    circuit breaker, so the limits hold for the whole process.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        provider: Provider,
        clock: Clock,
        config: SendConfig,
        *,
        worker_id: str,
        stop: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.provider = provider
        self.clock = clock
        self.config = config.for_provider(provider.max_batch_size)
        self.worker_id = worker_id
        self.stop = stop or threading.Event()
        self.progress_callback = progress
        self.progress = Progress()
        self.limiter = RateLimiter(config.rate_messages_per_s, config.rate_requests_per_s)
        self.breaker = CircuitBreaker(
            config.breaker_consecutive, config.breaker_window, config.breaker_ratio
        )
        self.signer = LinkSigner(settings)
        # Can an in-doubt batch be settled from provider events (SendGrid with its webhook)?
        self.events_expected = bool(getattr(provider, "confirms_by_events", False))
        self._messages: dict[tuple[int, str], PreparedMessage] = {}
        self._list_ids: dict[int, int] = {}  # issue -> list (an issue never changes list)
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._paused = False
        with sessions() as probe:
            single_writer = probe.get_bind().dialect.name == "sqlite"
        # SQLite has one writer: threads queue on a lock (woken at once) instead of the busy
        # handler's sleep-and-retry, which costs milliseconds per collision.
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if single_writer else nullcontext()
        )

    # -- the loop --------------------------------------------------------------------------

    def run(self, issue_id: int | None = None, *, until_idle: bool = True) -> Progress:
        """Send until no work is left (`until_idle`) or the stop event is set.

        With `issue_id`, only that issue's batches; otherwise every issue that is `sending`.
        """
        threads = [
            threading.Thread(
                target=self._thread_main, args=(issue_id, until_idle), name=f"send-{n}", daemon=True
            )
            for n in range(self.config.concurrency)
        ]
        with _quiet_gc():
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if self._errors:
            raise self._errors[0]
        return self.progress

    def _thread_main(self, issue_id: int | None, until_idle: bool) -> None:
        try:
            self._loop(issue_id, until_idle)
        except BaseException as err:  # surfaced by run() in the calling thread
            log.exception("sender thread failed")
            self._errors.append(err)
            self.stop.set()

    def _loop(self, issue_id: int | None, until_idle: bool) -> None:
        session = self.sessions()
        try:
            while not self.stop.is_set() and not self.breaker.open:
                claimed = self._write(
                    session,
                    lambda s: ledger.claim_batch(
                        s, self.worker_id, self.clock, self.config.lease_s, issue_id
                    ),
                )
                if claimed is not None:
                    self._process(session, claimed)
                    continue
                remaining, waiting = self._write(session, lambda s: self._idle(s, issue_id))
                if remaining == 0 and not waiting and until_idle:
                    return
                self.stop.wait(self.config.poll_s)
        finally:
            session.close()

    def _idle(self, session: Session, issue_id: int | None) -> tuple[int, int]:
        """Nothing to claim: turn dead senders' batches in doubt, settle what can be settled,
        end the send if everyone is settled. Returns (open batches, in-doubt batches worth
        waiting for: inside their grace window, with provider events expected)."""
        in_doubt.reap_expired(session, self.clock, issue_id)
        report = in_doubt.reconcile(
            session,
            self.clock,
            issue_id=issue_id,
            grace_s=self.config.reconcile_after_s,
            events_expected=self.events_expected,
        )
        session.commit()
        if report.changed:
            log.info(
                "in-doubt recipients settled: %s accepted (provider events), %s queued again",
                report.accepted,
                report.requeued,
            )
            self._count(
                in_doubt=-(report.accepted + report.requeued),
                accepted=report.accepted,
                retried=report.requeued,
            )
        with self._lock:
            self.progress.waiting = report.waiting
        remaining = ledger.open_work(session, issue_id)
        session.commit()
        if remaining == 0:
            if issue_id is not None:
                issue_state.finish_if_done(session, issue_id, self.clock)
            else:
                issue_state.finish_done_issues(session, self.clock)
            session.commit()
        if report.waiting or report.changed:
            self._report()
        return remaining, report.waiting

    def _write(self, session: Session, work: Callable[[Session], _T]) -> _T:
        """Run one unit of ledger work under the write lock. On SQLite, a database locked past
        the busy timeout (another process writing for that long) is waited out and retried,
        then reported as one DatabaseError instead of a traceback."""
        for attempt in range(_LOCKED_RETRIES + 1):
            try:
                with self._write_lock:
                    return work(session)
            except OperationalError as err:
                session.rollback()
                if "locked" not in str(err.orig):
                    raise
                if attempt == _LOCKED_RETRIES:
                    raise DatabaseError(
                        "the database stayed locked by another process; "
                        "the send stopped and can be run again"
                    ) from None
                log.warning("database locked; retrying (%s of %s)", attempt + 1, _LOCKED_RETRIES)
                self.stop.wait(0.5 * 2.0**attempt)
        raise AssertionError("unreachable")

    # -- one batch -------------------------------------------------------------------------

    def _process(self, session: Session, claimed: ClaimedBatch) -> None:
        message = self._message(session, claimed.issue_id, claimed.variant)
        # Wait for the rate limit while the batch is only claimed: a claim that outlives its
        # lease is simply taken over, whereas a `sending` batch would turn in doubt.
        self.limiter.acquire(claimed.size, self.stop)
        if self.stop.is_set():
            with self._unit(session):
                ledger.release_claim(session, claimed.id, self.worker_id, self.clock)
            return
        list_id = self._list_id(session, claimed.issue_id)
        prepared = ledger.load_batch(session, claimed, list_id)  # reads: outside the write lock
        with self._write_lock:
            marked = ledger.mark_sending(
                session, prepared, self.worker_id, self.clock, self.config.lease_s
            )
        if not marked:
            return  # the lease was lost: another worker owns this batch now
        self._count(skipped=len(prepared.skipped))
        if not prepared.recipients:
            return
        if len(prepared.recipients) > self.provider.max_batch_size:
            # Planned with a larger batch size than this provider takes: halve, nothing posted.
            first, second = halves([r.id for r in prepared.recipients])
            with self._unit(session):
                ledger.split(
                    session,
                    claimed,
                    first,
                    second,
                    reason=f"larger than {self.provider.name}'s {self.provider.max_batch_size}",
                    clock=self.clock,
                )
            return
        recipients = self._recipients(prepared)
        try:
            result = self.provider.send_batch(Batch(claimed.id, message, recipients))
        except InDoubtProviderError as err:
            self._on_in_doubt(session, prepared, describe(err), err.failed)
            return
        except ProviderError as err:
            self._on_error(session, prepared, err)
            return
        except Exception as err:  # a provider bug: we cannot know what was sent
            log.exception("provider %s raised outside its contract", self.provider.name)
            self._on_in_doubt(session, prepared, f"provider error: {err!r}", {})
            return
        self._record(session, prepared, recipients, result)

    def _record(
        self,
        session: Session,
        prepared: PreparedBatch,
        recipients: list[Recipient],
        result: BatchResult,
    ) -> None:
        claimed = prepared.batch
        attempted = [r.delivery_id for r in recipients]
        failed = dict(result.failed)
        gave_up: list[int] = []
        with self._unit(session):
            unsettled = ledger.record_accepted(
                session,
                claimed.id,
                attempted,
                result.accepted,
                failed,
                provider=self.provider.name,
                provider_message_id=result.provider_message_id,
                clock=self.clock,
            )
            parked = [i for i in unsettled if i in result.in_doubt]
            if parked:
                reason = next(iter(result.in_doubt.values()))
                ledger.park_in_doubt(session, claimed, parked, reason, self.clock)
                unsettled = [i for i in unsettled if i not in result.in_doubt]
            if unsettled:
                delay = decide(
                    _deferred_error(result.deferred),
                    attempts=claimed.attempts + 1,
                    size=len(unsettled),
                    max_attempts=self.config.max_attempts,
                    backoff_base_s=self.config.backoff_base_s,
                    backoff_max_s=self.config.backoff_max_s,
                )
                if delay.action is Action.RETRY:
                    ledger.requeue(
                        session,
                        claimed,
                        unsettled,
                        delay_s=delay.delay_s,
                        reason=delay.reason,
                        clock=self.clock,
                        move=True,
                    )
                else:
                    ledger.fail_batch_members(session, unsettled, delay.reason, self.clock)
                    gave_up = unsettled
        accepted = len(attempted) - len(unsettled) - len(failed) - len(parked)
        self._count(
            accepted=accepted,
            failed=len(failed) + len(gave_up),
            retried=len(unsettled) - len(gave_up),
            in_doubt=len(parked),
            requests=result.requests,
            batches=1,
        )
        self._outcome(session, claimed.issue_id, ok=accepted > 0 or not attempted)

    def _on_in_doubt(
        self, session: Session, prepared: PreparedBatch, reason: str, refused: dict[int, str]
    ) -> None:
        """The batch went out and its answer was lost: in doubt, never re-posted on a guess.
        Events that already arrived for it settle it at once; the rest waits for the rule."""
        claimed = prepared.batch
        size = len(prepared.recipients)
        log.warning("batch %s (%s recipients) is in doubt: %s", claimed.id, size, reason)
        with self._unit(session):
            if refused:
                ledger.record_refused(session, refused, self.clock)
            in_doubt.mark_in_doubt(session, claimed.id, reason, self.clock)
            settled = in_doubt.settle_from_events(session, [claimed.id], self.clock)
        self._count(
            in_doubt=size - len(refused) - settled,
            accepted=settled,
            failed=len(refused),
            requests=1,
            batches=1,
        )
        self._outcome(session, claimed.issue_id, ok=False, batch_id=claimed.id)

    def _on_error(self, session: Session, prepared: PreparedBatch, err: ProviderError) -> None:
        claimed = prepared.batch
        ids = [r.id for r in prepared.recipients]
        decision = decide(
            err,
            attempts=claimed.attempts + 1,
            size=len(ids),
            max_attempts=self.config.max_attempts,
            backoff_base_s=self.config.backoff_base_s,
            backoff_max_s=self.config.backoff_max_s,
        )
        log.warning(
            "batch %s (%s recipients): %s -> %s",
            claimed.id,
            len(ids),
            describe(err),
            decision.action,
        )
        with self._unit(session):
            if decision.action is Action.RETRY:
                ledger.requeue(
                    session,
                    claimed,
                    ids,
                    delay_s=decision.delay_s,
                    reason=decision.reason,
                    clock=self.clock,
                    move=False,
                )
            elif decision.action is Action.SPLIT:
                first, second = halves(ids)
                ledger.split(
                    session, claimed, first, second, reason=decision.reason, clock=self.clock
                )
            else:
                kind = failure_kind(err, len(ids))
                ledger.fail_batch(session, claimed.id, decision.reason, self.clock, kind=kind)
        if decision.action is Action.RETRY:
            self._count(retried=len(ids), requests=1)
        elif decision.action is Action.FAIL:
            self._count(failed=len(ids), requests=1, batches=1)
        else:
            self._count(requests=1)
        # The breaker counts a batch once however often it is retried; a split is the
        # provider asking for smaller batches, not a failing service.
        if decision.action is Action.SPLIT:
            self._report()
        else:
            self._outcome(session, claimed.issue_id, ok=False, batch_id=claimed.id)

    def _outcome(
        self, session: Session, issue_id: int, *, ok: bool, batch_id: int | None = None
    ) -> None:
        if self.breaker.record(ok, batch_id) and not ok:
            with self._lock:
                first = not self._paused
                self._paused = True
            if first:
                reason = f"circuit breaker: {self.breaker.reason}"
                log.error("pausing issue %s: %s", issue_id, reason)
                try:
                    with self._unit(session):
                        issue_state.pause_issue(session, issue_id, reason)
                except StateError:
                    pass  # already paused or cancelled by an operator
        self._report()

    # -- helpers ---------------------------------------------------------------------------

    def _recipients(self, prepared: PreparedBatch) -> list[Recipient]:
        links = self.signer.links_for_list(prepared.list_id)
        return [
            Recipient(delivery_id, subscriber_id, email, name or "", *links(subscriber_id))
            for delivery_id, subscriber_id, email, name in prepared.recipients
        ]

    def _list_id(self, session: Session, issue_id: int) -> int:
        list_id = self._list_ids.get(issue_id)
        if list_id is None:
            list_id = ledger.get_issue_row(session, issue_id).list_id
            self._list_ids[issue_id] = list_id
        return list_id

    def _message(self, session: Session, issue_id: int, variant: str) -> PreparedMessage:
        key = (issue_id, variant)
        message = self._messages.get(key)
        if message is None:
            prepared = prepare_messages(session, self.settings, issue_id)
            with self._lock:
                self._messages.update({(issue_id, v): m for v, m in prepared.items()})
            if key not in self._messages:
                raise RenderError(
                    f"issue {issue_id} has no rendered {variant!r} variant: "
                    "run `newsletter issue build` to render it"
                )
            message = self._messages[key]
        return message

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self.progress, name, getattr(self.progress, name) + value)

    def _report(self) -> None:
        if self.progress_callback is not None:
            with self._lock:
                self.progress_callback(self.progress)

    def _unit(self, session: Session) -> _Unit:
        return _Unit(session, self._write_lock)

    @property
    def paused_reason(self) -> str | None:
        return self.breaker.reason if self._paused else None

    def reset_breaker(self) -> None:
        """A long-running worker carries on with other issues after pausing a failing one."""
        c = self.config
        self.breaker = CircuitBreaker(c.breaker_consecutive, c.breaker_window, c.breaker_ratio)
        self._paused = False


_GC_LOCK = threading.Lock()
_GC_USERS = 0
_GC_SAVED: tuple[int, ...] = ()
_GC_THRESHOLD0 = 10_000  # container allocations between young collections during a send


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """Less cyclic garbage collection while sending: a batch allocates thousands of short-lived
    dicts, and the collector's young passes kept walking them and its full passes walked every
    long-lived object of the process (SQLAlchemy's, the modules'): a third of a send's CPU.
    The objects that exist when the send starts are frozen (`gc.freeze`: left out of
    collections, still freed by reference counting) and young collections run less often;
    both are undone when the last send of the process ends. Memory stays flat (measured)."""
    global _GC_USERS, _GC_SAVED
    with _GC_LOCK:
        _GC_USERS += 1
        if _GC_USERS == 1:
            gc.freeze()
            _GC_SAVED = gc.get_threshold()
            gc.set_threshold(max(_GC_SAVED[0], _GC_THRESHOLD0), *_GC_SAVED[1:])
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_USERS -= 1
            if _GC_USERS == 0:
                gc.set_threshold(*_GC_SAVED)
                gc.unfreeze()


class _Unit:
    """One write transaction: commit on success, roll back on error, under the write lock."""

    def __init__(self, session: Session, lock: AbstractContextManager[object]) -> None:
        self.session = session
        self.lock = lock

    def __enter__(self) -> Session:
        self.lock.__enter__()
        return self.session

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            self.lock.__exit__(None, None, None)


def _deferred_error(deferred: dict[int, str]) -> ProviderError:
    """Recipients the provider deferred (or did not mention) are retried like a 4xx/5xx."""
    sample = next(iter(deferred.values()), "the provider did not accept these recipients")
    return TransientProviderError(f"deferred: {sample}")


def prepare_messages(
    session: Session, settings: Settings, issue_id: int
) -> dict[str, PreparedMessage]:
    """The issue's stored variants as provider-ready messages, built once per send."""
    issue = ledger.get_issue_row(session, issue_id)
    mailing_list = session.get(MailingList, issue.list_id)
    host = urlsplit(settings.base_url).hostname or "localhost"
    list_header = (
        f"{mailing_list.name} <{mailing_list.slug}.{host}>" if mailing_list is not None else None
    )
    sender = settings.from_address
    out: dict[str, PreparedMessage] = {}
    for row in session.scalars(select(IssueVariant).where(IssueVariant.issue_id == issue_id)):
        if row.variant not in VARIANTS:
            continue
        out[row.variant] = PreparedMessage(
            issue_id=issue_id,
            variant=row.variant,
            subject=row.subject,
            html=row.html,
            text=row.text,
            from_name=sender.display_name,
            from_email=sender.addr_spec,
            reply_to=settings.reply_to,
            list_id=list_header,
            categories=("newsletter", f"issue-{issue_id}", row.variant),
        )
    return out


# --- entry points ---------------------------------------------------------------------------


def enqueue_issue(
    session: Session,
    issue: Issue,
    settings: Settings,
    clock: Clock,
    *,
    batch_size: int | None = None,
) -> EnqueueReport:
    """Freeze and render the issue (first time), plan its deliveries, mark it `sending`.

    Idempotent. Subscribers who became eligible since the last call join the send, as long
    as the issue is still `built`, `sending` or `paused`; a sent or cancelled issue is never
    planned again. Runs in the caller's transaction.
    """
    if issue.status not in (IssueStatus.BUILT, IssueStatus.SENDING, IssueStatus.PAUSED):
        raise StateError(
            f"issue {issue.id} is {issue.status}: only a built, sending or paused issue is sent"
        )
    _freeze_and_render(session, issue, settings, clock)
    if not ledger.has_variants(session, issue.id):
        raise RenderError(
            f"issue {issue.id} has no rendered variants: run `newsletter issue build` first"
        )
    size = batch_size or settings.send_batch_size
    report = ledger.plan_deliveries(session, issue, size, clock)
    if issue.status == IssueStatus.BUILT:
        issue.status = IssueStatus.SENDING
        issue.send_started_at = clock.now()
    session.flush()
    return report


def _freeze_and_render(session: Session, issue: Issue, settings: Settings, clock: Clock) -> None:
    """Snapshot the articles and render the variants when the send starts (both idempotent).

    Once an issue is sending, its stored variants are what every worker sends: a re-render
    then would mix two versions in one send, so later calls only render what is missing.
    """
    if issue.status == IssueStatus.BUILT:
        freeze_issue(session, issue, clock)
        ensure_variants(session, issue, settings, clock)
    elif not ledger.has_variants(session, issue.id):
        ensure_variants(session, issue, settings, clock)


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
    """Send an issue: plan (idempotent), then run the loop to the end.

    A second call on a sent issue sends nothing. A paused issue must be resumed first. On a
    stop event, batches in flight finish and are recorded, and the report says what was done.

    `processes` > 1 forks that many minus one helper processes after planning (POSIX), each
    with its own database connections and its own provider from `provider_factory`; they share
    the batches through the ledger's claims exactly like `newsletter worker` processes (on
    SQLite too: every claim is one atomic UPDATE and SQLite has one writer at a time). The
    report and the progress callback count every process.
    """
    if processes < 1:
        raise ValueError(f"processes: expected at least 1, got {processes}")
    if processes > 1 and provider_factory is None:
        raise ValueError("processes > 1 needs a provider_factory (one provider per process)")
    sessions: sessionmaker[Session] = getattr(runtime_or_sessions, "sessions", runtime_or_sessions)
    cfg = (config or SendConfig.from_settings(settings)).for_provider(provider.max_batch_size)
    started = time.monotonic()
    with transaction(sessions) as session:
        issue = ledger.get_issue_row(session, issue_id, lock=True)
        if issue.status in FINISHED_ISSUE_STATUSES:
            already_done = True  # failed recipients go again only through `issue retry`
        elif issue.status == IssueStatus.PAUSED:
            raise StateError(
                f"issue {issue_id} is paused ({issue.note or 'by an operator'}); "
                "run `newsletter issue resume` first"
            )
        else:
            already_done = False
            enqueue_issue(session, issue, settings, clock, batch_size=cfg.batch_size)
    if already_done:
        with transaction(sessions) as session:
            status = send_status(session, issue_id)
        return SendReport(issue_id, 0, 0, 0, 0, 0, 0, 0, time.monotonic() - started, None, status)
    with transaction(sessions) as session:
        before = send_status(session, issue_id)
    stop = stop or threading.Event()
    helpers = _Helpers(processes - 1)
    if helpers.count:
        assert provider_factory is not None
        helpers.start(sessions, settings, provider_factory, issue_id, clock, cfg, worker_id)
    sender = Sender(
        sessions,
        settings,
        provider,
        clock,
        cfg,
        worker_id=worker_id or default_worker_id(),
        stop=stop,
        progress=helpers.wrap(progress),
    )
    sender.progress.total = before.total
    sender.progress.done_before = before.done
    try:
        sender.run(issue_id)
    finally:
        helpers.join(stop)
    result = helpers.add_to(sender.progress)
    if helpers.count and progress is not None:
        progress(result)  # the final counts of every process
    with transaction(sessions) as session:
        in_doubt.reap_expired(session, clock, issue_id)
        in_doubt.reconcile(
            session,
            clock,
            issue_id=issue_id,
            grace_s=cfg.reconcile_after_s,
            events_expected=sender.events_expected,
        )
        session.commit()
        issue_state.finish_if_done(session, issue_id, clock)
        status = send_status(session, issue_id)
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
    )


class _Helpers:
    """Helper sending processes of one `send_issue` call (forked after planning)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.processes: list[Any] = []
        self.paused_reason: str | None = None
        self._errors: list[str] = []
        self._pipes: list[Any] = []
        if count:
            self._context = multiprocessing.get_context("fork")
            self._counts = self._context.Array("q", count * len(_SHARED_COUNTS), lock=False)

    def start(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        provider_factory: ProviderFactory,
        issue_id: int,
        clock: Clock,
        config: SendConfig,
        worker_id: str | None,
    ) -> None:
        for n in range(self.count):
            receive, send = self._context.Pipe(duplex=False)
            name = f"{worker_id}/{n + 1}" if worker_id else None
            process = self._context.Process(
                target=_helper_main,
                args=(send, self._counts, n, sessions, settings, provider_factory, issue_id,
                      clock, config, name),
                name=f"send-helper-{n + 1}",
                daemon=True,
            )  # fmt: skip
            process.start()
            send.close()
            self.processes.append(process)
            self._pipes.append(receive)

    def wrap(self, progress: ProgressCallback | None) -> ProgressCallback | None:
        """The callback sees this process's counts plus the helpers' (shared memory)."""
        if progress is None or not self.count:
            return progress

        def combined(own: Progress) -> None:
            total = Progress(total=own.total, done_before=own.done_before, started=own.started)
            for name in _SHARED_COUNTS:
                setattr(total, name, getattr(own, name) + self._sum(name))
            progress(total)

        return combined

    def _sum(self, name: str) -> int:
        index, width = _SHARED_COUNTS.index(name), len(_SHARED_COUNTS)
        return sum(self._counts[n * width + index] for n in range(self.count))

    def join(self, stop: threading.Event) -> None:
        """Wait for every helper; if this process was told to stop, tell them too (SIGTERM:
        they finish and record their batches in flight)."""
        for process, pipe in zip(self.processes, self._pipes, strict=True):
            while process.is_alive():
                if stop.is_set() and process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)
                process.join(0.05)
            if pipe.poll():
                kind, detail = pipe.recv()
                if kind == "error":
                    self._errors.append(detail)
                elif detail and self.paused_reason is None:
                    self.paused_reason = detail
            elif process.exitcode != 0:
                self._errors.append(f"exit code {process.exitcode}")
            pipe.close()
        if self._errors:
            raise RuntimeError(f"a sending process failed: {self._errors[0]}")

    def add_to(self, own: Progress) -> Progress:
        if self.count:
            for name in _SHARED_COUNTS:
                setattr(own, name, getattr(own, name) + self._sum(name))
        return own


def _stop_when_orphaned(stop: threading.Event, interval_s: float = 0.2) -> None:
    """A helper whose parent died (SIGKILL of `issue send`) finishes its batches in flight,
    records them, and exits, instead of sending on unsupervised."""
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(interval_s):
            if os.getppid() != parent:
                log.warning("the sending process that started this helper is gone; stopping")
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _helper_main(
    pipe: Any,
    counts: Any,
    slot: int,
    sessions: sessionmaker[Session],
    settings: Settings,
    provider_factory: ProviderFactory,
    issue_id: int,
    clock: Clock,
    config: SendConfig,
    worker_id: str | None,
) -> None:
    """A forked helper: fresh connections and provider, the same loop, counts in shared memory."""
    stop = threading.Event()  # SIGTERM from the parent (or SIGINT from a terminal) sets it
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _stop_when_orphaned(stop)
    bind = sessions.kw.get("bind")
    if bind is not None:
        bind.dispose(close=False)  # the parent's pooled connections stay the parent's
    width = len(_SHARED_COUNTS)

    def publish(progress: Progress) -> None:
        for index, name in enumerate(_SHARED_COUNTS):
            counts[slot * width + index] = getattr(progress, name)

    provider = provider_factory()
    try:
        sender = Sender(
            sessions,
            settings,
            provider,
            clock,
            config,
            worker_id=worker_id or default_worker_id(),
            stop=stop,
            progress=publish,
        )
        sender.run(issue_id)
        publish(sender.progress)
        pipe.send(("done", sender.paused_reason))
    except BaseException as err:
        log.exception("sending process failed")
        pipe.send(("error", repr(err)))
    finally:
        provider.close()
        pipe.close()
