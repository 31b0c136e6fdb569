"""The desk's forms (POST): the selection, the note, build, test send, approve; and the send.

Each action goes through the same service functions the command line uses (`issues.editorial`,
`delivery.operations`), which check the actor's permission again, rebuild a built issue,
withdraw an approval when anything changes, and write the audit log. The route's own check
(`desk_route`) answers 403 before any of that. After the action: 303 back to the page.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from newsletter.accounts import audit
from newsletter.accounts.roles import Permission
from newsletter.db.models import Issue
from newsletter.delivery import operations
from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.issues import editorial
from newsletter.issues.assembly import build_issue
from newsletter.pipeline import send_in_background
from newsletter.preview import send_test_email
from newsletter.types import RenderedVariant
from newsletter.web.context import in_transaction, parse_id, state_of
from newsletter.web.desk.auth import Desk, back_to, desk_route
from newsletter.web.desk.pages import issue_path, parse_date
from newsletter.web.desk.views import candidate_rows, find_issue
from newsletter.web.editor import stored_variants
from subscribers.audience import is_mailable_address
from subscribers.hashing import EmailHasher
from subscribers.lists import get_list

SELECTION_ACTIONS = ("pin", "exclude", "restore", "up", "down", "top")


def _article_id(desk: Desk) -> int:
    assert desk.form is not None
    raw = str(desk.form.get("article_id") or "")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise ValidationError("the form names no article")
    return int(raw)


def _moved(order: list[int], article_id: int, action: str) -> list[int]:
    if article_id not in order:
        raise StateError("only an article in the issue can be moved")
    i = order.index(article_id)
    order = order[:i] + order[i + 1 :]
    target = {"up": max(i - 1, 0), "down": min(i + 1, len(order)), "top": 0}[action]
    return order[:target] + [article_id] + order[target:]


@desk_route(Permission.EDIT)
async def selection_post(request: Request, desk: Desk) -> Response:
    """Pin, exclude, restore (forget the decision), or move up / down / to the top."""
    web = state_of(request)
    slug = request.path_params["slug"]
    issue_date = parse_date(request.path_params["date"])
    action = request.path_params["action"]
    if action not in SELECTION_ACTIONS:
        raise NotFoundError(f"no action {action!r}")
    article_id = _article_id(desk)
    settings, clock = web.settings, web.runtime.clock

    def work(session: Session) -> None:
        mailing_list = get_list(session, slug)
        if action in ("pin", "exclude", "restore"):
            do = getattr(editorial, action)
            do(session, settings, clock, desk.actor, mailing_list, issue_date, article_id)
            return
        rows, _ = candidate_rows(session, settings, mailing_list, issue_date, desk.lang)
        order = [r.article_id for r in rows if r.selected]
        editorial.reorder(
            session,
            settings,
            clock,
            desk.actor,
            mailing_list,
            issue_date,
            _moved(order, article_id, action),
        )

    await in_transaction(request, work)
    done = {"pin": "pinned", "exclude": "excluded", "restore": "restored"}.get(action, "moved")
    return back_to(issue_path(slug, issue_date), done, request.query_params.get("hl"))


def _note_text(desk: Desk, name: str) -> str | None:
    assert desk.form is not None
    value = desk.form.get(name)
    return value if isinstance(value, str) else None


@desk_route(Permission.EDIT)
async def note_post(request: Request, desk: Desk) -> Response:
    """The editor's note in ja and en (plain text with links; either may be empty)."""
    web = state_of(request)
    slug = request.path_params["slug"]
    issue_date = parse_date(request.path_params["date"])
    ja, en = _note_text(desk, "note_ja"), _note_text(desk, "note_en")

    def work(session: Session) -> None:
        mailing_list = get_list(session, slug)
        editorial.set_note(
            session, web.runtime.clock, desk.actor, mailing_list, issue_date, ja=ja, en=en
        )

    await in_transaction(request, work)
    return back_to(issue_path(slug, issue_date), "note_saved", request.query_params.get("hl"))


