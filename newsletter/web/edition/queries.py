"""What the public may see: sent issues only, and of them only the articles not excluded.

Every read of the web edition goes through here, so the rule is written once: an issue is
public when it reached readers (`sent`, or `sent_with_failures`); an article is public when it
is in a public issue and the editor did not exclude it from that issue. The texts are the
snapshots frozen when the issue was sent (the live article when an old issue has none).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session

from newsletter.db.models import Article, Issue, IssueArticle, IssueOverride, MailingList
from newsletter.db.snapshots import article_to_dict
from newsletter.types import IssueStatus
from newsletter.web.edition.model import WebArticle, web_article

PUBLISHED = (IssueStatus.SENT.value, IssueStatus.SENT_WITH_FAILURES.value)
EXCLUDE = "exclude"  # newsletter.issues.overrides.EXCLUDE


@dataclass(frozen=True, slots=True)
class IssueRef:
    """A public issue: enough to link to it and to know when it changed."""

    id: int
    list_slug: str
    list_name: str
    issue_date: date
    sent_at: datetime | None
    list_id: int


@dataclass(frozen=True, slots=True)
class Headline:
    issue: IssueRef
    article_count: int
    first: WebArticle | None


def _published() -> ColumnElement[bool]:
    return Issue.status.in_(PUBLISHED)


def _not_excluded() -> ColumnElement[bool]:
    return ~exists().where(
        IssueOverride.list_id == Issue.list_id,
        IssueOverride.issue_date == Issue.issue_date,
        IssueOverride.article_id == IssueArticle.article_id,
        IssueOverride.action == EXCLUDE,
    )


_REF_COLUMNS = (
    Issue.id,
    MailingList.slug,
    MailingList.name,
    Issue.issue_date,
    Issue.sent_at,
    Issue.list_id,
)


def _refs(rows: Iterable[Any]) -> list[IssueRef]:
    return [IssueRef(*row) for row in rows]


def _ref_query() -> Any:
    return (
        select(*_REF_COLUMNS).join(MailingList, MailingList.id == Issue.list_id).where(_published())
    )


def public_lists(session: Session) -> list[tuple[str, str]]:
    """(slug, name) of every list with at least one public issue, by slug."""
    rows = session.execute(
        select(MailingList.slug, MailingList.name)
        .where(exists().where(Issue.list_id == MailingList.id, _published()))
        .order_by(MailingList.slug)
    ).all()
    return [(slug, name) for slug, name in rows]


def find_issue(session: Session, slug: str, issue_date: date) -> IssueRef | None:
    row = session.execute(
        _ref_query().where(MailingList.slug == slug, Issue.issue_date == issue_date)
    ).first()
    return IssueRef(*row) if row else None


def neighbours(session: Session, ref: IssueRef) -> tuple[IssueRef | None, IssueRef | None]:
    """The public issues of the same list just before and just after `ref`."""
    same_list = _ref_query().where(MailingList.slug == ref.list_slug)
    before = session.execute(
        same_list.where(Issue.issue_date < ref.issue_date).order_by(Issue.issue_date.desc())
    ).first()
    after = session.execute(
        same_list.where(Issue.issue_date > ref.issue_date).order_by(Issue.issue_date)
    ).first()
    return (IssueRef(*before) if before else None, IssueRef(*after) if after else None)


def _articles_query(issue_ids: list[int]) -> Any:
    return (
        select(IssueArticle.issue_id, IssueArticle.article_id, IssueArticle.snapshot, Article)
        .join(Issue, Issue.id == IssueArticle.issue_id)
        .join(Article, Article.id == IssueArticle.article_id)
        .where(IssueArticle.issue_id.in_(issue_ids), _published(), _not_excluded())
        .order_by(IssueArticle.issue_id, IssueArticle.position)
    )


def _as_web(article_id: int, snapshot: dict[str, Any] | None, live: Article) -> WebArticle | None:
    return web_article(article_id, snapshot or article_to_dict(live))


def issue_articles(session: Session, issue_id: int) -> list[WebArticle]:
    """The public articles of one issue, in the issue's order, as frozen when it was sent."""
    found = []
    for _issue_id, article_id, snapshot, live in session.execute(_articles_query([issue_id])):
        article = _as_web(article_id, snapshot, live)
        if article is not None:
            found.append(article)
    return found


def latest_issues(session: Session) -> list[IssueRef]:
    """The most recent public issue of each list, by list slug."""
    newest = (
        select(Issue.list_id, func.max(Issue.issue_date).label("day"))
        .where(_published())
        .group_by(Issue.list_id)
        .subquery()
    )
    rows = session.execute(
        _ref_query()
        .join(newest, and_(newest.c.list_id == Issue.list_id, newest.c.day == Issue.issue_date))
        .order_by(MailingList.slug)
    ).all()
    return _refs(rows)


