"""The desk's pages (GET): home, the issue page with its previews, sending, statistics, audit."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from newsletter.accounts import audit
from newsletter.accounts.roles import Permission
from newsletter.db.models import Issue
from newsletter.engagement.export import engagement_csv
from newsletter.engagement.stats import issue_engagement
from newsletter.errors import NotFoundError
from newsletter.schedule import schedule_for
from newsletter.types import FINISHED_ISSUE_STATUSES, VARIANTS, IssueStatus
from newsletter.web.context import in_transaction, parse_id, state_of
from newsletter.web.desk.auth import Desk, desk_route, page
from newsletter.web.desk.views import (
    candidate_rows,
    find_issue,
    home_rows,
    issue_state,
    ledger_view,
    local_time,
    note_of,
    require_approval,
    subject_test_view,
)
from newsletter.web.editor import frame_response, stats_values, stored_variants
from newsletter.web.security import PREVIEW_CSP
from subscribers.lists import get_list

# Notices after an action (`?done=`): only these keys are shown.
DONE_KEYS = frozenset(
    {
        "pinned",
        "excluded",
        "restored",
        "moved",
        "note_saved",
        "built",
        "approved",
        "test_sent",
        "send_started",
        "paused",
        "resumed",
        "cancelled",
        "retried",
    }
)


def _done(request: Request, desk: Desk) -> str | None:
    key = request.query_params.get("done")
    return desk.t("done_" + key) if key in DONE_KEYS else None


def parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise NotFoundError(f"no issue date {value!r}: expected YYYY-MM-DD") from None


def issue_path(slug: str, issue_date: date | str) -> str:
    return f"/desk/lists/{slug}/{issue_date}"


@desk_route(Permission.READ)
async def home(request: Request, desk: Desk) -> Response:
    web = state_of(request)
    rows = await in_transaction(
        request, lambda s: home_rows(s, web.settings, web.runtime.clock, desk.lang)
    )
    return page(
        request,
        "desk/home.html",
        desk.lang,
        desk=desk,
        lists=rows,
        require_approval=require_approval(web.settings),
    )


@desk_route(Permission.READ)
async def issue_page(request: Request, desk: Desk) -> Response:
    """Candidates with the selection's explanation, the note, the previews, approve."""
    web = state_of(request)
    slug = request.path_params["slug"]
    issue_date = parse_date(request.path_params["date"])
    lang = desk.lang

    def work(session: Session) -> dict[str, Any]:
        mailing_list = get_list(session, slug)
        issue = find_issue(session, mailing_list.id, issue_date)
        editable = issue is None or issue.status == IssueStatus.BUILT
        rows, not_buildable = candidate_rows(session, web.settings, mailing_list, issue_date, lang)
        note = note_of(session, mailing_list.id, issue_date)
        variants: list[dict[str, Any]] = []
        if issue is not None:
            for v in stored_variants(session, issue, web.settings, web.runtime.clock):
                variants.append(
                    {
                        "variant": v.variant,
                        "subject": v.subject,
                        "trimmed": list(v.trimmed or []),
                        "src": f"/desk/issues/{issue.id}/frame/{v.variant}",
                    }
                )
        tz = schedule_for(web.settings, mailing_list).tz
        return {
            "subject_test": subject_test_view(session, issue, tz, lang),
            "slug": mailing_list.slug,
            "list_name": mailing_list.name,
            "issue_date": issue_date.isoformat(),
            "issue_id": issue.id if issue is not None else None,
            "state": issue_state(issue),
            "editable": editable,
            "finished": issue is not None and issue.status in FINISHED_ISSUE_STATUSES,
            "sending": issue is not None
            and issue.status in (IssueStatus.SENDING, IssueStatus.PAUSED),
            "approved_by": issue.approved_by if issue is not None else None,
            "approved_at": (
                local_time(issue.approved_at, tz, lang)
                if issue is not None and issue.approved_at
                else None
            ),
            "candidates": rows,
            "chosen": [r for r in rows if r.selected],
            "others": [r for r in rows if not r.selected],
            "not_buildable": not_buildable,
            "note_ja": note.note_ja if note else "",
            "note_en": note.note_en if note else "",
            "note_by": note.updated_by if note else None,
            "variants": variants,
            "variant_names": VARIANTS,
        }

    values = await in_transaction(request, work)
    return page(
        request,
        "desk/issue.html",
        lang,
        desk=desk,
        headers={"Content-Security-Policy": PREVIEW_CSP},
        done=_done(request, desk),
        action_base=issue_path(values["slug"], values["issue_date"]),
        **values,
    )


