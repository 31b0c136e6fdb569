"""The API's request and response bodies: pydantic models, so validation and the OpenAPI
document come from the same code and cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Language = Literal["ja", "en", "both", "both-en"]
Variant = Literal["ja", "en", "both", "both-en"]
Slug = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="A list's slug", examples=["daily"]),
]
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["07:00"])]
TimeZone = Annotated[str, Field(min_length=1, max_length=64, examples=["Asia/Tokyo"])]
Email = Annotated[str, Field(min_length=3, max_length=320, examples=["hanako@example.jp"])]
Name = Annotated[str, Field(max_length=200)]
IsoDate = Annotated[
    str,
    Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", json_schema_extra={"format": "date"},
          examples=["2026-06-13"]),
]  # fmt: skip
ArticleRef = Annotated[str, Field(min_length=1, max_length=200, examples=["2026-06-12-openai-o5"])]


class Closed(BaseModel):
    """Unknown fields are refused: a typo is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class FieldProblem(BaseModel):
    field: str
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=["/api/docs#problem-not-found"])
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


# --- lists ---------------------------------------------------------------------------------


class ListCreate(Closed):
    slug: Slug
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] | None = None
    timezone: TimeZone | None = Field(None, description="IANA zone; null: NEWSLETTER_TIMEZONE")
    send_time: HHMM | None = Field(None, description="Local HH:MM; null: NEWSLETTER_SEND_TIME")
    double_opt_in: bool = True


