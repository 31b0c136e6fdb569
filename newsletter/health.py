"""`newsletter health`: is the system able to send this morning's issue, and did it?

Each check answers ok, degraded (works, but a person should look) or failing (cannot send).
The command's exit code is the worst answer: 0 ok, 1 degraded, 2 failing, so a monitor
(cron + mail, Kubernetes probe, Nagios) can act on it without parsing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from newsletter.catchup import CatchupAction, decide_catchup
from newsletter.clock import Clock
from newsletter.config import MIN_SECRET_KEY_CHARS, Settings, dkim_private_key_bytes
from newsletter.db.migrate import current_revision, head_revision
from newsletter.db.models import Issue, MailingList, Meta, SendBatch
from newsletter.db.session import SQLITE_PAGE_SIZE, check_connection, make_engine
from newsletter.delivery.preflight import preflight, settings_problems
from newsletter.errors import NewsletterError, SecretKeyError
from newsletter.heartbeat import HEARTBEAT_INTERVAL, HEARTBEAT_KEY
from newsletter.providers import dkim_dns
from newsletter.providers.factory import make_provider
from newsletter.schedule import schedule_for
from newsletter.types import BatchStatus, IssueStatus

STUCK_AFTER = timedelta(minutes=15)  # a `sending` issue with no batch progress for this long
HEARTBEAT_STALE = HEARTBEAT_INTERVAL * 3
OVERDUE_AFTER = timedelta(minutes=15)  # today's issue still not started this long after its time


class Level(IntEnum):
    OK = 0
    DEGRADED = 1
    FAILING = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass
class Check:
    name: str
    level: Level
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": str(self.level), "detail": self.detail, **self.data}


@dataclass
class HealthReport:
    checks: list[Check]

    @property
    def level(self) -> Level:
        return max((c.level for c in self.checks), default=Level.OK)

    @property
    def exit_code(self) -> int:
        return int(self.level)

    def to_dict(self) -> dict[str, Any]:
        return {"status": str(self.level), "checks": [c.to_dict() for c in self.checks]}


def check_health(
    settings: Settings,
    clock: Clock,
    *,
    engine: Engine | None = None,
    key_problem: SecretKeyError | None = None,
    provider: bool = False,
    dns_resolver: Any = None,
) -> HealthReport:
    """Run every check. Opens (and disposes) its own engine unless one is given.

    `key_problem` is why the signing key could not be loaded (the settings then have none).
    `provider`: also ask the provider whether it would take a send (the send's preflight:
    SendGrid's key and its scopes, the SMTP login), without sending anything.
    `dns_resolver`: a dnspython Resolver for the DKIM check (default: the system's).
    """
    checks = [_provider(settings, ask=provider), _secret_key(settings, key_problem)]
    if settings.dkim_private_key is not None and settings.dkim_selector:
        checks.append(_dkim(settings, dns_resolver))
    own_engine = engine is None
    try:
        active = engine or make_engine(settings.database_url, create=False)
    except NewsletterError as err:
        return HealthReport([Check("database", Level.FAILING, str(err)), *checks])
    try:
        database = _database(active)
        checks.insert(0, database)
        if database.level is not Level.FAILING:
            with Session(active) as session:
                now = clock.now()
                scheduled = _has_heartbeat(session)
                checks += _lists(session, settings, now, scheduled=scheduled)
                checks.append(_in_doubt(session))
                checks.append(_outcomes(session, now))
                checks.append(_stuck(session, now))
                checks.append(_heartbeat(session, now))
    finally:
        if own_engine:
            active.dispose()
    return HealthReport(checks)


def _database(engine: Engine) -> Check:
    safe_url = engine.url.render_as_string(hide_password=True)
    try:
        check_connection(engine)
        current, head = current_revision(engine), head_revision(engine)
    except NewsletterError as err:
        return Check("database", Level.FAILING, str(err))
    if current != head:
        return Check(
            "database",
            Level.FAILING,
            f"schema at {current or 'nothing'}, code expects {head}: run `newsletter init`",
            {"revision": current, "head": head},
        )
    detail, data = f"{safe_url} (schema {current})", {"revision": current}
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            page_size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        data["page_size"] = page_size
        if page_size < SQLITE_PAGE_SIZE:  # made before new databases got larger pages
            detail += (
                f"; {page_size // 1024} KiB pages: `newsletter compact`, run while nothing else "
                "uses the database, makes planning a large send about a tenth faster"
            )
    return Check("database", Level.OK, detail, data)


def _provider(settings: Settings, *, ask: bool) -> Check:
    """Configured, constructible, and free of settings that would fail every batch; with
    `ask`, the provider itself is asked (no message is sent)."""
    problems = settings_problems(settings)
    if problems:
        return Check("provider", Level.FAILING, f"{settings.provider}: {problems[0]}")
    try:
        provider = make_provider(settings)
        try:
            if ask:
                preflight(settings, provider)
        finally:
            provider.close()
    except NewsletterError as err:
        return Check("provider", Level.FAILING, f"{settings.provider}: {err}")
    detail = settings.provider
    if settings.provider == "outbox":
        detail += f" (writes .eml files to {settings.outbox_dir}: nothing is mailed)"
    return Check("provider", Level.OK, detail, {"provider": settings.provider})


_DKIM_LEVEL = {
    dkim_dns.PUBLISHED: Level.OK,
    dkim_dns.UNREACHABLE: Level.DEGRADED,
    dkim_dns.MISSING: Level.FAILING,
    dkim_dns.MISMATCH: Level.FAILING,
    dkim_dns.REVOKED: Level.FAILING,
}


def _dkim(settings: Settings, resolver: Any) -> Check:
    """The signing key against the one published in DNS (when DNS answers)."""
    try:
        pem = dkim_private_key_bytes(settings)
    except NewsletterError as err:
        return Check("dkim", Level.FAILING, str(err))
    assert pem is not None and settings.dkim_selector
    result = dkim_dns.check_published(
        pem, settings.dkim_selector, settings.dkim_signing_domain, resolver=resolver
    )
    data = {"state": result.state, "record": result.name}
    if result.state != dkim_dns.PUBLISHED:
        data["publish"] = f"v=DKIM1; k=rsa; p={dkim_dns.public_key_value(pem)}"
    return Check("dkim", _DKIM_LEVEL[result.state], result.detail, data)


def _secret_key(settings: Settings, problem: SecretKeyError | None) -> Check:
    """A weak key makes every subscriber link forgeable; a missing one is made on first use."""
    if problem is not None:
        if problem.missing:
            return Check(
                "secret key",
                Level.DEGRADED,
                f"{problem}: the next command creates one; set it on every machine that signs",
            )
        return Check("secret key", Level.FAILING, str(problem))
    weak = [
        n
        for n, key in enumerate(settings.secret_keys, 1)
        if len(key.reveal()) < MIN_SECRET_KEY_CHARS
    ]
    if not settings.secret_keys or weak:
        return Check(
            "secret key",
            Level.FAILING,
            f"key(s) {', '.join(map(str, weak)) or 'none'} shorter than "
            f"{MIN_SECRET_KEY_CHARS} characters: links could be forged",
        )
    count = len(settings.secret_keys)
    detail = "1 key" if count == 1 else f"{count} keys (the first signs; rotation)"
    return Check("secret key", Level.OK, detail, {"keys": count})


def _has_heartbeat(session: Session) -> bool:
    return session.scalar(select(Meta.key).where(Meta.key == HEARTBEAT_KEY)) is not None


def _lists(session: Session, settings: Settings, now: datetime, *, scheduled: bool) -> list[Check]:
    """Each list's last issue; a missed or overdue send only counts once a scheduler has run
    here (before that, sends are by hand: `newsletter run`, `issue send`, the demo)."""
    checks = []
    for mailing_list in session.scalars(select(MailingList).order_by(MailingList.slug)):
        last = session.scalar(
            select(Issue)
            .where(Issue.list_id == mailing_list.id)
            .order_by(Issue.issue_date.desc())
            .limit(1)
        )
        try:
            schedule = schedule_for(settings, mailing_list)
            tz, send_time = schedule.tz, schedule.send_time
            today = now.astimezone(tz).date()
            today_status = last.status if last is not None and last.issue_date == today else None
            decision = decide_catchup(now, tz, send_time, settings.catchup_deadline, today_status)
        except NewsletterError as err:
            checks.append(Check(f"list {mailing_list.slug}", Level.FAILING, str(err)))
            continue
        data: dict[str, Any] = {
            "list": mailing_list.slug,
            "last_issue": last.issue_date.isoformat() if last else None,
            "last_status": last.status if last else None,
            "last_note": last.note if last else None,
        }
        level, detail = Level.OK, "no issue yet"
        if last is not None:
            detail = f"last issue {last.issue_date} is {last.status}"
            if last.note and last.status == IssueStatus.SKIPPED:
                detail += f" ({last.note})"
        if last is not None and last.status == IssueStatus.PAUSED:
            level = Level.DEGRADED
            detail += ": `newsletter issue resume` continues it"
        elif not scheduled:
            detail += "; no schedule has run yet (`newsletter scheduler` sends it daily)"
        elif decision.action is CatchupAction.RUN and now >= decision.send_at + OVERDUE_AFTER:
            level = Level.DEGRADED
            detail += f"; today's issue ({today}) is overdue since {send_time:%H:%M}"
        elif decision.action is CatchupAction.SKIP:
            level = Level.DEGRADED
            detail += (
                f"; today's issue ({today}) was not sent by the deadline "
                f"{settings.catchup_deadline:%H:%M} and no skip is recorded: "
                "is a scheduler running?"
            )
        checks.append(Check(f"list {mailing_list.slug}", level, detail, data))
    return checks


def _in_doubt(session: Session) -> Check:
    rows = session.execute(
        select(SendBatch.issue_id, func.count(), func.sum(SendBatch.size))
        .where(SendBatch.status == BatchStatus.IN_DOUBT)
        .group_by(SendBatch.issue_id)
    ).all()
    if not rows:
        return Check("in-doubt batches", Level.OK, "none")
    issues = {str(issue_id): int(size or 0) for issue_id, _, size in rows}
    batches = sum(count for _, count, _ in rows)
    return Check(
        "in-doubt batches",
        Level.DEGRADED,
        f"{batches} batch(es) may or may not have been sent (issues "
        f"{', '.join(issues)}): provider events settle them automatically; otherwise "
        "`newsletter issue resolve ISSUE --resend|--skip`",
        {"batches": batches, "recipients_by_issue": issues},
    )


def _outcomes(session: Session, now: datetime) -> Check:
    """Sends of the last week that did not reach everyone: failed is failing, with failures
    is degraded, until `newsletter issue retry` sends them again."""
    rows = session.execute(
        select(Issue.id, Issue.status)
        .where(
            Issue.status.in_((IssueStatus.FAILED, IssueStatus.SENT_WITH_FAILURES)),
            Issue.sent_at >= now - timedelta(days=7),
        )
        .order_by(Issue.id)
    ).all()
    failed = [str(i) for i, status in rows if status == IssueStatus.FAILED]
    partial = [str(i) for i, status in rows if status == IssueStatus.SENT_WITH_FAILURES]
    if failed:
        return Check(
            "send outcomes",
            Level.FAILING,
            f"issue(s) {', '.join(failed)} failed for every recipient: fix the cause, then "
            "`newsletter issue retry ISSUE`",
            {"failed": failed, "sent_with_failures": partial},
        )
    if partial:
        return Check(
            "send outcomes",
            Level.DEGRADED,
            f"issue(s) {', '.join(partial)} were sent with failures: "
            "`newsletter issue retry ISSUE --dry-run`",
            {"failed": failed, "sent_with_failures": partial},
        )
    return Check("send outcomes", Level.OK, "the last week's sends reached every recipient")


def _stuck(session: Session, now: datetime) -> Check:
    progress = (
        select(Issue.id, Issue.send_started_at, func.max(SendBatch.updated_at))
        .outerjoin(SendBatch, SendBatch.issue_id == Issue.id)
        .where(Issue.status == IssueStatus.SENDING)
        .group_by(Issue.id, Issue.send_started_at)
    )
    stuck = []
    for issue_id, started, last_batch in session.execute(progress):
        last = max((t for t in (started, last_batch) if t is not None), default=None)
        if last is None or now - last >= STUCK_AFTER:
            stuck.append(issue_id)
    if not stuck:
        return Check("stuck sends", Level.OK, "none")
    minutes = int(STUCK_AFTER.total_seconds() // 60)
    return Check(
        "stuck sends",
        Level.DEGRADED,
        f"issue(s) {', '.join(map(str, stuck))} sending with no progress for {minutes}+ minutes: "
        "is a scheduler or worker running?",
        {"issues": stuck},
    )


def _heartbeat(session: Session, now: datetime) -> Check:
    raw = session.scalar(select(Meta.value).where(Meta.key == HEARTBEAT_KEY))
    if raw is None:  # a fresh installation, or one sending by hand: not a missed send
        return Check(
            "scheduler",
            Level.OK,
            "no scheduler has run here yet: `newsletter scheduler` sends each list daily",
        )
    try:
        beat = json.loads(raw)
        at = datetime.fromisoformat(beat["at"])
    except (ValueError, KeyError, TypeError):
        return Check("scheduler", Level.DEGRADED, f"unreadable heartbeat {raw[:80]!r}")
    age = now - at
    data = {
        "heartbeat_at": beat["at"],
        "owner": beat.get("owner"),
        "age_s": int(age.total_seconds()),
    }
    if beat.get("stopped"):
        return Check(
            "scheduler",
            Level.DEGRADED,
            f"stopped cleanly at {beat['at']} ({beat.get('owner')}); no scheduler since",
            data,
        )
    if age > HEARTBEAT_STALE:
        return Check(
            "scheduler",
            Level.DEGRADED,
            f"last heartbeat {int(age.total_seconds())} s ago from {beat.get('owner')}: "
            "is `newsletter scheduler` running?",
            data,
        )
    next_runs = beat.get("next_runs") or {}
    data["next_runs"] = next_runs
    upcoming = ", ".join(f"{slug} at {when}" for slug, when in sorted(next_runs.items()))
    detail = f"alive ({beat.get('owner')})" + (f"; next: {upcoming}" if upcoming else "")
    return Check("scheduler", Level.OK, detail, data)


def render_text(report: HealthReport, echo: Callable[[str], None]) -> None:
    """One line per check, then the overall level."""
    for check in report.checks:
        echo(f"{str(check.level):<9} {check.name:<18} {check.detail}")
    echo(f"overall: {report.level}")
