"""Engagement: an issue's reader clicks and opens (JSON and CSV) and a list's 30-issue trend,
the same numbers as `newsletter issue stats --json` and `newsletter lists trends --json`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel

from newsletter.engagement.export import engagement_csv
from newsletter.engagement.stats import issue_engagement, list_trends
from newsletter.issues.assembly import get_issue
from subscribers.lists import get_list

from .deps import Reader, RuntimeDep, unit

router = APIRouter(tags=["engagement"])

IssueRef = Annotated[
    str,
    Path(
        pattern=r"^([0-9]{1,9}|([a-z0-9][a-z0-9-]{0,63}:)?[0-9]{4}-[0-9]{2}-[0-9]{2})$",
        description="An id, YYYY-MM-DD (the list `daily`) or slug:YYYY-MM-DD",
        examples=["daily:2026-06-13"],
    ),
]
SlugPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", examples=["daily"])]
Lang = Annotated[Literal["ja", "en"], Query(description="Language of article titles and notes")]


class VariantClicksOut(BaseModel):
    variant: str
    recipients: int
    tracked_recipients: int
    clicks: int
    unique_clickers: int
    ctr: float | None


class ArticleClicksOut(BaseModel):
    position: int
    article_id: int
    ref: str
    title: str
    clicks: int
    unique_clickers: int
    ctr: float | None
    clicks_by_variant: dict[str, int]
    unique_by_variant: dict[str, int]
    clicks_by_kind: dict[str, int]


class OpenStatsOut(BaseModel):
    pixel: bool
    reader_opens: int
    unique_openers: int
    open_rate: float | None
    apple_mpp: int
    proxy: int
    machine: int
    automated_share: float | None
    reliability: str


class IssueEngagementOut(BaseModel):
    """Rates are fractions of tracked recipients (None when nobody was tracked)."""

    issue_id: int
    list: str
    date: date
    status: str
    language: str
    click_tracking: bool
    recipients: int
    tracked_recipients: int
    untracked_recipients: int
    reader_clicks: int
    unique_clickers: int
    ctr: float | None
    other_clicks: int
    machine_clicks: int
    machine_by_reason: dict[str, int]
    variants: list[VariantClicksOut]
    articles: list[ArticleClicksOut]
    opens: OpenStatsOut | None
    notes: list[str]


class IssueTrendOut(BaseModel):
    issue_id: int
    date: date
    recipients: int
    tracked_recipients: int
    reader_clicks: int
    unique_clickers: int
    ctr: float | None
    top_article: str | None
    top_article_clickers: int


class ListTrendsOut(BaseModel):
    list: str
    name: str
    language: str
    issues: list[IssueTrendOut]


@router.get(
    "/issues/{ref}/engagement",
    response_model=IssueEngagementOut,
    summary="Reader clicks per article and variant, machine clicks apart, opens",
)
def engagement(ref: IssueRef, runtime: RuntimeDep, actor: Reader, lang: Lang = "en") -> Any:
    with unit(runtime) as session:
        return issue_engagement(session, get_issue(session, ref), lang).to_dict()


@router.get(
    "/issues/{ref}/engagement.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="Clicks per article as CSV (UTF-8)",
)
def engagement_as_csv(
    ref: IssueRef, runtime: RuntimeDep, actor: Reader, lang: Lang = "en"
) -> Response:
    with unit(runtime) as session:
        stats = issue_engagement(session, get_issue(session, ref), lang)
    name = f"engagement-{stats.list}-{stats.date.isoformat()}.csv"
    return Response(
        engagement_csv(stats).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/lists/{slug}/engagement-trends",
    response_model=ListTrendsOut,
    summary="A list's last 30 sent issues: recipients, click-through rate, top article",
)
def engagement_trends(slug: SlugPath, runtime: RuntimeDep, actor: Reader, lang: Lang = "en") -> Any:
    with unit(runtime) as session:
        return list_trends(session, get_list(session, slug), lang).to_dict()
