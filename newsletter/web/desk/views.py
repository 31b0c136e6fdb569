"""What the desk's pages read: each list's next issue and its state, the candidates with the
selection's explanation, the ledger while sending. Plain data for the templates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from babel.dates import format_datetime
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import Article, Issue, IssueNote, MailingList
from newsletter.delivery.status import send_status
from newsletter.engagement.subject_tests import describe_test, find_test
from newsletter.issues.editorial import candidates
from newsletter.schedule import issue_date_for, local_instant, schedule_for
from newsletter.types import DeliveryStatus, IssueStatus
from newsletter.web.desk.i18n import desk_translator

# The previous issue still needs someone when it ended (or stopped) like this.
LOOK_AGAIN = frozenset(
    {
        IssueStatus.SENDING,
        IssueStatus.PAUSED,
        IssueStatus.SENT_WITH_FAILURES,
        IssueStatus.FAILED,
        IssueStatus.SKIPPED,
    }
)

# The desk's names for an issue's state (the home page's column).
STATE_NOT_BUILT = "not_built"
STATE_APPROVED = "approved"


def issue_state(issue: Issue | None) -> str:
    """not_built, built, approved, sending, paused, sent, sent_with_failures, failed, ..."""
    if issue is None:
        return STATE_NOT_BUILT
    if issue.status == IssueStatus.BUILT and issue.approved_at is not None:
        return STATE_APPROVED
    return str(issue.status)


def local_time(value: datetime, tz: Any, lang: str) -> str:
    pattern = "yyyy年M月d日 H:mm zzz" if lang == "ja" else "MMM d, yyyy, HH:mm zzz"
    return format_datetime(value.astimezone(tz), pattern, tzinfo=tz, locale=lang)


def require_approval(settings: Settings) -> bool:
    """NEWSLETTER_REQUIRE_APPROVAL: the scheduler sends only an approved issue."""
    return settings.require_approval


def find_issue(session: Session, list_id: int, issue_date: date) -> Issue | None:
    return session.scalar(
        select(Issue).where(Issue.list_id == list_id, Issue.issue_date == issue_date)
    )


def attention(
    issue: Issue | None, settings: Settings, now: datetime, send_at: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """What needs an editor: (message key, values) pairs, most urgent first."""
    found: list[tuple[str, dict[str, Any]]] = []
    hours = (send_at - now).total_seconds() / 3600
    if issue is None:
        if hours < 3:
            found.append(("attention_not_built", {}))
        return found
    if (
        issue.status == IssueStatus.BUILT
        and issue.approved_at is None
        and require_approval(settings)
    ):
        found.append(("attention_needs_approval", {}))
    if issue.status == IssueStatus.PAUSED:
        found.append(("attention_paused", {}))
    if issue.status in (IssueStatus.SENT_WITH_FAILURES, IssueStatus.FAILED):
        found.append(("attention_failures", {}))
    if issue.status == IssueStatus.SKIPPED:
        found.append(("attention_skipped", {}))
    return found


def home_rows(
    session: Session, settings: Settings, clock: Clock, lang: str
) -> list[dict[str, Any]]:
    """Each list's next (or current) issue, with its state, send time and what needs doing."""
    now = clock.now()
    rows: list[dict[str, Any]] = []
    for mailing_list in session.scalars(select(MailingList).order_by(MailingList.slug)):
        schedule = schedule_for(settings, mailing_list)
        issue_date = issue_date_for(settings, mailing_list, now)
        send_at = local_instant(issue_date, schedule.send_time, schedule.tz)
        issue = find_issue(session, mailing_list.id, issue_date)
        in_doubt = failed = 0
        if issue is not None and issue.status != IssueStatus.BUILT:
            status = send_status(session, issue.id)
            in_doubt = status.recipients.get(DeliveryStatus.IN_DOUBT, 0)
            failed = status.recipients.get(DeliveryStatus.FAILED, 0)
        notes = attention(issue, settings, now, send_at)
        if in_doubt:
            notes.append(("attention_in_doubt", {"count": in_doubt}))
        recent = session.scalars(
            select(Issue)
            .where(Issue.list_id == mailing_list.id, Issue.issue_date < issue_date)
            .order_by(Issue.issue_date.desc())
            .limit(3)
        ).all()
        if recent and recent[0].status in LOOK_AGAIN:
            label = desk_translator(lang)("state_" + issue_state(recent[0]))
            notes.append(
                ("attention_previous", {"date": recent[0].issue_date.isoformat(), "state": label})
            )
        rows.append(
            {
                "slug": mailing_list.slug,
                "name": mailing_list.name,
                "issue_date": issue_date.isoformat(),
                "issue_id": issue.id if issue is not None else None,
                "state": issue_state(issue),
                "send_at": local_time(send_at, schedule.tz, lang),
                "timezone": str(schedule.tz),
                "articles": len(issue.articles) if issue is not None else 0,
                "approved_by": issue.approved_by if issue is not None else None,
                "failed": failed,
                "attention": notes,
                "recent": [
                    {
                        "issue_date": r.issue_date.isoformat(),
                        "issue_id": r.id,
                        "state": issue_state(r),
                    }
                    for r in recent
                ],
            }
        )
    return rows


