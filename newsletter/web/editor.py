"""Editor pages: the issue preview (every variant at phone and desktop widths) and statistics.

Never public: the preview token (bearer, `?token=`, or the password of HTTP basic auth) is
required, and without NEWSLETTER_PREVIEW_TOKEN configured these pages answer 401 to everyone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import Issue, IssueVariant, MailingList
from newsletter.delivery.status import send_status
from newsletter.engagement.stats import issue_engagement, list_trends, percent
from newsletter.errors import NotFoundError
from newsletter.issues.variants import ensure_variants
from newsletter.types import SLOT_NAME, SLOT_PREFERENCES_URL, SLOT_UNSUBSCRIBE_URL, VARIANTS
from newsletter.urls import preferences_url, unsubscribe_url
from newsletter.web.chart import bars_chart_svg, events_chart_svg
from newsletter.web.context import in_transaction, page_language, parse_id, render, state_of
from newsletter.web.i18n import MESSAGES
from newsletter.web.security import EMAIL_CSP, PREVIEW_CSP, editor_authorized
from newsletter.webhooks.stats import METRICS, issue_event_stats

PREVIEW_NAME = "Preview"


def _unauthorized(request: Request) -> Response:
    lang = page_language(request)
    return render(
        request,
        "message.html",
        lang,
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="newsletter editor", charset="UTF-8"'},
        title="401",
        body=MESSAGES["unauthorized"][lang],
    )


def _issue_id(request: Request) -> int:
    return parse_id(request.path_params["issue_id"], Issue.id)


def _issue(session: Session, issue_id: int) -> Issue:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFoundError(f"no issue {issue_id}")
    return issue


def _variants(session: Session, issue: Issue, request: Request) -> list[IssueVariant]:
    state = state_of(request)
    return stored_variants(session, issue, state.settings, state.runtime.clock)


def stored_variants(
    session: Session, issue: Issue, settings: Settings, clock: Clock
) -> list[IssueVariant]:
    """The stored variants in their direct form (never the tracked links of a send); an issue
    not rendered yet is rendered (and stored) now."""
    direct = select(IssueVariant).where(
        IssueVariant.issue_id == issue.id, IssueVariant.tracked.is_(False)
    )
    rows = list(session.scalars(direct))
    if len(rows) < len(VARIANTS):
        ensure_variants(session, issue, settings, clock)
        session.flush()
        rows = list(session.scalars(direct))
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(rows, key=lambda r: order.get(r.variant, 99))


async def preview_page(request: Request) -> Response:
    if not editor_authorized(request, state_of(request).settings):
        return _unauthorized(request)
    issue_id = _issue_id(request)
    token = request.query_params.get("token")
    suffix = "?" + urlencode({"token": token}) if token else ""

    def work(session: Session) -> dict[str, Any]:
        issue = _issue(session, issue_id)
        return {
            "issue_id": issue.id,
            "issue_date": issue.issue_date,
            "issue_status": issue.status,
            "list_name": issue.mailing_list.name,
            "variants": [
                {
                    "variant": v.variant,
                    "subject": v.subject,
                    "trimmed": v.trimmed,
                    "src": f"/preview/{issue.id}/{v.variant}{suffix}",
                }
                for v in _variants(session, issue, request)
            ],
        }

    values = await in_transaction(request, work)
    return render(
        request,
        "preview.html",
        page_language(request),
        headers={"Content-Security-Policy": PREVIEW_CSP},
        **values,
    )


async def preview_frame(request: Request) -> Response:
    """One variant's HTML for an iframe of the preview page, with sample links in the slots."""
    state = state_of(request)
    if not editor_authorized(request, state.settings):
        return _unauthorized(request)
    issue_id = _issue_id(request)
    variant = request.path_params["variant"]
    if variant not in VARIANTS:
        raise NotFoundError(f"no variant {variant!r}; expected one of {', '.join(VARIANTS)}")

    def work(session: Session) -> str:
        issue = _issue(session, issue_id)
        for row in _variants(session, issue, request):
            if row.variant == variant:
                return row.html
        raise NotFoundError(f"issue {issue_id} has no {variant} variant")

    html = await in_transaction(request, work)
    return frame_response(html, state.settings.base_url)


def frame_response(html: str, base: str) -> HTMLResponse:
    """A stored variant's HTML for a frame of ours: sample links in the slots, no script."""
    html = (
        html.replace(SLOT_UNSUBSCRIBE_URL, unsubscribe_url(base, "preview"))
        .replace(SLOT_PREFERENCES_URL, preferences_url(base, "preview"))
        .replace(SLOT_NAME, PREVIEW_NAME)
    )
    return HTMLResponse(
        html, headers={"Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN"}
    )


def _ledger(session: Session, issue_id: int) -> dict[str, Any]:
    """The send ledger beside the events: recipients per delivery status, and when it ran."""
    status = send_status(session, issue_id)
    rows: dict[str, Any] = {"total": status.total}
    rows.update({name: count for name, count in status.recipients.items() if count})
    rows["send_started_at"] = status.send_started_at
    rows["sent_at"] = status.sent_at
    return rows


async def stats_page(request: Request) -> Response:
    if not editor_authorized(request, state_of(request).settings):
        return _unauthorized(request)
    issue_id = _issue_id(request)
    lang = page_language(request)

    def work(session: Session) -> dict[str, Any]:
        return stats_values(session, issue_id, lang)

    return render(request, "stats.html", lang, **await in_transaction(request, work))


def stats_values(session: Session, issue_id: int, lang: str) -> dict[str, Any]:
    """What the statistics page shows: counts from the events, the chart, the ledger."""
    issue = _issue(session, issue_id)
    stats = issue_event_stats(session, issue.id)
    labels = {m: MESSAGES[f"metric_{m}"][lang] for m in METRICS}
    list_name = session.scalar(select(MailingList.name).where(MailingList.id == issue.list_id))
    return {
        "issue_id": issue.id,
        "issue_date": issue.issue_date,
        "issue_status": issue.status,
        "list_name": list_name,
        "counts": stats.counts,
        "chart": events_chart_svg(stats.timeline, stats.bucket, labels),
        "ledger": _ledger(session, issue.id),
        **engagement_values(session, issue, lang),
    }


def engagement_values(session: Session, issue: Issue, lang: str) -> dict[str, Any]:
    """First-party engagement beside the provider's events: per-article clicks by variant as a
    table and a bar chart (readers who clicked each article), and the list's 30-issue trend."""
    t = MESSAGES
    engagement = issue_engagement(session, issue, lang)
    bars = [(f"{a.position}. {a.title or a.ref}", a.unique_clickers) for a in engagement.articles]
    items = "; ".join(f"{label}: {value}" for label, value in bars)
    chart = bars_chart_svg(
        bars,
        title=t["eng_chart_title"][lang],
        description=t["eng_chart_desc"][lang].format(items=items),
    )
    return {
        "engagement": engagement,
        "engagement_chart": chart if engagement.reader_clicks else None,
        "trends": list_trends(session, issue.mailing_list, lang),
        "percent": percent,
    }
