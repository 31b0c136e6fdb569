"""What editors read about an issue's engagement: clicks per article, variant and link kind,
machine clicks kept apart, opens with how far to trust them, and a list's trend.

Every number is a tally (`newsletter.engagement.tally`) of raw events plus what retention kept,
so an old issue shows the same numbers after its raw events are purged. Rates are per tracked
recipient: readers who switched tracking off (or lists that do not track) cannot be counted, so
they are left out of the denominator rather than counted as "did not click".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from newsletter.db.models import (
    Delivery,
    Issue,
    IssueArticle,
    MailingList,
    SendBatch,
    delivery_status,
)
from newsletter.engagement.tally import (
    ALL,
    AUTOMATED_SOURCES,
    CLICK,
    MACHINE_CLICK,
    MACHINE_REASONS,
    OPEN,
    PROXY_OPEN,
    Tally,
    combined_tallies,
    summed,
    value,
)
from newsletter.errors import ValidationError
from newsletter.render.i18n import keyed_messages
from newsletter.types import VARIANTS, DeliveryStatus, IssueStatus

LANGUAGES = ("ja", "en")
LINK_KINDS = ("article", "source", "related")
TREND_ISSUES = 30
# Issues whose send has begun: they have recipients to count.
SENT_STATUSES = (
    IssueStatus.SENDING,
    IssueStatus.PAUSED,
    IssueStatus.SENT,
    IssueStatus.SENT_WITH_FAILURES,
    IssueStatus.FAILED,
)


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValidationError(f"lang: {language!r} is not a language here; expected ja or en")
    return language


def rate(part: int, whole: int) -> float | None:
    """A share in [0, 1], 4 decimals; None when there is nobody to divide by."""
    return round(part / whole, 4) if whole else None


def percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def _words() -> dict[str, dict[str, str]]:
    return keyed_messages("engagement")


@dataclass(frozen=True, slots=True)
class VariantClicks:
    variant: str
    recipients: int
    tracked_recipients: int
    clicks: int
    unique_clickers: int
    ctr: float | None


@dataclass(frozen=True, slots=True)
class ArticleClicks:
    """One article of the issue, in issue order (`position` from 1)."""

    position: int
    article_id: int
    ref: str  # the article's id in the import format
    title: str
    clicks: int
    unique_clickers: int
    ctr: float | None
    clicks_by_variant: dict[str, int]
    unique_by_variant: dict[str, int]
    clicks_by_kind: dict[str, int]


@dataclass(frozen=True, slots=True)
class OpenStats:
    """Pixel fetches. Only readers' fetches count as opens; the rest are shown beside them."""

    pixel: bool  # the list uses the open pixel
    reader_opens: int
    unique_openers: int
    open_rate: float | None
    apple_mpp: int
    proxy: int
    machine: int
    automated_share: float | None  # of all pixel fetches, those that say nothing of reading
    reliability: str  # a plain sentence in the editor's language


@dataclass(frozen=True, slots=True)
class IssueEngagement:
    issue_id: int
    list: str
    date: date
    status: str
    language: str
    click_tracking: bool
    recipients: int  # accepted deliveries
    tracked_recipients: int  # of them, with tracked links (the denominator of every rate)
    untracked_recipients: int  # switched tracking off, or sent before the list tracked
    reader_clicks: int
    unique_clickers: int
    ctr: float | None
    other_clicks: int  # reader clicks on links that are not an article's (web version, ...)
    machine_clicks: int
    machine_by_reason: dict[str, int]
    variants: list[VariantClicks]
    articles: list[ArticleClicks]
    opens: OpenStats | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["date"] = self.date.isoformat()
        return data


def _title(snapshot: dict[str, Any] | None, language: str) -> tuple[str, str]:
    """(import id, title in `language`, else the other language's) from the issue's snapshot."""
    snapshot = snapshot or {}
    content = snapshot.get("content") or {}
    for lang in (language, "en" if language == "ja" else "ja"):
        title = (content.get(lang) or {}).get("title")
        if title:
            return str(snapshot.get("id", "")), str(title)
    return str(snapshot.get("id", "")), ""


