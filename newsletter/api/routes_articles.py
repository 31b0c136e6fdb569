"""Articles: import (a JSON body in the article import format), list by date, show."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from newsletter.accounts import audit
from newsletter.articles.ingest import RawRecord, import_records
from newsletter.articles.queries import articles_between, find_article
from newsletter.articles.schema import article_to_dict
from newsletter.errors import UsageError
from newsletter.types import CONTENT_LANGUAGES

from .deps import Editor, IdempotencyKey, Reader, RuntimeDep, unit
from .schemas import ArticleImportOut, ArticleRef, ArticleRow

router = APIRouter(prefix="/articles", tags=["articles"])

SOURCE = "request body"
ARTICLE_DOC = "docs/articles.md"


@router.post(
    "",
    response_model=ArticleImportOut,
    summary="Import articles",
    description=(
        "One article object or an array of them, in the article import format "
        f"({ARTICLE_DOC}). Valid articles are kept even when others are rejected; each "
        "rejected one is listed with its field and problem, in the command line's words."
    ),
)
def import_articles(
    runtime: RuntimeDep,
    actor: Editor,
    articles: Annotated[
        list[dict[str, Any]] | dict[str, Any],
        Body(description="Article objects (import format)", max_length=10_000),
    ],
    key: IdempotencyKey = None,
) -> Any:
    # The body is already parsed JSON: the records a JSON file of articles decodes to.
    items = articles if isinstance(articles, list) else [articles]
    records = [RawRecord(position, value) for position, value in enumerate(items, start=1)]
    report = import_records(runtime.sessions, records, SOURCE, runtime.clock)
    data = report.to_dict()
    with unit(runtime) as session:
        audit.record(
            session, runtime.clock, actor, "articles.import",
            after={k: data[k] for k in ("imported", "updated", "unchanged", "rejected")},
        )  # fmt: skip
    return data


def _headline(article: Any) -> str:
    for lang in CONTENT_LANGUAGES:
        content = article.content(lang)
        if content is not None:
            return str(content.title)
    return ""


@router.get("", response_model=list[ArticleRow], summary="Articles, newest first")
def list_articles(
    runtime: RuntimeDep,
    actor: Reader,
    day: Annotated[
        str | None,
        Query(
            alias="date",
            pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            description="Only this local day (NEWSLETTER_TIMEZONE), YYYY-MM-DD",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Any:
    tz = runtime.settings.timezone
    start = end = None
    if day is not None:
        try:
            chosen = date.fromisoformat(day)
        except ValueError:
            raise UsageError(f"date: {day!r} is not a real date: expected YYYY-MM-DD") from None
        if chosen >= date(9999, 12, 31):
            return []  # no article is that late, and the day after cannot be written
        start = datetime.combine(chosen, datetime.min.time(), tzinfo=tz)
        end = datetime.combine(chosen + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    with unit(runtime) as session:
        return [
            {
                "id": a.external_id,
                "published_at": a.published_at.astimezone(tz).isoformat(),
                "importance": a.importance,
                "languages": [c.language for c in a.contents],
                "title": _headline(a),
            }
            for a in articles_between(session, start, end, limit)
        ]


@router.get(
    "/{article_id}",
    response_model=dict[str, Any],
    summary="One article, in the import format",
)
def show_article(article_id: ArticleRef, runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        return article_to_dict(find_article(session, article_id))
