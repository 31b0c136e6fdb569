"""Every sent issue as the email it was (`/issues/DATE/email`), from the stored variant HTML.

The web edition (`newsletter.web.edition`) is the designed page; this is the email itself, for
readers who want it. The per-recipient slots are replaced by neutral links (the sign-up page)
and an empty name, so an archived email never holds anyone's personal links.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.db.models import Issue, IssueVariant, MailingList
from newsletter.errors import NotFoundError, ValidationError
from newsletter.types import (
    SLOT_NAME,
    SLOT_PREFERENCES_URL,
    SLOT_UNSUBSCRIBE_URL,
    VARIANTS,
    IssueStatus,
)
from newsletter.urls import DEFAULT_LIST_SLUG, subscribe_url
from newsletter.web.context import in_transaction, page_language, state_of
from newsletter.web.security import EMAIL_CSP


def neutral_html(html: str, base_url: str) -> str:
    """The variant with every personal slot replaced; pure, so the rule is testable alone."""
    neutral = subscribe_url(base_url)
    return (
        html.replace(SLOT_UNSUBSCRIBE_URL, neutral)
        .replace(SLOT_PREFERENCES_URL, neutral)
        .replace(SLOT_NAME, "")
    )


# Issues that reached readers: a send with some failed recipients went out all the same.
_PUBLISHED = (IssueStatus.SENT, IssueStatus.SENT_WITH_FAILURES)


def _archived_variant(session: Session, issue_date: date, slug: str, variant: str) -> str:
    html = session.scalar(
        select(IssueVariant.html)
        .join(Issue, Issue.id == IssueVariant.issue_id)
        .join(MailingList, MailingList.id == Issue.list_id)
        .where(
            MailingList.slug == slug,
            Issue.issue_date == issue_date,
            Issue.status.in_(_PUBLISHED),
            IssueVariant.variant == variant,
            IssueVariant.tracked.is_(False),  # the direct form: no reader's tracked links
        )
    )
    if html is None:
        raise NotFoundError(f"no sent issue for {issue_date} on list {slug!r}")
    return html


async def archive_issue(request: Request) -> Response:
    try:
        issue_date = date.fromisoformat(request.path_params["date"])
    except ValueError:
        raise NotFoundError("expected a date like 2026-06-13") from None
    variant = request.query_params.get("lang") or page_language(request)
    if variant not in VARIANTS:
        raise ValidationError(f"lang: expected one of {', '.join(VARIANTS)}")
    slug = request.query_params.get("list") or DEFAULT_LIST_SLUG
    base_url = state_of(request).settings.base_url
    html = await in_transaction(request, lambda s: _archived_variant(s, issue_date, slug, variant))
    return HTMLResponse(
        neutral_html(html, base_url),
        headers={
            "Content-Security-Policy": EMAIL_CSP.replace(
                "frame-ancestors 'self'", "frame-ancestors 'none'"
            ),
            "Cache-Control": "public, max-age=300",
        },
    )