def edition_version(session: Session, slug: str | None = None) -> tuple[int, int, str]:
    """Changes whenever an issue becomes public (or stops being): count, newest id and time."""
    query = select(func.count(Issue.id), func.max(Issue.id), func.max(Issue.sent_at)).where(
        _published()
    )
    if slug is not None:
        query = query.join(MailingList, MailingList.id == Issue.list_id).where(
            MailingList.slug == slug
        )
    count, newest, sent = session.execute(query).one()
    return int(count), int(newest or 0), str(sent)


def count_issues(session: Session, slug: str | None = None) -> int:
    query = _ref_query().with_only_columns(func.count(Issue.id))
    if slug is not None:
        query = query.where(MailingList.slug == slug)
    return int(session.scalar(query) or 0)


def issue_page(
    session: Session, offset: int, limit: int, slug: str | None = None
) -> list[IssueRef]:
    """One page of public issues, newest first (then by list)."""
    query = _ref_query()
    if slug is not None:
        query = query.where(MailingList.slug == slug)
    rows = session.execute(
        query.order_by(Issue.issue_date.desc(), MailingList.slug, Issue.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return _refs(rows)


def headlines(session: Session, refs: list[IssueRef]) -> list[Headline]:
    """Each issue's public article count and first public article (the day's headline)."""
    ids = [ref.id for ref in refs]
    if not ids:
        return []
    counts = dict(
        session.execute(
            select(IssueArticle.issue_id, func.count())
            .join(Issue, Issue.id == IssueArticle.issue_id)
            .where(IssueArticle.issue_id.in_(ids), _not_excluded())
            .group_by(IssueArticle.issue_id)
        ).all()
    )
    first_position = (
        select(IssueArticle.issue_id, func.min(IssueArticle.position).label("position"))
        .join(Issue, Issue.id == IssueArticle.issue_id)
        .where(IssueArticle.issue_id.in_(ids), _not_excluded())
        .group_by(IssueArticle.issue_id)
        .subquery()
    )
    firsts: dict[int, WebArticle | None] = {}
    rows = session.execute(
        select(IssueArticle.issue_id, IssueArticle.article_id, IssueArticle.snapshot, Article)
        .join(Article, Article.id == IssueArticle.article_id)
        .join(
            first_position,
            and_(
                first_position.c.issue_id == IssueArticle.issue_id,
                first_position.c.position == IssueArticle.position,
            ),
        )
    )
    for issue_id, article_id, snapshot, live in rows:
        firsts[issue_id] = _as_web(article_id, snapshot, live)
    return [Headline(ref, int(counts.get(ref.id, 0)), firsts.get(ref.id)) for ref in refs]


@dataclass(frozen=True, slots=True)
class PublicArticle:
    article: WebArticle
    issues: list[IssueRef]  # newest first

    @property
    def last_published(self) -> datetime | None:
        times = [ref.sent_at for ref in self.issues if ref.sent_at is not None]
        return max(times) if times else None


def appearances(session: Session, article_id: int) -> list[IssueRef]:
    """The public issues an article appeared in (not excluded from), newest first."""
    rows = session.execute(
        _ref_query()
        .join(IssueArticle, IssueArticle.issue_id == Issue.id)
        .where(IssueArticle.article_id == article_id, _not_excluded())
        .order_by(Issue.issue_date.desc(), MailingList.slug)
    ).all()
    return _refs(rows)


def public_article(session: Session, article_id: int) -> PublicArticle | None:
    """The article as its latest public issue froze it; None when it was never published."""
    refs = appearances(session, article_id)
    if not refs:
        return None
    row = session.execute(
        select(IssueArticle.snapshot, Article)
        .join(Article, Article.id == IssueArticle.article_id)
        .where(IssueArticle.issue_id == refs[0].id, IssueArticle.article_id == article_id)
    ).one()
    article = _as_web(article_id, row[0], row[1])
    return PublicArticle(article, refs) if article is not None else None


def feed_issues(session: Session, slug: str, limit: int) -> list[IssueRef]:
    return issue_page(session, 0, limit, slug)


def sitemap_entries(session: Session) -> tuple[list[IssueRef], list[tuple[int, datetime | None]]]:
    """Every public issue, and every public article with the time it was last published."""
    issues = _refs(
        session.execute(_ref_query().order_by(Issue.issue_date.desc(), MailingList.slug)).all()
    )
    articles = session.execute(
        select(IssueArticle.article_id, func.max(Issue.sent_at))
        .join(Issue, Issue.id == IssueArticle.issue_id)
        .where(_published(), _not_excluded())
        .group_by(IssueArticle.article_id)
        .order_by(IssueArticle.article_id)
    ).all()
    return issues, [(int(a), sent) for a, sent in articles]
