"""Issues: build, show with the selection explained, editorial changes, approval, preview,
test send, send and its controls, status and statistics. Every change goes through
`newsletter.issues.editorial` and `newsletter.delivery.operations`, as on the command line."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.accounts import audit
from newsletter.articles.queries import find_article
from newsletter.db.models import Issue, MailingList
from newsletter.delivery import issue_state, operations
from newsletter.delivery.preflight import preflight
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.status import recipient_status, send_status
from newsletter.errors import UsageError
from newsletter.issues import catalog, editorial
from newsletter.issues.assembly import build_issue, get_issue, load_list
from newsletter.issues.describe import explain, issue_dict, result_dict
from newsletter.issues.variants import as_rendered, ensure_variants
from newsletter.pipeline import send_in_background
from newsletter.preview import preview_slots, send_test_email
from newsletter.providers.factory import make_provider
from newsletter.runtime import Runtime
from newsletter.types import VARIANTS
from newsletter.webhooks.stats import issue_event_stats
from subscribers.audience import is_mailable_address
from subscribers.hashing import EmailHasher
from subscribers.lists import get_list

from .deps import (
    Editor,
    IdempotencyKey,
    Reader,
    RuntimeDep,
    Sender,
    decode_cursor,
    encode_cursor,
    unit,
)
from .schemas import (
    ArticleChoice,
    BuildOut,
    DecisionOut,
    IssueBuild,
    IssueDetail,
    IssuePage,
    IssueStats,
    ListStats,
    Note,
    Order,
    Resolve,
    ResolveOut,
    Retry,
    RetryOut,
    SendStarted,
    SendStatusOut,
    TestSend,
    TestSendOut,
)

router = APIRouter(tags=["issues"])

IssueRef = Annotated[
    str,
    Path(
        pattern=r"^([0-9]{1,9}|([a-z0-9][a-z0-9-]{0,63}:)?[0-9]{4}-[0-9]{2}-[0-9]{2})$",
        description="An id, YYYY-MM-DD (the list `daily`) or slug:YYYY-MM-DD",
        examples=["daily:2026-06-13"],
    ),
]
SlugPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", examples=["daily"])]
DatePath = Annotated[
    str, Path(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", examples=["2026-06-13"], alias="date")
]
VariantPath = Annotated[str, Path(pattern="^(ja|en|both|both-en)$")]
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "font-src https: data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def iso_day(text: str, field: str = "date") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{field}: {text!r} is not a real date: expected YYYY-MM-DD") from None


def _issue(session: Session, ref: str) -> Issue:
    return get_issue(session, ref)


# --- build and show ------------------------------------------------------------------------


@router.post(
    "/issues",
    response_model=BuildOut,
    summary="Build the issue of a list and date (once; `rebuild` selects again)",
)
def build(body: IssueBuild, runtime: RuntimeDep, actor: Editor, key: IdempotencyKey = None) -> Any:
    day = iso_day(body.date) if body.date else None
    with unit(runtime) as session:
        result = build_issue(
            session, runtime.settings, runtime.clock, list_slug=body.list, issue_date=day,
            rebuild=body.rebuild,
        )  # fmt: skip
        data = result_dict(result)
        if result.issue is not None and (result.created or body.rebuild):
            audit.record(
                session, runtime.clock, actor, "issue.build", issue=result.issue,
                after={"articles": [a["id"] for a in data["issue"]["articles"]],
                       "rebuild": body.rebuild},
            )  # fmt: skip
        return data


@router.get("/issues", response_model=IssuePage, summary="Issues, newest first, a page at a time")
def list_issues(
    runtime: RuntimeDep,
    actor: Reader,
    list: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")] = None,
    status: Annotated[
        str | None,
        Query(pattern="^(built|sending|paused|sent|sent_with_failures|failed|cancelled|skipped)$"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Any:
    after = None
    if cursor:
        after = decode_cursor(cursor, lambda v: (date.fromisoformat(str(v[0])), int(v[1])))
    with unit(runtime) as session:
        rows = catalog.list_issues(session, list_slug=list, status=status, after=after, limit=limit)
    items = [row.to_dict() for row in rows]
    next_cursor = (
        encode_cursor([items[-1]["date"], items[-1]["id"]]) if len(rows) == limit else None
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/issues/{ref}", response_model=IssueDetail, summary="An issue and why each candidate "
            "is in or out")  # fmt: skip
def show(ref: IssueRef, runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        issue = _issue(session, ref)
        selection = editorial.candidates(
            session, runtime.settings, issue.mailing_list, issue.issue_date
        )
        return {"issue": issue_dict(issue), "explain": explain(selection)}


# --- the selection, before or after the build ----------------------------------------------


def _day(session: Session, runtime: Runtime, slug: str, day: str) -> tuple[MailingList, date]:
    return load_list(session, runtime.settings, runtime.clock, slug), iso_day(day)


@router.get(
    "/lists/{slug}/issues/{date}/candidates",
    response_model=list[DecisionOut],
    summary="Every candidate for a list and date with the selection's reason",
)
def candidates(slug: SlugPath, day: DatePath, runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        mailing_list = get_list(session, slug)
        return explain(editorial.candidates(session, runtime.settings, mailing_list, iso_day(day)))


def _choice(action: Any, summary: str) -> Any:
    def change(
        slug: SlugPath,
        day: DatePath,
        body: ArticleChoice,
        runtime: RuntimeDep,
        actor: Editor,
    ) -> Any:
        with unit(runtime) as session:
            mailing_list, issue_date = _day(session, runtime, slug, day)
            article = find_article(session, body.article_id)
            result = action(
                session, runtime.settings, runtime.clock, actor, mailing_list, issue_date,
                article.id,
            )  # fmt: skip
            return result_dict(result, "applies when the issue is built")

    change.__doc__ = summary
    return change


for _name, _action, _summary in (
    ("pin", editorial.pin, "Always include an article, first (in pin order)"),
    ("exclude", editorial.exclude, "Keep an article out of the issue"),
    ("restore", editorial.restore, "Forget the pin, exclusion or position of an article"),
):
    router.add_api_route(
        f"/lists/{{slug}}/issues/{{date}}/{_name}",
        _choice(_action, _summary),
        methods=["POST"],
        response_model=BuildOut,
        summary=_summary,
        name=f"issue_{_name}",
    )


@router.put(
    "/lists/{slug}/issues/{date}/order",
    response_model=BuildOut,
    summary="Put these articles first, in this order (after pinned ones)",
)
def reorder(slug: SlugPath, day: DatePath, body: Order, runtime: RuntimeDep, actor: Editor) -> Any:
    with unit(runtime) as session:
        mailing_list, issue_date = _day(session, runtime, slug, day)
        ids = [find_article(session, ref).id for ref in body.article_ids]
        result = editorial.reorder(
            session, runtime.settings, runtime.clock, actor, mailing_list, issue_date, ids
        )
        return result_dict(result, "applies when the issue is built")


@router.get("/lists/{slug}/issues/{date}/note", response_model=Note, summary="The editor's note")
def get_note(slug: SlugPath, day: DatePath, runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        mailing_list = get_list(session, slug)
        note = editorial.get_note(session, mailing_list.id, iso_day(day))
        return {"ja": note.ja if note else None, "en": note.en if note else None}


@router.put(
    "/lists/{slug}/issues/{date}/note",
    response_model=Note,
    summary="Write the editor's note (both empty: remove it)",
)
def set_note(slug: SlugPath, day: DatePath, body: Note, runtime: RuntimeDep, actor: Editor) -> Any:
    with unit(runtime) as session:
        mailing_list, issue_date = _day(session, runtime, slug, day)
        note = editorial.set_note(
            session, runtime.clock, actor, mailing_list, issue_date, ja=body.ja, en=body.en
        )
        return {"ja": note.ja if note else None, "en": note.en if note else None}


# --- approval, preview, test send ------------------------------------------------------------


@router.post("/issues/{ref}/approve", response_model=IssueDetail, summary="Approve this build")
def approve(ref: IssueRef, runtime: RuntimeDep, actor: Editor) -> Any:
    with unit(runtime) as session:
        issue = _issue(session, ref)
        editorial.approve(session, runtime.clock, actor, issue)
        session.flush()
        return {"issue": issue_dict(issue), "explain": []}


@router.delete(
    "/issues/{ref}/approval", response_model=IssueDetail, summary="Withdraw the approval"
)
def withdraw(ref: IssueRef, runtime: RuntimeDep, actor: Editor) -> Any:
    with unit(runtime) as session:
        issue = _issue(session, ref)
        editorial.withdraw_approval(session, runtime.clock, actor, issue)
        session.flush()
        return {"issue": issue_dict(issue), "explain": []}


@router.get(
    "/issues/{ref}/preview/{variant}",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
    summary="One variant's HTML, with sample links in the personal slots",
)
def preview(ref: IssueRef, variant: VariantPath, runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        issue = _issue(session, ref)
        html = ensure_variants(session, issue, runtime.settings, runtime.clock)[variant].html
    for slot, value in preview_slots(runtime.settings).items():
        html = html.replace(slot, value)
    return HTMLResponse(html, headers={"Content-Security-Policy": EMAIL_CSP})


@router.post(
    "/issues/{ref}/test-send",
    response_model=TestSendOut,
    summary='Send to these addresses only, subject "[TEST] ...", outside the ledger',
)
def test_send(
    ref: IssueRef, body: TestSend, runtime: RuntimeDep, actor: Editor, key: IdempotencyKey = None
) -> Any:
    names = VARIANTS if body.variant == "all" else (body.variant,)
    with unit(runtime) as session:
        issue = _issue(session, ref)
        stored = ensure_variants(session, issue, runtime.settings, runtime.clock)
        variants = {name: as_rendered(stored[name]) for name in names}
        hasher = EmailHasher.load(session)
        provider = make_provider(runtime.settings)
        try:
            results = send_test_email(
                variants, list(body.to), runtime.settings, provider,
                is_mailable=lambda address: is_mailable_address(session, hasher(address)),
            )  # fmt: skip
        finally:
            provider.close()
        audit.record(session, runtime.clock, actor, "issue.test_send", issue=issue,
                     after={"variants": list(names), "recipients": len(body.to)})  # fmt: skip
    return {
        "variants": {
            name: {"accepted": len(r.accepted), "failed": list(r.failed.values())}
            for name, r in results.items()
        }
    }


# --- sending -------------------------------------------------------------------------------


def _status(session: Session, issue_id: int) -> dict[str, Any]:
    return send_status(session, issue_id).as_dict()


@router.post(
    "/issues/{ref}/send",
    response_model=SendStarted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send to every eligible subscriber (nobody gets it twice)",
    description="Plans the send and answers at once; this server sends it (or, with "
    "NEWSLETTER_WORKERS=external, `newsletter worker` does). Follow it with /status.",
)
def send(ref: IssueRef, runtime: RuntimeDep, actor: Sender, key: IdempotencyKey = None) -> Any:
    with unit(runtime) as session:
        issue_id = _issue(session, ref).id
    provider = make_provider(runtime.settings)
    try:
        preflight(runtime.settings, provider)
    finally:
        provider.close()
    config = SendConfig.from_settings(runtime.settings)
    with unit(runtime) as session:
        operations.start_send(
            session, runtime.settings, runtime.clock, actor, issue_id,
            batch_size=config.batch_size,
        )  # fmt: skip
    thread = send_in_background(runtime, issue_id)
    with unit(runtime) as session:
        return {
            "issue_id": issue_id,
            "status": _status(session, issue_id),
            "sending_in": "server" if thread is not None else "workers",
        }


def _control(name: str, summary: str) -> Any:
    operation = getattr(operations, name)

    def control(ref: IssueRef, runtime: RuntimeDep, actor: Sender) -> Any:
        with unit(runtime) as session:
            issue_id = _issue(session, ref).id
            operation(session, runtime.clock, actor, issue_id)
        if name == "resume":
            send_in_background(runtime, issue_id)
        with unit(runtime) as session:
            return _status(session, issue_id)

    control.__doc__ = summary
    return control


for _name, _summary in (
    ("pause", "Pause a send: no new batch starts; batches in flight finish"),
    ("resume", "Resume a paused send"),
    ("cancel", "Cancel the rest of a send: queued recipients will never get this issue"),
):
    router.add_api_route(
        f"/issues/{{ref}}/{_name}",
        _control(_name, _summary),
        methods=["POST"],
        response_model=SendStatusOut,
        summary=_summary,
        name=f"issue_{_name}",
    )


@router.post(
    "/issues/{ref}/retry",
    response_model=RetryOut,
    summary="Send again to recipients whose failure was not about their address",
)
def retry(
    ref: IssueRef, body: Retry, runtime: RuntimeDep, actor: Sender, key: IdempotencyKey = None
) -> Any:
    config = SendConfig.from_settings(runtime.settings)
    with unit(runtime) as session:
        issue_id = _issue(session, ref).id
        report = operations.retry(
            session, runtime.clock, actor, issue_id, batch_size=config.batch_size,
            dry_run=body.dry_run,
        )  # fmt: skip
    if report.requeued and not body.dry_run:
        send_in_background(runtime, issue_id)
    return {
        "issue_id": issue_id,
        "dry_run": body.dry_run,
        "retryable": report.retryable,
        "requeued": report.requeued,
        "kept_failed": report.kept_failed,
        "reasons": report.reasons,
    }


@router.post(
    "/issues/{ref}/resolve",
    response_model=ResolveOut,
    summary="Decide about recipients in doubt: send them again, or skip them",
    description="Recipients with a provider event are settled as accepted first. `resend`: "
    "the rest are queued again (some may get the issue twice); `skip`: the rest are marked "
    "skipped (some may never get it).",
)
def resolve(ref: IssueRef, body: Resolve, runtime: RuntimeDep, actor: Sender) -> Any:
    with unit(runtime) as session:
        issue_id = _issue(session, ref).id
        report = operations.resolve(
            session, runtime.clock, actor, issue_id, resend=body.choice == "resend"
        )
        issue_state.finish_if_done(session, issue_id, runtime.clock)
    if report.requeued:
        send_in_background(runtime, issue_id)
    return {
        "issue_id": issue_id,
        "reconciled": report.reconciled,
        "requeued": report.requeued,
        "skipped": report.skipped,
    }


@router.get("/issues/{ref}/status", response_model=SendStatusOut, summary="Where the send stands")
def send_state(ref: IssueRef, runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        return _status(session, _issue(session, ref).id)


@router.get(
    "/issues/{ref}/recipients/{email}",
    response_model=dict[str, Any],
    summary="One recipient's outcome",
)
def recipient(
    ref: IssueRef,
    email: Annotated[str, Path(min_length=3, max_length=320)],
    runtime: RuntimeDep,
    actor: Reader,
) -> Any:
    with unit(runtime) as session:
        return asdict(recipient_status(session, _issue(session, ref).id, email))


# --- statistics ----------------------------------------------------------------------------


def issue_stats(session: Session, issue: Issue) -> dict[str, Any]:
    stats = issue_event_stats(session, issue.id)
    return {
        "issue_id": issue.id,
        "list": issue.mailing_list.slug,
        "date": issue.issue_date.isoformat(),
        "status": issue.status,
        "events": stats.counts,
        "events_total": stats.events_total,
        "ledger": _status(session, issue.id),
    }


@router.get("/issues/{ref}/stats", response_model=IssueStats, summary="An issue's statistics")
def stats(ref: IssueRef, runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        return issue_stats(session, _issue(session, ref))


@router.get("/lists/{slug}/stats", response_model=ListStats, summary="A list's statistics")
def list_stats(
    slug: SlugPath,
    runtime: RuntimeDep,
    actor: Reader,
    issues: Annotated[int, Query(ge=0, le=100, description="Recent issues to include")] = 10,
) -> Any:
    from subscribers.service import subscriber_stats

    with unit(runtime) as session:
        mailing_list = get_list(session, slug)
        recent = session.scalars(
            select(Issue)
            .where(Issue.list_id == mailing_list.id)
            .order_by(Issue.issue_date.desc())
            .limit(issues)
        )
        return {
            "list": slug,
            "subscribers": subscriber_stats(session, list_slug=slug),
            "issues": [issue_stats(session, issue) for issue in recent],
        }