def _issue_articles(session: Session, issue_id: int) -> list[tuple[int, int, Any]]:
    return list(
        session.execute(
            select(IssueArticle.position, IssueArticle.article_id, IssueArticle.snapshot)
            .where(IssueArticle.issue_id == issue_id)
            .order_by(IssueArticle.position)
        )
    )


def _recipients(session: Session, issue_ids: list[int]) -> dict[tuple[int, str], tuple[int, int]]:
    """(issue, variant) -> (accepted deliveries, of them tracked), counted by the database."""
    accepted = delivery_status() == DeliveryStatus.ACCEPTED.value
    rows = session.execute(
        select(
            Delivery.issue_id,
            Delivery.variant,
            func.count(),
            func.coalesce(func.sum(case((Delivery.tracked.is_(True), 1), else_=0)), 0),
        )
        .outerjoin(SendBatch, SendBatch.id == Delivery.batch_id)
        .where(Delivery.issue_id.in_(issue_ids), accepted)
        .group_by(Delivery.issue_id, Delivery.variant)
    )
    return {(i, v): (int(n), int(t)) for i, v, n, t in rows}


def _article_keys(tally: Tally, metric: str, variant: str, article_id: int, kind: str) -> list:  # type: ignore[type-arg]
    return [k for k in tally if k[0] == metric and k[1] == variant and k[2] == article_id
            and k[3] == kind]  # fmt: skip


def _opens(tally: Tally, tracked: int, pixel: bool, language: str) -> OpenStats | None:
    reader, openers = value(tally, (OPEN, ALL, 0, ALL, 0))
    automated = {s: value(tally, (PROXY_OPEN, ALL, 0, s, 0))[0] for s in AUTOMATED_SOURCES}
    fetches = reader + sum(automated.values())
    if not pixel and not fetches:
        return None
    share = rate(sum(automated.values()), fetches)
    words = _words()
    if share is None:
        note = words["reliability_none"][language]
    else:
        note = words["reliability"][language].format(percent=percent(share))
    return OpenStats(
        pixel=pixel,
        reader_opens=reader,
        unique_openers=openers,
        open_rate=rate(openers, tracked),
        apple_mpp=automated["apple_mpp"],
        proxy=automated["proxy"],
        machine=automated["machine"],
        automated_share=share,
        reliability=note,
    )


def issue_engagement(session: Session, issue: Issue, language: str = "en") -> IssueEngagement:
    """The engagement statistics of one issue, titles and sentences in `language`."""
    check_language(language)
    mailing_list = session.get_one(MailingList, issue.list_id)
    tally = combined_tallies(session, [issue.id]).get(issue.id, {})
    by_variant = _recipients(session, [issue.id])
    recipients = sum(n for n, _ in by_variant.values())
    tracked = sum(t for _, t in by_variant.values())
    clicks, clickers = value(tally, (CLICK, ALL, 0, ALL, 0))

    variants = []
    for v in VARIANTS:
        n_recipients, n_tracked = by_variant.get((issue.id, v), (0, 0))
        v_clicks, v_people = value(tally, (CLICK, v, 0, ALL, 0))
        if n_recipients or v_clicks:
            variants.append(
                VariantClicks(v, n_recipients, n_tracked, v_clicks, v_people,
                              rate(v_people, n_tracked))
            )  # fmt: skip

    articles = []
    for position, article_id, snapshot in _issue_articles(session, issue.id):
        ref, title = _title(snapshot, language)
        a_clicks, a_people = summed(tally, _article_keys(tally, CLICK, ALL, article_id, ALL))
        per_variant = {
            v: summed(tally, _article_keys(tally, CLICK, v, article_id, ALL)) for v in VARIANTS
        }
        per_kind = {
            k: sum(
                summed(tally, _article_keys(tally, CLICK, v, article_id, k))[0] for v in VARIANTS
            )
            for k in LINK_KINDS
        }
        articles.append(
            ArticleClicks(
                position=position,
                article_id=article_id,
                ref=ref,
                title=title,
                clicks=a_clicks,
                unique_clickers=a_people,
                ctr=rate(a_people, tracked),
                clicks_by_variant={v: n for v, (n, _) in per_variant.items()},
                unique_by_variant={v: p for v, (_, p) in per_variant.items()},
                clicks_by_kind=per_kind,
            )
        )
    machine = {r: value(tally, (MACHINE_CLICK, ALL, 0, r, 0))[0] for r in MACHINE_REASONS}
    words = _words()
    notes = []
    if recipients and tracked < recipients:
        notes.append(words["untracked_note"][language].format(count=recipients - tracked))
    return IssueEngagement(
        issue_id=issue.id,
        list=mailing_list.slug,
        date=issue.issue_date,
        status=str(issue.status),
        language=language,
        click_tracking=bool(mailing_list.click_tracking),
        recipients=recipients,
        tracked_recipients=tracked,
        untracked_recipients=recipients - tracked,
        reader_clicks=clicks,
        unique_clickers=clickers,
        ctr=rate(clickers, tracked),
        other_clicks=clicks - sum(a.clicks for a in articles),
        machine_clicks=sum(machine.values()),
        machine_by_reason=machine,
        variants=variants,
        articles=articles,
        opens=_opens(tally, tracked, bool(mailing_list.open_tracking), language),
        notes=notes,
    )


