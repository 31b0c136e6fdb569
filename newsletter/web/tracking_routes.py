"""The tracked link (`/c/TOKEN/N`), the open pixel (`/o/TOKEN.gif`) and the privacy page.

A click answers 302 to the issue's own stored link and nothing else; a token that is not
genuine or a link number the issue does not have is a 404 page with no redirect. Recording is
best effort: a database error while recording is logged (issue and link number, no address,
no token) and the reader is still sent on. The pixel always answers the same transparent GIF,
so an image never shows broken and the answer says nothing about the token.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.config import Settings
from newsletter.db.models import IssueLink
from newsletter.db.session import transaction
from newsletter.engagement.recording import (
    ClickTarget,
    click_target,
    lists_that_track,
    record_click,
    record_open,
)
from newsletter.engagement.tokens import TrackingSigner
from newsletter.errors import NotFoundError, TokenError
from newsletter.logs import log_event
from newsletter.web.context import in_transaction, page_language, parse_id, render, state_of
from newsletter.web.security import client_ip

logger = logging.getLogger(__name__)

# A 1x1 transparent GIF89a (43 bytes).
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_NO_STORE = {
    "Cache-Control": "no-store, no-cache, private, max-age=0",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
_AGENT_MAX = 500


def routes(settings: Settings) -> list[Route]:
    """The routes, over one TrackingSigner built once for the app."""
    signer = TrackingSigner(settings)

    async def click(request: Request) -> Response:
        try:
            delivery_id = signer.verify(request.path_params["token"])
        except TokenError:
            raise NotFoundError("no such link") from None
        link_no = parse_id(request.path_params["link_no"], IssueLink.link_no)
        target = await in_transaction(request, lambda s: click_target(s, delivery_id, link_no))
        if target is None:
            raise NotFoundError("no such link")
        await run_in_threadpool(_record_click, request, target)
        # Exactly the stored URL (already checked by `is_redirectable`), not re-quoted.
        return Response(status_code=302, headers={"Location": target.url, **_NO_STORE})

    async def pixel(request: Request) -> Response:
        try:
            delivery_id: int | None = signer.verify(request.path_params["token"])
        except TokenError:
            delivery_id = None
        if delivery_id is not None:
            await run_in_threadpool(_record_open, request, delivery_id)
        return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)

    return [
        Route("/c/{token}/{link_no}", click, methods=["GET", "HEAD"]),
        Route("/o/{token}.gif", pixel, methods=["GET", "HEAD"]),
        Route("/privacy", privacy_page, methods=["GET"]),
    ]


def _agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:_AGENT_MAX]


def _record_click(request: Request, target: ClickTarget) -> None:
    state = state_of(request)
    try:
        with transaction(state.runtime.sessions) as session:
            record_click(
                session,
                target,
                at=state.runtime.clock.now(),
                method=request.method,
                user_agent=_agent(request),
            )
    except Exception as err:  # the reader still gets their link
        log_event(
            logger,
            "engagement.click_not_recorded",
            level=logging.ERROR,
            issue=target.issue_id,
            link=target.link_no,
            error=type(err).__name__,
        )


def _record_open(request: Request, delivery_id: int) -> None:
    state = state_of(request)
    try:
        with transaction(state.runtime.sessions) as session:
            record_open(
                session,
                delivery_id,
                at=state.runtime.clock.now(),
                method=request.method,
                ip=client_ip(request),
                user_agent=_agent(request),
            )
    except Exception as err:  # the image is still answered
        log_event(
            logger, "engagement.open_not_recorded", level=logging.ERROR, error=type(err).__name__
        )


async def privacy_page(request: Request) -> Response:
    """What is recorded about readers, which lists record it, and how to switch it off."""
    lists = await in_transaction(request, lists_that_track)
    lang = page_language(request)
    return render(
        request,
        "privacy.html",
        lang,
        tracking_lists=lists,
        retention_days=state_of(request).settings.events_retention_days,
    )
