"""`create_app(runtime)`: the Starlette application, with no module-level state.

Starlette because every endpoint here is a small request/response function: it gives routing,
form parsing (python-multipart, which RFC 8058 one-click POSTs may use), a test client and
ASGI for uvicorn, without an ORM, admin or template layer of its own that would compete with
ours. Database work is blocking SQLAlchemy and runs in Starlette's thread pool.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from newsletter.errors import (
    NotFoundError,
    StateError,
    SuppressedError,
    TokenError,
    ValidationError,
)
from newsletter.logs import log_event
from newsletter.paths import templates_dir
from newsletter.runtime import Runtime
from newsletter.web import (
    archive,
    edition,
    editor,
    signup,
    subscriber_links,
    tracking_routes,
    webhook_routes,
)
from newsletter.web.context import WebState, make_environment, page_language, render
from newsletter.web.i18n import MESSAGES
from newsletter.web.security import DEFAULT_HEADERS, CsrfSigner, SecurityHeaders, SignupThrottle
from subscribers.tokens import LinkSigner

logger = logging.getLogger(__name__)


async def stylesheet(request: Request) -> Response:
    css = (templates_dir() / "web" / "web.css").read_text(encoding="utf-8")
    return PlainTextResponse(
        css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


def _message(request: Request, status: int, title_key: str, body_key: str | None) -> Response:
    lang = page_language(request)
    return render(
        request,
        "message.html",
        lang,
        status=status,
        title=MESSAGES[title_key][lang],
        body=MESSAGES[body_key][lang] if body_key else None,
    )


async def _token_error(request: Request, exc: Exception) -> Response:
    # The same page for every bad token: nothing about whether a subscriber exists.
    return _message(request, 400, "invalid_link_title", "invalid_link_body")


async def _not_found(request: Request, exc: Exception) -> Response:
    return _message(request, 404, "not_found_title", None)


async def _bad_request(request: Request, exc: Exception) -> Response:
    lang = page_language(request)
    return render(request, "message.html", lang, status=400, title="400", body=str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _message(request, 404, "not_found_title", None)
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log_event(
        logger, "web.error", level=logging.ERROR, path=request.url.path, error=type(exc).__name__
    )
    # Rendered outside the middleware stack (Starlette's ServerErrorMiddleware): add the headers.
    lang = page_language(request)
    return render(
        request,
        "message.html",
        lang,
        status=500,
        headers=DEFAULT_HEADERS,
        title=MESSAGES["error_title"][lang],
        body=MESSAGES["error_body"][lang],
    )


def create_app(
    runtime: Runtime,
    *,
    signup_limiter: SignupThrottle | None = None,
) -> Starlette:
    """The web application over one Runtime. `signup_limiter`: sign-ups per client IP."""
    settings = runtime.settings
    state = WebState(
        runtime=runtime,
        env=make_environment(),
        links=LinkSigner(settings),
        csrf=CsrfSigner(settings),
        signup_limiter=signup_limiter or SignupThrottle(capacity=5, per_s=5 / 60),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.close()

    from newsletter.api import create_api
    from newsletter.api.metrics import metrics_endpoint
    from newsletter.api.reference import reference_endpoint

    api = create_api(runtime)
    routes = [
        Route("/u/{token}", subscriber_links.unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", subscriber_links.unsubscribe_post, methods=["POST"]),
        Route("/p/{token}", subscriber_links.preferences_page, methods=["GET"]),
        Route("/p/{token}", subscriber_links.preferences_post, methods=["POST"]),
        Route("/subscribe", signup.subscribe_page, methods=["GET"]),
        Route("/subscribe", signup.subscribe_post, methods=["POST"]),
        Route("/confirm/{token}", signup.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", signup.confirm_post, methods=["POST"]),
        Route("/webhooks/sendgrid", webhook_routes.sendgrid_webhook, methods=["POST"]),
        *tracking_routes.routes(settings),  # /c/ tracked links, /o/ pixel, /privacy
        # The web edition (home, index, issue and article pages, feeds) and the email as sent.
        *edition.routes(),
        Route("/issues/{date}/email", archive.archive_issue, methods=["GET"]),
        Route("/preview/{issue_id}", editor.preview_page, methods=["GET"]),
        Route("/preview/{issue_id}/{variant}", editor.preview_frame, methods=["GET"]),
        Route("/admin/issues/{issue_id}", editor.stats_page, methods=["GET"]),
        Route("/static/web.css", stylesheet, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        # The HTTP API for scripts (JSON, bearer tokens), its reference page, and metrics.
        Mount("/api/v1", app=api),
        Route("/api/docs", reference_endpoint(api.openapi), methods=["GET"]),
        Route("/metrics", metrics_endpoint(runtime), methods=["GET"]),
    ]
    # The editors' desk (newsletter/web/desk/): its own routes, signers and limits.
    from newsletter.web import desk

    routes += desk.routes()
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            TokenError: _token_error,
            NotFoundError: _not_found,
            ValidationError: _bad_request,
            StateError: _bad_request,
            SuppressedError: _bad_request,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
    app.state.web = state
    return app
