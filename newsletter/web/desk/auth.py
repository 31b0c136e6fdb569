"""Who is asking: every desk route goes through `desk_route`, which signs the request in from
its cookie (re-reading the account), checks the route's permission on the server, checks the
CSRF token of every POST, and answers 403 with a page otherwise. Hiding a button is never the
check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from newsletter.accounts.actors import Actor
from newsletter.accounts.roles import Permission, Role, allows
from newsletter.accounts.users import active_user
from newsletter.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    StateError,
    SuppressedError,
    ValidationError,
)
from newsletter.web.bodies import read_form
from newsletter.web.context import in_transaction, page_language, state_of
from newsletter.web.desk.i18n import desk_translator
from newsletter.web.desk.sessions import COOKIE, REFRESH_AFTER_S, SessionData, desk_state


@dataclass(frozen=True, slots=True)
class DeskUser:
    id: int
    email: str
    role: str
    language: str | None


@dataclass(frozen=True)
class Desk:
    """One signed-in request: the account, its language, the CSRF token for its forms."""

    user: DeskUser
    session: SessionData
    lang: str
    csrf: str
    form: FormData | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.user.email, Role(self.user.role))

    def can(self, permission: Permission | str) -> bool:
        return allows(self.user.role, Permission(permission))

    def t(self, key: str, **values: object) -> str:
        return desk_translator(self.lang)(key, **values)


def _load_user(session: Session, data: SessionData) -> DeskUser | None:
    user = active_user(session, data.user_id)
    if user is None or user.session_epoch != data.epoch:
        return None
    return DeskUser(user.id, user.email, user.role, user.language)


async def signed_in(request: Request) -> tuple[DeskUser, SessionData] | None:
    state = desk_state(request)
    now = state_of(request).runtime.clock.now()
    data = state.sessions.loads(request.cookies.get(COOKIE), now)
    if data is None:
        return None
    user = await in_transaction(request, lambda session: _load_user(session, data))
    return (user, data) if user is not None else None


def page(
    request: Request,
    template: str,
    lang: str,
    *,
    desk: Desk | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A desk page: the shared values every template of `templates/web/desk/` reads."""
    web = state_of(request)
    query = dict(request.query_params)
    query["hl"] = "en" if lang == "ja" else "ja"
    html = web.env.get_template(template).render(
        lang=lang,
        t=desk_translator(lang),
        desk=desk,
        user=desk.user if desk else None,
        csrf=desk.csrf if desk else values.pop("csrf", ""),
        newsletter_name=web.settings.newsletter_name,
        switch_url=request.url.path + "?" + urlencode(query),
        hl=request.query_params.get("hl", ""),
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=headers)


def message_page(
    request: Request,
    lang: str,
    status: int,
    title_key: str,
    body: str | None = None,
    *,
    desk: Desk | None = None,
) -> HTMLResponse:
    return page(
        request,
        "desk/message.html",
        lang,
        desk=desk,
        status=status,
        title=desk_translator(lang)(title_key),
        body=body,
    )


Handler = Callable[[Request, Desk], Awaitable[Response]]


def desk_route(
    permission: Permission,
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Sign in from the cookie, check `permission`, and for a POST its CSRF token."""

    def decorate(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            state = desk_state(request)
            found = await signed_in(request)
            if found is None:
                lang = page_language(request)
                if request.method == "GET":
                    target = request.url.path
                    if request.url.query:
                        target += "?" + request.url.query
                    response: Response = RedirectResponse(
                        "/desk/sign-in?" + urlencode({"next": target}), status_code=303
                    )
                else:
                    response = message_page(request, lang, 403, "signed_out", None)
                if COOKIE in request.cookies:
                    state.sessions.clear_cookie(response)
                return response
            user, data = found
            lang = page_language(request, user.language)
            desk = Desk(user, data, lang, state.csrf_token(data.nonce))
            if not desk.can(permission):
                return message_page(
                    request,
                    lang,
                    403,
                    "forbidden_title",
                    desk.t("forbidden_body", role=desk.t("role_" + user.role)),
                    desk=desk,
                )
            if request.method == "POST":
                form = await read_form(request)
                if not state.csrf_ok(form.get("csrf"), data.nonce):
                    return message_page(
                        request, lang, 403, "csrf_title", desk.t("csrf_body"), desk=desk
                    )
                desk = replace(desk, form=form)
            try:
                response = await handler(request, desk)
            except PermissionDeniedError:
                response = message_page(
                    request,
                    lang,
                    403,
                    "forbidden_title",
                    desk.t("forbidden_body", role=desk.t("role_" + user.role)),
                    desk=desk,
                )
            except NotFoundError as err:
                response = message_page(request, lang, 404, "not_found", str(err), desk=desk)
            except (StateError, ValidationError, SuppressedError, AuthenticationError) as err:
                response = message_page(request, lang, 409, "refused_title", str(err), desk=desk)
            now = int(state_of(request).runtime.clock.now().timestamp())
            cookies = response.headers.getlist("set-cookie")
            handled = any(c.startswith(COOKIE + "=") for c in cookies)  # sign-out cleared it
            if now - data.seen_at >= REFRESH_AFTER_S and not handled:
                state.sessions.set_cookie(response, replace(data, seen_at=now))
            return response

        return endpoint

    return decorate


def back_to(path: str, done: str | None = None, hl: str | None = None) -> RedirectResponse:
    """After a POST, the page again (303: the browser GETs it; a reload posts nothing)."""
    query = {k: v for k, v in (("done", done), ("hl", hl)) if v}
    return RedirectResponse(path + ("?" + urlencode(query) if query else ""), status_code=303)
