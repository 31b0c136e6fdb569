"""What every route shares: the runtime, the page renderer, signers, and a DB helper."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode

from jinja2 import Environment
from sqlalchemy import BigInteger
from sqlalchemy.orm import InstrumentedAttribute, Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from newsletter.config import Settings
from newsletter.db.session import transaction
from newsletter.errors import NotFoundError
from newsletter.providers.factory import make_provider
from newsletter.render.environment import make_environment as template_environment
from newsletter.runtime import Runtime
from newsletter.web.i18n import pick_language, translator
from newsletter.web.security import CsrfSigner, SignupThrottle
from subscribers.tokens import LinkSigner

T = TypeVar("T")


def make_environment() -> Environment:
    """The pages' environment: undefined values render empty, no trailing newline kept."""
    return template_environment("web", strict=False, keep_trailing_newline=False)


@dataclass
class WebState:
    runtime: Runtime
    env: Environment
    links: LinkSigner
    csrf: CsrfSigner
    signup_limiter: SignupThrottle
    _provider: Any = None
    _provider_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def provider(self) -> Any:
        """The mail provider for confirmation emails, built on first sign-up."""
        with self._provider_lock:
            if self._provider is None:
                self._provider = make_provider(self.runtime.settings)
            return self._provider

    def close(self) -> None:
        if self._provider is not None and hasattr(self._provider, "close"):
            self._provider.close()


def state_of(request: Request) -> WebState:
    return request.app.state.web  # type: ignore[no-any-return]


async def in_transaction(request: Request, work: Callable[[Session], T]) -> T:
    """Run blocking database work in the thread pool, as one committed transaction."""
    state = state_of(request)

    def run() -> T:
        with transaction(state.runtime.sessions) as session:
            return work(session)

    return await run_in_threadpool(run)


def parse_id(value: str, column: InstrumentedAttribute[int]) -> int:
    """An id for `column` from a URL or form; NotFoundError (404) for one no row can have.

    Strict ASCII digits (`int()` also takes `+1`, `1_0`, other scripts' digits and spaces) and
    within the column's type (PostgreSQL integer or bigint): an out-of-range value must not
    reach the driver, which fails (OverflowError, "integer out of range": a 500) instead of
    finding nothing.
    """
    limit = 2**63 - 1 if isinstance(column.type, BigInteger) else 2**31 - 1
    if not (value.isascii() and value.isdigit() and len(value) <= 19 and int(value) <= limit):
        raise NotFoundError(f"{column.class_.__tablename__}: no row with this id")
    return int(value)


def page_language(request: Request, preference: str | None = None) -> str:
    return pick_language(
        request.headers.get("accept-language"), preference, request.query_params.get("hl")
    )


def render(
    request: Request,
    template: str,
    lang: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    state = state_of(request)
    other = "en" if lang == "ja" else "ja"
    query = dict(request.query_params)
    query["hl"] = other
    html = state.env.get_template(template).render(
        lang=lang,
        t=translator(lang),
        newsletter_name=state.settings.newsletter_name,
        postal_address=state.settings.postal_address,
        switch_url=request.url.path + "?" + urlencode(query),
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=headers)