@desk_route(Permission.EDIT)
async def build_post(request: Request, desk: Desk) -> Response:
    """Build the issue now (the scheduler would at send time), to preview and approve it."""
    web = state_of(request)
    slug = request.path_params["slug"]
    issue_date = parse_date(request.path_params["date"])

    def work(session: Session) -> None:
        result = build_issue(
            session, web.settings, web.runtime.clock, list_slug=slug, issue_date=issue_date
        )
        if result.issue is None:
            raise StateError(result.reason or "no issue was built")
        if result.created:
            audit.record(
                session,
                web.runtime.clock,
                desk.actor,
                "issue.build",
                issue=result.issue,
                after={"articles": [a.article_id for a in result.issue.articles]},
            )

    await in_transaction(request, work)
    return back_to(issue_path(slug, issue_date), "built", request.query_params.get("hl"))


def _issue_for(session: Session, slug: str, issue_date: date) -> Issue:
    mailing_list = get_list(session, slug)
    issue = find_issue(session, mailing_list.id, issue_date)
    if issue is None:
        raise StateError("the issue is not built yet: build it first")
    return issue


@desk_route(Permission.EDIT)
async def approve_post(request: Request, desk: Desk) -> Response:
    """Approve this build (who and when are recorded; any later change withdraws it)."""
    web = state_of(request)
    slug = request.path_params["slug"]
    issue_date = parse_date(request.path_params["date"])

    def work(session: Session) -> None:
        editorial.approve(
            session, web.runtime.clock, desk.actor, _issue_for(session, slug, issue_date)
        )

    await in_transaction(request, work)
    return back_to(issue_path(slug, issue_date), "approved", request.query_params.get("hl"))


@desk_route(Permission.EDIT)
async def test_send_post(request: Request, desk: Desk) -> Response:
    """Every variant to the signed-in editor's own address, "[TEST]", outside the ledger."""
    web = state_of(request)
    slug = request.path_params["slug"]
    issue_date = parse_date(request.path_params["date"])

    def work(session: Session) -> None:
        issue = _issue_for(session, slug, issue_date)
        rows = stored_variants(session, issue, web.settings, web.runtime.clock)
        variants = {
            r.variant: RenderedVariant(
                issue_id=issue.id,
                variant=r.variant,
                subject=r.subject,
                preheader=r.preheader,
                html=r.html,
                text=r.text,
            )
            for r in rows
        }
        hasher = EmailHasher.load(session)
        results = send_test_email(
            variants,
            [desk.user.email],
            web.settings,
            web.provider(),
            is_mailable=lambda address: is_mailable_address(session, hasher(address)),
        )
        audit.record(
            session,
            web.runtime.clock,
            desk.actor,
            "issue.test-send",
            issue=issue,
            subject=desk.user.email,
            after={name: len(r.accepted) for name, r in results.items()},
        )

    await in_transaction(request, work)
    return back_to(issue_path(slug, issue_date), "test_sent", request.query_params.get("hl"))


SEND_ACTIONS = {
    "send": "send_started",
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
    "retry": "retried",
}


@desk_route(Permission.SEND)
async def sending_post(request: Request, desk: Desk) -> Response:
    """Start, pause, resume, cancel or retry the send (admins)."""
    web = state_of(request)
    issue_id = parse_id(request.path_params["issue_id"], Issue.id)
    action = request.path_params["action"]
    if action not in SEND_ACTIONS:
        raise NotFoundError(f"no action {action!r}")
    clock = web.runtime.clock

    def work(session: Session) -> None:
        if action == "send":
            operations.start_send(session, web.settings, clock, desk.actor, issue_id)
        elif action == "retry":
            operations.retry(
                session, clock, desk.actor, issue_id, batch_size=web.settings.send_batch_size
            )
        else:
            getattr(operations, action)(session, clock, desk.actor, issue_id)

    await in_transaction(request, work)
    if action in ("send", "resume", "retry"):
        # Committed: deliver it on this server's thread (inline sends), under the send claim
        # the scheduler also takes; with external workers they pick the batches up.
        send_in_background(web.runtime, issue_id)
    return back_to(
        f"/desk/issues/{issue_id}/sending", SEND_ACTIONS[action], request.query_params.get("hl")
    )
