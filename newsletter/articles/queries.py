"""Database reads behind selection and the article commands. Window reads use the
`articles.published_at` index (a range scan), never a Python pass over all articles."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.articles.selection import Candidate
from newsletter.db.models import Article, Issue, IssueArticle
from newsletter.errors import NotFoundError
from newsletter.types import CONTENT_LANGUAGES, IssueStatus

# Issues whose articles reached readers (wholly or partly): never selected again.
WENT_OUT = (
    IssueStatus.SENDING,
    IssueStatus.PAUSED,
    IssueStatus.SENT,
    IssueStatus.SENT_WITH_FAILURES,
    IssueStatus.FAILED,  # frozen, and `issue retry` sends it after the fix
)
# Issues that do not hold a window: the next issue's window reaches back past them.
NO_WINDOW = (IssueStatus.CANCELLED, IssueStatus.SKIPPED)

_CHUNK = 500


def window_candidates(
    session: Session, start: datetime, cutoff: datetime, extra_ids: Collection[int] = ()
) -> list[Candidate]:
    """Articles published in (start, cutoff], plus any the editor named (pinned elsewhere)."""
    columns = (Article.id, Article.external_id, Article.published_at, Article.importance)
    rows = list(
        session.execute(
            select(*columns).where(Article.published_at > start, Article.published_at <= cutoff)
        )
    )
    seen = {row.id for row in rows}
    missing = [i for i in extra_ids if i not in seen]
    if missing:
        rows.extend(session.execute(select(*columns).where(Article.id.in_(missing))))
    return [Candidate(r.id, r.external_id, r.published_at, r.importance) for r in rows]


def sent_before(
    session: Session, list_id: int, issue_date: date, article_ids: Collection[int]
) -> dict[int, date]:
    """article id -> date of the earliest earlier issue of this list that sent it."""
    ids = list(article_ids)
    found: dict[int, date] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = (
            select(IssueArticle.article_id, Issue.issue_date)
            .join(Issue, Issue.id == IssueArticle.issue_id)
            .where(
                Issue.list_id == list_id,
                Issue.issue_date < issue_date,
                Issue.status.in_([s.value for s in WENT_OUT]),
                IssueArticle.article_id.in_(chunk),
            )
            .order_by(Issue.issue_date)
        )
        for article_id, sent_date in session.execute(query):
            found.setdefault(article_id, sent_date)
    return found


def previous_issue(session: Session, list_id: int, issue_date: date) -> Issue | None:
    """The latest earlier issue of the list that holds a window."""
    return session.scalar(
        select(Issue)
        .where(
            Issue.list_id == list_id,
            Issue.issue_date < issue_date,
            Issue.status.not_in([s.value for s in NO_WINDOW]),
        )
        .order_by(Issue.issue_date.desc())
        .limit(1)
    )


def find_article(session: Session, ref: str) -> Article:
    """By the format's `id`; a purely numeric ref that matches no `id` is a database id."""
    article = session.scalar(select(Article).where(Article.external_id == ref))
    if article is None and ref.isdigit():
        article = session.get(Article, int(ref))
    if article is None:
        raise NotFoundError(f"no article {ref!r} (see `newsletter articles list`)")
    return article


def articles_between(
    session: Session, start: datetime | None, end: datetime | None, limit: int
) -> list[Article]:
    """Articles published in [start, end), newest first (either bound may be open)."""
    query = select(Article)
    if start is not None:
        query = query.where(Article.published_at >= start)
    if end is not None:
        query = query.where(Article.published_at < end)
    query = query.order_by(Article.published_at.desc(), Article.id.desc()).limit(limit)
    return list(session.scalars(query))


def headline(article: Article) -> str:
    """The Japanese title if there is one, else the English one."""
    for lang in CONTENT_LANGUAGES:
        content = article.content(lang)
        if content is not None:
            return content.title
    return ""
