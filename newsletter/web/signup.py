"""Sign-up with double opt-in: the form, the "check your inbox" answer, the confirmation link.

The answer to a sign-up is the same, in bytes and in time, whether the address is new,
pending, already subscribed or suppressed: the route checks only the form, answers, and then
records the sign-up and mails the confirmation in a background task (the subscribers package
decides what, if anything, to mail), so the form cannot be used to find out who subscribes.
The form carries a signed double-submit CSRF token and each client IP is rate-limited. The
confirmation link shows a button and confirms on POST, so a mail scanner that prefetches links
cannot confirm on someone's behalf.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from newsletter.db.session import transaction
from newsletter.errors import ValidationError
from newsletter.logs import log_event, mask_email
from newsletter.types import VARIANTS
from newsletter.urls import DEFAULT_LIST_SLUG
from newsletter.web.bodies import read_form
from newsletter.web.context import WebState, in_transaction, page_language, render, state_of
from newsletter.web.i18n import CONSENT_WORDING_VERSION, MESSAGES
from newsletter.web.security import CsrfSigner, client_ip
from subscribers.addresses import normalise_email
from subscribers.consent import confirm, start_signup
from subscribers.service import resolve_list
from subscribers.tokens import ConfirmSigner

_COOKIE_PATH = "/subscribe"
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _ListInfo:
    """What the form says about the list: its name, and what it records about readers."""

    name: str
    tracking_clicks: bool
    tracking_opens: bool


def _list_info(request: Request, session: Session, slug: str) -> _ListInfo:
    """The list; the default list exists from the first visit on, others must exist."""
    found = resolve_list(session, state_of(request).runtime.clock, slug)
    return _ListInfo(found.name, bool(found.click_tracking), bool(found.open_tracking))


def _form(
    request: Request,
    lang: str,
    *,
    list_slug: str,
    info: _ListInfo,
    status: int = 200,
    error: str | None = None,
    email: str = "",
    name: str = "",
    language: str | None = None,
) -> Response:
    """The form with a fresh nonce in the cookie and its signature in the page."""
    nonce, csrf = csrf_pair(request)
    response = render(
        request,
        "subscribe.html",
        lang,
        status=status,
        csrf=csrf,
        list_slug=list_slug,
        list_name=info.name,
        tracking_clicks=info.tracking_clicks,
        tracking_opens=info.tracking_opens,
        wording_version=CONSENT_WORDING_VERSION,
        error=error,
        email=email,
        name=name,
        language=language or lang,
    )
    set_csrf_cookie(request, response, nonce)
    return response


def csrf_pair(request: Request) -> tuple[str, str]:
    """The form's nonce (the visitor's cookie, else a new one) and its signature for the form.

    Any page that shows the sign-up form (this one, the web edition's home page) uses these
    two, so its POST to /subscribe passes the same check."""
    nonce = request.cookies.get(CsrfSigner.COOKIE) or CsrfSigner.new_nonce()
    return nonce, state_of(request).csrf.sign(nonce)


def set_csrf_cookie(request: Request, response: Response, nonce: str) -> None:
    state = state_of(request)
    response.set_cookie(
        CsrfSigner.COOKIE,
        nonce,
        max_age=state.csrf.max_age_s,
        path=_COOKIE_PATH,
        secure=state.settings.base_url.startswith("https://"),
        httponly=True,
        samesite="strict",
    )


async def subscribe_page(request: Request) -> Response:
    slug = request.query_params.get("list", DEFAULT_LIST_SLUG)
    info = await in_transaction(request, lambda s: _list_info(request, s, slug))
    return _form(request, page_language(request), list_slug=slug, info=info)


async def subscribe_post(request: Request) -> Response:
    state = state_of(request)
    lang = page_language(request)
    ip = client_ip(request)
    if not state.signup_limiter.allow(ip):
        return render(
            request,
            "message.html",
            lang,
            status=429,
            headers={"Retry-After": "60"},
            title=MESSAGES["too_many_title"][lang],
            body=MESSAGES["too_many_body"][lang],
        )
    form = await read_form(request)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    slug = fields.get("list") or DEFAULT_LIST_SLUG
    email = fields.get("email", "").strip()
    name = fields.get("name", "").strip()[:200]
    language = fields.get("language", lang)
    info = await in_transaction(request, lambda s: _list_info(request, s, slug))
    again = {"list_slug": slug, "info": info, "email": email, "name": name}
    if not state.csrf.check(fields.get("csrf"), request.cookies.get(CsrfSigner.COOKIE)):
        return _form(request, lang, status=403, error=MESSAGES["form_expired"][lang], **again)
    if fields.get("consent") != "yes":
        return _form(request, lang, status=400, error=MESSAGES["consent_required"][lang], **again)
    if language not in VARIANTS:
        language = lang
    if "@" not in email or len(email) > 320:
        return _form(request, lang, status=400, error=MESSAGES["email_invalid"][lang], **again)
    try:  # syntax only, the same work for every address: no answer depends on the database
        normalise_email(email)
    except ValidationError:
        return _form(request, lang, status=400, error=MESSAGES["email_invalid"][lang], **again)
    signup = _Signup(
        email=email,
        name=name or None,
        language=language,
        list_slug=slug,
        ip=ip,
        user_agent=request.headers.get("user-agent", "")[:500],
    )
    response = render(
        request,
        "message.html",
        lang,
        title=MESSAGES["check_inbox_title"][lang],
        body=MESSAGES["check_inbox_body"][lang],
    )
    response.delete_cookie(CsrfSigner.COOKIE, path=_COOKIE_PATH)  # one form, one nonce
    # Recorded and mailed after the answer has gone out, so its timing says nothing about
    # whether the address is new, pending, active or suppressed.
    response.background = BackgroundTask(_record_signup, state, signup)
    return response


@dataclass(frozen=True, slots=True)
class _Signup:
    email: str
    name: str | None
    language: str
    list_slug: str
    ip: str
    user_agent: str


def _record_signup(state: WebState, signup: _Signup) -> None:
    """`start_signup` in its own transaction: it decides whether to mail (audience rules)."""
    try:
        with transaction(state.runtime.sessions) as session:
            start_signup(
                session,
                state.settings,
                state.runtime.clock,
                email=signup.email,
                name=signup.name,
                language=signup.language,
                list_slug=signup.list_slug,
                ip=signup.ip,
                user_agent=signup.user_agent,
                wording_version=CONSENT_WORDING_VERSION,
                provider=state.provider(),
            )
    except Exception as err:  # the visitor already has their answer: log it, keep serving
        log_event(
            logger,
            "signup.failed",
            level=logging.ERROR,
            email=mask_email(signup.email),
            list=signup.list_slug,
            error=type(err).__name__,
        )


async def confirm_page(request: Request) -> Response:
    token = request.path_params["token"]
    ConfirmSigner(state_of(request).settings).verify(token)  # tampered or expired: 400 now
    return render(request, "confirm.html", page_language(request), action=f"/confirm/{token}")


async def confirm_post(request: Request) -> Response:
    state = state_of(request)
    token = request.path_params["token"]
    ip = client_ip(request)
    user_agent = request.headers.get("user-agent", "")[:500]

    def work(session: Session) -> None:
        confirm(
            session, state.settings, state.runtime.clock, token=token, ip=ip, user_agent=user_agent
        )

    await in_transaction(request, work)
    lang = page_language(request)
    return render(
        request,
        "message.html",
        lang,
        title=MESSAGES["confirmed_title"][lang],
        body=MESSAGES["confirmed_body"][lang],
    )