# --- a list's trend -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssueTrend:
    issue_id: int
    date: date
    recipients: int
    tracked_recipients: int
    reader_clicks: int
    unique_clickers: int
    ctr: float | None
    top_article: str | None  # the title with the most unique clickers
    top_article_clickers: int


@dataclass(frozen=True, slots=True)
class ListTrends:
    list: str
    name: str
    language: str
    issues: list[IssueTrend]  # oldest first

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for row in data["issues"]:
            row["date"] = row["date"].isoformat()
        return data


def list_trends(
    session: Session, mailing_list: MailingList, language: str = "en", limit: int = TREND_ISSUES
) -> ListTrends:
    """The list's last `limit` sent issues, oldest first: recipients, CTR, the top article."""
    check_language(language)
    issues = list(
        session.execute(
            select(Issue.id, Issue.issue_date)
            .where(Issue.list_id == mailing_list.id, Issue.status.in_(SENT_STATUSES))
            .order_by(Issue.issue_date.desc())
            .limit(limit)
        )
    )
    ids = [i for i, _ in issues]
    tallies = combined_tallies(session, ids, detail=False) if ids else {}
    recipients = _recipients(session, ids) if ids else {}
    titles: dict[tuple[int, int], Any] = {}
    if ids:
        for issue_id, article_id, snapshot in session.execute(
            select(IssueArticle.issue_id, IssueArticle.article_id, IssueArticle.snapshot).where(
                IssueArticle.issue_id.in_(ids)
            )
        ):
            titles[issue_id, article_id] = snapshot
    rows = []
    for issue_id, issue_date in reversed(issues):
        tally = tallies.get(issue_id, {})
        total = sum(n for (i, _), (n, _) in recipients.items() if i == issue_id)
        tracked = sum(t for (i, _), (_, t) in recipients.items() if i == issue_id)
        clicks, people = value(tally, (CLICK, ALL, 0, ALL, 0))
        per_article: dict[tuple[int, int], int] = {}
        for (metric, variant, article_id, kind, position), (_, p) in tally.items():
            if metric == CLICK and variant == ALL and kind == ALL and article_id:
                key = (article_id, position)
                per_article[key] = per_article.get(key, 0) + p
        top = None
        top_people = 0
        if per_article:
            (article_id, _), top_people = max(
                per_article.items(), key=lambda item: (item[1], -item[0][1])
            )
            if top_people:
                top = _title(titles.get((issue_id, article_id)), language)[1] or str(article_id)
        rows.append(
            IssueTrend(issue_id, issue_date, total, tracked, clicks, people, rate(people, tracked),
                       top, top_people)
        )  # fmt: skip
    return ListTrends(mailing_list.slug, mailing_list.name, language, rows)