def _issue_id(request: Request) -> int:
    return parse_id(request.path_params["issue_id"], Issue.id)


def _issue(session: Session, issue_id: int) -> Issue:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFoundError(f"no issue {issue_id}")
    return issue


@desk_route(Permission.READ)
async def frame(request: Request, desk: Desk) -> Response:
    """One variant's HTML for the issue page's frames (375 px and 640 px)."""
    web = state_of(request)
    issue_id = _issue_id(request)
    variant = request.path_params["variant"]
    if variant not in VARIANTS:
        raise NotFoundError(f"no variant {variant!r}")

    def work(session: Session) -> str:
        issue = _issue(session, issue_id)
        for row in stored_variants(session, issue, web.settings, web.runtime.clock):
            if row.variant == variant:
                return row.html
        raise NotFoundError(f"issue {issue_id} has no {variant} variant")

    return frame_response(await in_transaction(request, work), web.settings.base_url)


@desk_route(Permission.READ)
async def sending_page(request: Request, desk: Desk) -> Response:
    """The live ledger; while the send runs the page reloads itself every 5 s (no script)."""
    web = state_of(request)
    issue_id = _issue_id(request)

    def work(session: Session) -> dict[str, Any]:
        issue = _issue(session, issue_id)
        return {
            "issue_id": issue.id,
            "slug": issue.mailing_list.slug,
            "list_name": issue.mailing_list.name,
            "issue_date": issue.issue_date.isoformat(),
            "state": issue_state(issue),
            "issue_status": issue.status,
            "ledger": ledger_view(session, issue, web.runtime.clock.now()),
            "approved": issue.approved_at is not None,
        }

    values = await in_transaction(request, work)
    live = values["issue_status"] == IssueStatus.SENDING
    return page(
        request,
        "desk/sending.html",
        desk.lang,
        desk=desk,
        done=_done(request, desk),
        refresh=live,
        require_approval=require_approval(web.settings),
        **values,
    )


@desk_route(Permission.READ)
async def stats_page(request: Request, desk: Desk) -> Response:
    """After the send: the statistics computed from the provider's events, with the chart."""
    issue_id = _issue_id(request)

    def work(session: Session) -> dict[str, Any]:
        values = stats_values(session, issue_id, desk.lang)
        issue = _issue(session, issue_id)
        values["slug"] = issue.mailing_list.slug
        values["csv_url"] = f"/desk/issues/{issue.id}/stats.csv?hl={desk.lang}"
        return values

    return page(
        request, "desk/stats.html", desk.lang, desk=desk, **await in_transaction(request, work)
    )


@desk_route(Permission.READ)
async def stats_csv(request: Request, desk: Desk) -> Response:
    """The per-article clicks as CSV (UTF-8), titles in the desk's language."""
    issue_id = _issue_id(request)

    def work(session: Session) -> tuple[str, str]:
        stats = issue_engagement(session, _issue(session, issue_id), desk.lang)
        return f"engagement-{stats.list}-{stats.date.isoformat()}.csv", engagement_csv(stats)

    name, body = await in_transaction(request, work)
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@desk_route(Permission.READ)
async def audit_page(request: Request, desk: Desk) -> Response:
    """The audit log, newest first; `?issue=ID` for one issue's entries."""
    raw = request.query_params.get("issue")
    issue_id = parse_id(raw, Issue.id) if raw else None

    def work(session: Session) -> dict[str, Any]:
        issue = _issue(session, issue_id) if issue_id is not None else None
        rows = [audit.entry_dict(e) for e in audit.entries(session, issue=issue, limit=200)]
        return {"entries": rows, "issue_id": issue_id}

    return page(
        request, "desk/audit.html", desk.lang, desk=desk, **await in_transaction(request, work)
    )
