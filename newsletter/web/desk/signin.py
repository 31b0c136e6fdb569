"""Signing in and out: a password, or a single-use link sent by email.

The same answer (401, the same words) for an unknown address, a disabled account and a wrong
password; the link request always answers "if an account exists, a link is on its way". Both
are rate-limited per account and per client address. A sign-in link opens a page with a
button: mail scanners that fetch links do not spend it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsletter.accounts import users
from newsletter.accounts.roles import Permission
from newsletter.accounts.sign_in_mail import send_sign_in_mail
from newsletter.errors import AuthenticationError, ProviderError
from newsletter.logs import log_event
from newsletter.web.bodies import read_form
from newsletter.web.context import in_transaction, page_language, state_of
from newsletter.web.desk.auth import Desk, desk_route, message_page, page, signed_in
from newsletter.web.desk.sessions import COOKIE_PATH, PRE_COOKIE, desk_state
from newsletter.web.security import CsrfSigner, client_ip

logger = logging.getLogger(__name__)


def _safe_next(value: object) -> str:
    """Only a desk path of ours: never another site (`//evil`, `/desk\\..`, a scheme)."""
    if (
        isinstance(value, str)
        and value.startswith("/desk/")
        and "\\" not in value
        and "://" not in value
    ):
        return value
    return "/desk/"


def _with_pre_cookie(request: Request, render: Any) -> Response:
    """A sign-in form: a nonce cookie and its signed token in the form (double submit)."""
    state = desk_state(request)
    nonce = request.cookies.get(PRE_COOKIE) or CsrfSigner.new_nonce()
    response: Response = render(state.csrf_token(nonce))
    response.set_cookie(
        PRE_COOKIE,
        nonce,
        max_age=state.csrf.max_age_s,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=state.sessions.secure,
    )
    return response


def _sign_in_form(
    request: Request, *, status: int = 200, error: str | None = None, notice: str | None = None
) -> Response:
    lang = page_language(request)
    next_path = _safe_next(request.query_params.get("next"))
    return _with_pre_cookie(
        request,
        lambda csrf: page(
            request,
            "desk/sign_in.html",
            lang,
            status=status,
            csrf=csrf,
            next_path=next_path,
            error=error,
            notice=notice,
        ),
    )


async def sign_in_page(request: Request) -> Response:
    if await signed_in(request) is not None:
        return RedirectResponse("/desk/", status_code=303)
    return _sign_in_form(request)


def _pre_csrf_ok(request: Request, form: Any) -> bool:
    return desk_state(request).csrf_ok(form.get("csrf"), request.cookies.get(PRE_COOKIE))


def _throttled(request: Request, email: str) -> bool:
    state = desk_state(request)
    by_address = state.address_limiter.allow(client_ip(request))
    by_account = state.account_limiter.allow(email.strip().lower())
    return not (by_address and by_account)


def _start_session(request: Request, user_id: int, epoch: int, target: str) -> Response:
    state = desk_state(request)
    data = state.sessions.new(user_id, epoch, state_of(request).runtime.clock.now())
    response = RedirectResponse(target, status_code=303)
    state.sessions.set_cookie(response, data)
    response.delete_cookie(PRE_COOKIE, path=COOKIE_PATH)
    return response


async def sign_in_post(request: Request) -> Response:
    lang = page_language(request)
    form = await read_form(request)
    if not _pre_csrf_ok(request, form):
        return message_page(request, lang, 403, "csrf_title", _t(lang, "csrf_body"))
    email = str(form.get("email") or "")
    password = str(form.get("password") or "")
    if _throttled(request, email):
        return message_page(request, lang, 429, "too_many_title", _t(lang, "too_many_body"))
    runtime = state_of(request).runtime

    def work(session: Session) -> tuple[int, int]:
        user = users.authenticate(session, runtime.clock, email, password)
        return user.id, user.session_epoch

    try:
        user_id, epoch = await in_transaction(request, work)
    except AuthenticationError:
        log_event(logger, "desk.sign_in_failed", ip=client_ip(request))
        return _sign_in_form(request, status=401, error=_t(lang, "sign_in_failed"))
    return _start_session(request, user_id, epoch, _safe_next(form.get("next")))


def _t(lang: str, key: str, **values: object) -> str:
    from newsletter.web.desk.i18n import desk_translator

    return desk_translator(lang)(key, **values)


async def link_request(request: Request) -> Response:
    """Email a sign-in link to an active account; the same answer whoever asked."""
    lang = page_language(request)
    form = await read_form(request)
    if not _pre_csrf_ok(request, form):
        return message_page(request, lang, 403, "csrf_title", _t(lang, "csrf_body"))
    email = str(form.get("email") or "")
    if _throttled(request, email):
        return message_page(request, lang, 429, "too_many_title", _t(lang, "too_many_body"))
    web = state_of(request)
    runtime = web.runtime

    def work(session: Session) -> None:
        link = users.issue_sign_in_link(session, runtime.clock, email)
        if link is None:
            return
        url = f"{web.settings.base_url.rstrip('/')}/desk/sign-in/link/{link.token}"
        try:
            send_sign_in_mail(
                web.provider(),
                web.settings,
                email=link.email,
                language=link.language,
                url=url,
                expires_at=link.expires_at,
            )
        except ProviderError as err:
            log_event(logger, "desk.sign_in_link_not_sent", level=logging.WARNING, error=str(err))

    await in_transaction(request, work)
    return _sign_in_form(request, notice=_t(lang, "link_sent"))


async def link_page(request: Request) -> Response:
    lang = page_language(request)
    return _with_pre_cookie(
        request,
        lambda csrf: page(
            request, "desk/sign_in_link.html", lang, csrf=csrf, action=request.url.path
        ),
    )


async def link_post(request: Request) -> Response:
    lang = page_language(request)
    form = await read_form(request)
    if not _pre_csrf_ok(request, form):
        return message_page(request, lang, 403, "csrf_title", _t(lang, "csrf_body"))
    if not desk_state(request).address_limiter.allow(client_ip(request)):
        return message_page(request, lang, 429, "too_many_title", _t(lang, "too_many_body"))
    token = request.path_params["token"]
    runtime = state_of(request).runtime

    def work(session: Session) -> tuple[int, int]:
        user = users.redeem_sign_in_link(session, runtime.clock, token)
        return user.id, user.session_epoch

    try:
        user_id, epoch = await in_transaction(request, work)
    except AuthenticationError:
        return message_page(request, lang, 400, "link_invalid_title", _t(lang, "link_invalid_body"))
    return _start_session(request, user_id, epoch, "/desk/")


@desk_route(Permission.READ)
async def sign_out(request: Request, desk: Desk) -> Response:
    """Ends this account's sessions everywhere (the epoch moves), then the sign-in page."""

    def work(session: Session) -> None:
        user = users.active_user(session, desk.user.id)
        if user is not None:
            user.session_epoch += 1

    await in_transaction(request, work)
    response = RedirectResponse("/desk/sign-in", status_code=303)
    desk_state(request).sessions.clear_cookie(response)
    return response