class ListUpdate(Closed):
    """Only the fields given change; null sets the time zone or send time back to the default."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None
    timezone: TimeZone | None = None
    send_time: HHMM | None = None


class MailingListOut(BaseModel):
    slug: str
    name: str
    description: str | None
    timezone: str | None
    send_time: str | None
    double_opt_in: bool
    created_at: str
    subscriptions: dict[str, int] = Field(description="Subscriptions per status")


# --- subscribers ---------------------------------------------------------------------------


class SubscriberAdd(Closed):
    email: Email
    name: Name | None = None
    language: Language = "ja"
    list: Slug = "daily"
    status: Literal["active", "pending"] = "active"
    send_confirmation: bool = Field(
        False, description="Double opt-in: add as pending and email the confirmation link"
    )


class SubscriberUpdate(Closed):
    name: Name | None = None
    language: Language | None = None
    lists: Annotated[list[Slug], Field(max_length=100)] | None = Field(
        None, description="Every list the subscriber should be active on; others end"
    )
    tracking: bool | None = Field(
        None,
        description="false: record no clicks or opens for this person (their choice); "
        "true: allow again; null: unchanged",
    )
    delete_events: bool = Field(
        False, description="Also delete the clicks and opens recorded for this person so far"
    )


class SubscriptionOut(BaseModel):
    list: str | None
    status: str
    source: str | None
    created_at: str | None
    confirmed_at: str | None
    unsubscribed_at: str | None


class SubscriberOut(BaseModel):
    id: int
    email: str
    name: str | None
    language: str
    attributes: dict[str, Any]
    created_at: str | None
    suppressed: bool
    tracking: bool = Field(description="Clicks and opens may be recorded (false: switched off)")
    subscriptions: list[SubscriptionOut]


class ConfirmationSent(BaseModel):
    email: str = Field(description="Masked")
    list: str
    detail: str


class SubscriptionRow(BaseModel):
    id: int
    email: str
    name: str | None
    language: str
    list: str
    status: str
    source: str | None
    created_at: str | None
    confirmed_at: str | None
    unsubscribed_at: str | None


class SubscriptionPage(BaseModel):
    items: list[SubscriptionRow]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: end")


class Unsubscribe(Closed):
    list: Slug | None = Field(None, description="Only this list; null: every list")


class Suppress(Closed):
    reason: Literal["bounced", "complained", "unsubscribed", "manual"]


class Changed(BaseModel):
    changed: int = Field(description="How many records changed")
    detail: str


class ImportProblem(BaseModel):
    line: int
    email: str | None = None
    outcome: str
    reason: str


class SubscriberImportOut(BaseModel):
    file: str
    encoding: str
    list: str
    rows: int
    imported: int
    updated: int
    unchanged: int
    rejected: int
    suppressed: int
    duplicates: int
    not_reactivated: int
    report: str | None = None
    problems: list[ImportProblem]


class SubscriberStats(BaseModel):
    list: str | None
    total: int
    status: dict[str, int]
    active_by_language: dict[str, int]


# --- articles ------------------------------------------------------------------------------


class ArticleErrorOut(BaseModel):
    source: str
    article: str
    field: str
    problem: str


class ArticleImportOut(BaseModel):
    imported: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[ArticleErrorOut]
    source_errors: list[str]


class ArticleRow(BaseModel):
    id: str
    published_at: str
    importance: int
    languages: list[str]
    title: str


# --- issues --------------------------------------------------------------------------------


class IssueBuild(Closed):
    list: Slug = "daily"
    date: IsoDate | None = Field(None, description="Default: the list's next or current issue")
    rebuild: bool = Field(False, description="Select again (only while the issue is built)")


class IssueArticleOut(BaseModel):
    position: int
    id: str
    pinned: bool
    title: str


class DecisionOut(BaseModel):
    id: str
    selected: bool
    position: int | None
    reason: str


class IssueSummaryOut(BaseModel):
    id: int
    list: str
    date: str
    status: str
    articles: int = Field(description="Articles in the issue")
    approved_by: str | None
    approved_at: str | None
    sent_at: str | None


class IssuePage(BaseModel):
    items: list[IssueSummaryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: end")


class IssueOut(BaseModel):
    id: int
    list: str
    date: str
    status: str
    window_start: str
    cutoff_at: str
    approved_by: str | None = None
    approved_at: str | None = None
    articles: list[IssueArticleOut]


class BuildOut(BaseModel):
    issue: IssueOut | None
    created: bool
    reason: str | None
    explain: list[DecisionOut]


class IssueDetail(BaseModel):
    issue: IssueOut
    explain: list[DecisionOut] = Field(description="Why each candidate is in or out")


class ArticleChoice(Closed):
    article_id: ArticleRef


class Order(Closed):
    article_ids: Annotated[list[ArticleRef], Field(min_length=1, max_length=50)]


class Note(Closed):
    ja: Annotated[str, Field(max_length=4000)] | None = None
    en: Annotated[str, Field(max_length=4000)] | None = None


class TestSend(Closed):
    to: Annotated[list[Email], Field(min_length=1, max_length=20)]
    variant: Variant | Literal["all"] = "all"


class TestSendOut(BaseModel):
    variants: dict[str, dict[str, Any]]


class SendStatusOut(BaseModel):
    issue_id: int
    issue_status: str
    recipients: dict[str, int]
    batches: dict[str, int]
    workers: dict[str, dict[str, int]]
    in_doubt_batches: list[int]
    send_started_at: datetime | None
    sent_at: datetime | None
    total: int


class SendStarted(BaseModel):
    issue_id: int
    status: SendStatusOut
    sending_in: Literal["server", "workers"] = Field(
        description="`server`: this server sends it now; `workers`: `newsletter worker` does"
    )


class RetryOut(BaseModel):
    issue_id: int
    dry_run: bool
    retryable: int
    requeued: int
    kept_failed: int
    reasons: dict[str, int]


class Retry(Closed):
    dry_run: bool = False


class Resolve(Closed):
    choice: Literal["resend", "skip"]


class ResolveOut(BaseModel):
    issue_id: int
    reconciled: int
    requeued: int
    skipped: int


class ExpirePending(Closed):
    days: Annotated[int, Field(ge=1, le=365)] = 7


class IssueStats(BaseModel):
    issue_id: int
    list: str
    date: str
    status: str
    events: dict[str, int] = Field(description="Distinct recipients per metric, from events")
    events_total: int
    ledger: SendStatusOut


class ListStats(BaseModel):
    list: str
    subscribers: SubscriberStats
    issues: list[IssueStats] = Field(description="The most recent issues, newest first")


# --- tokens and audit ----------------------------------------------------------------------


class TokenCreate(Closed):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")]
    role: Literal["viewer", "editor", "admin"]
    expires_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class TokenOut(BaseModel):
    name: str
    role: str
    prefix: str
    state: str
    created_by: str
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class TokenCreated(BaseModel):
    name: str
    role: str
    token: str = Field(description="The secret: shown this once, never stored")
    expires_at: str | None


class AuditEntryOut(BaseModel):
    id: int
    at: str
    actor: str
    role: str
    action: str
    issue_id: int | None
    list_id: int | None
    issue_date: str | None
    subject: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None