@dataclass(frozen=True, slots=True)
class CandidateRow:
    article_id: int
    title_ja: str | None
    title_en: str | None
    importance: int
    published_at: str
    selected: bool
    position: int | None
    pinned: bool
    excluded: bool
    reason_key: str
    reason: str  # the selection's own words (English), beside the translated label


def _reason_key(reason: str) -> str:
    """The selection's reason ("selected #2 (importance 80)", "excluded by editor", ...) as a
    catalog key, so the page says it in the reader's language."""
    if reason.startswith("selected #") and "(" in reason:
        reason = reason[reason.index("(") + 1 :]
    for prefix, key in (
        ("pinned", "reason_pinned"),
        ("excluded", "reason_excluded"),
        ("already sent", "reason_already_sent"),
        ("outside window", "reason_outside_window"),
        ("below cap", "reason_below_cap"),
        ("placed by editor", "reason_placed"),
        ("importance", "reason_importance"),
    ):
        if reason.startswith(prefix):
            return key
    return "reason_other"


def candidate_rows(
    session: Session, settings: Settings, mailing_list: MailingList, issue_date: date, lang: str
) -> tuple[list[CandidateRow], str | None]:
    """Every candidate, chosen first in issue order, with why; and why no issue, if so."""
    selection = candidates(session, settings, mailing_list, issue_date)
    ids = [d.article_id for d in selection.decisions]
    articles = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_(ids))) if ids}
    tz = schedule_for(settings, mailing_list).tz
    rows = []
    for d in selection.decisions:
        article = articles.get(d.article_id)
        ja = article.content("ja") if article else None
        en = article.content("en") if article else None
        rows.append(
            CandidateRow(
                article_id=d.article_id,
                title_ja=ja.title if ja else None,
                title_en=en.title if en else None,
                importance=article.importance if article else 0,
                published_at=local_time(article.published_at, tz, lang) if article else "",
                selected=d.selected,
                position=d.position,
                pinned=d.pinned,
                excluded=d.reason.startswith("excluded"),
                reason_key=_reason_key(d.reason),
                reason=d.reason,
            )
        )
    return rows, selection.reason


def note_of(session: Session, list_id: int, issue_date: date) -> IssueNote | None:
    return session.scalar(
        select(IssueNote).where(IssueNote.list_id == list_id, IssueNote.issue_date == issue_date)
    )


def ledger_view(session: Session, issue: Issue, now: datetime) -> dict[str, Any]:
    """The live ledger: accepted, failed, in doubt, queued, and the rate so far."""
    status = send_status(session, issue.id)
    r = status.recipients
    accepted = r.get(DeliveryStatus.ACCEPTED, 0)
    queued = r.get(DeliveryStatus.QUEUED, 0)
    rate = None
    if status.send_started_at is not None and accepted:
        end = status.sent_at or now
        seconds = max((end - status.send_started_at).total_seconds(), 1.0)
        rate = round(accepted / seconds, 1)
    return {
        "total": status.total,
        "accepted": accepted,
        "failed": r.get(DeliveryStatus.FAILED, 0),
        "in_doubt": r.get(DeliveryStatus.IN_DOUBT, 0),
        "queued": queued,
        "skipped": r.get(DeliveryStatus.SKIPPED, 0),
        "cancelled": r.get(DeliveryStatus.CANCELLED, 0),
        "rate": rate,
        "done_percent": int(100 * status.done / status.total) if status.total else 0,
    }


def subject_test_view(
    session: Session, issue: Issue | None, tz: Any, lang: str
) -> dict[str, Any] | None:
    """The issue's subject-line test for its page: state, when it decides, each arm's results
    (recorded once decided, counts so far before), times in the list's zone."""
    test = find_test(session, issue.id) if issue is not None else None
    if test is None:
        return None
    data = describe_test(session, test)
    for key in ("decide_at", "decided_at"):
        value = getattr(test, key)
        data[key] = local_time(value, tz, lang) if value is not None else None
    return data
