"""Unsubscribe and preferences pages, reached from the signed links in every email.

The link token is the only credential: no cookie, no login. One-click unsubscribe (RFC 8058)
is a POST with `List-Unsubscribe=One-Click` to the same URL; it answers 200 directly (no
redirect) and is idempotent. A tampered token gets the same 400 page whatever it contains.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from newsletter.db.models import MailingList, Subscriber, Subscription
from newsletter.engagement.recording import lists_that_track
from newsletter.errors import NotFoundError, TokenError, ValidationError
from newsletter.logs import mask_email
from newsletter.types import VARIANTS, SubscriptionStatus
from newsletter.urls import preferences_url
from newsletter.web.bodies import FORM_MAX_BYTES, is_form, parse_form, read_form, read_limited
from newsletter.web.context import in_transaction, page_language, parse_id, render, state_of
from newsletter.web.i18n import MESSAGES, translator
from newsletter.web.security import client_ip
from subscribers.service import set_preferences, set_tracking, unsubscribe
from subscribers.tokens import LinkClaim

ONE_CLICK = "One-Click"


@dataclass(frozen=True, slots=True)
class _LinkView:
    list_name: str
    masked_email: str | None
    language: str | None


def _claim(request: Request) -> LinkClaim:
    return state_of(request).links.verify(request.path_params["token"])


def _view(session: Session, claim: LinkClaim) -> _LinkView:
    """What a link page may show: the list's name and a masked address, nothing more."""
    mailing_list = session.get(MailingList, claim.list_id)
    if mailing_list is None:
        raise TokenError("this link is not valid")
    subscriber = session.get(Subscriber, claim.subscriber_id)
    if subscriber is None:  # erased: the link still "works" and shows no one
        return _LinkView(mailing_list.name, None, None)
    return _LinkView(mailing_list.name, mask_email(subscriber.email), subscriber.language)


async def unsubscribe_page(request: Request) -> Response:
    claim = _claim(request)
    view = await in_transaction(request, lambda s: _view(s, claim))
    lang = page_language(request, view.language)
    token = request.path_params["token"]
    return render(
        request,
        "unsubscribe.html",
        lang,
        list_name=view.list_name,
        masked_email=view.masked_email,
        action=f"/u/{token}",
        preferences_url=f"/p/{token}",
    )


async def unsubscribe_post(request: Request) -> Response:
    """RFC 8058 one-click (mail clients) and the confirmation page's button: the same POST."""
    claim = _claim(request)
    if not await _is_one_click(request):
        raise ValidationError("expected List-Unsubscribe=One-Click in the request body")
    state = state_of(request)
    ip = client_ip(request)

    def work(session: Session) -> _LinkView:
        view = _view(session, claim)
        if view.masked_email is not None:
            unsubscribe(
                session,
                state.runtime.clock,
                subscriber_id=claim.subscriber_id,
                list_id=claim.list_id,
                source="web",
                ip=ip,
            )
        return view

    view = await in_transaction(request, work)
    lang = page_language(request, view.language)
    t = translator(lang)
    return render(
        request,
        "message.html",
        lang,
        title=t("unsubscribed_title"),
        body=t("unsubscribed_body", list=view.list_name),
        link_url=f"/p/{request.path_params['token']}",
        link_text=t("preferences_link"),
    )


async def _is_one_click(request: Request) -> bool:
    """The RFC 8058 body, urlencoded or multipart; a bare body without a form type too."""
    body = await read_limited(request, FORM_MAX_BYTES)
    if is_form(request.headers):
        form = await parse_form(body, request.headers)
        return form.get("List-Unsubscribe") == ONE_CLICK
    text = body[:1024].decode("utf-8", "replace")
    return ONE_CLICK in parse_qs(text.strip()).get("List-Unsubscribe", [])


@dataclass(frozen=True, slots=True)
class _Preferences:
    language: str
    lists: list[dict[str, object]]
    subscribed: set[int]
    tracking: bool  # the subscriber allows engagement tracking (not tracking_off)
    tracking_lists: list[str]  # names of the lists that record clicks or opens


def _load_preferences(session: Session, claim: LinkClaim) -> _Preferences:
    subscriber = session.get(Subscriber, claim.subscriber_id)
    if subscriber is None or session.get(MailingList, claim.list_id) is None:
        raise TokenError("this link is not valid")
    lists = [
        {"id": m.id, "name": m.name}
        for m in session.scalars(select(MailingList).order_by(MailingList.id))
    ]
    subscribed = set(
        session.scalars(
            select(Subscription.list_id).where(
                Subscription.subscriber_id == subscriber.id,
                Subscription.status == SubscriptionStatus.ACTIVE,
            )
        )
    )
    tracking_lists = [str(item["name"]) for item in lists_that_track(session)]
    return _Preferences(
        subscriber.language, lists, subscribed, not subscriber.tracking_off, tracking_lists
    )


def _preferences_page(
    request: Request,
    prefs: _Preferences,
    *,
    saved: bool = False,
    deleted: bool = False,
    error: str | None = None,
) -> Response:
    state = state_of(request)
    token = request.path_params["token"]
    lang = page_language(request, prefs.language)
    return render(
        request,
        "preferences.html",
        lang,
        status=400 if error else 200,
        action=preferences_url("", token),
        csrf=state.csrf.sign(state.csrf.bind(token)),
        language=prefs.language,
        lists=prefs.lists,
        subscribed=prefs.subscribed,
        tracking=prefs.tracking,
        tracking_lists=prefs.tracking_lists,
        saved=saved,
        deleted=deleted,
        error=error,
    )


async def preferences_page(request: Request) -> Response:
    claim = _claim(request)
    prefs = await in_transaction(request, lambda s: _load_preferences(s, claim))
    return _preferences_page(request, prefs)


async def preferences_post(request: Request) -> Response:
    claim = _claim(request)
    state = state_of(request)
    token = request.path_params["token"]
    form = await read_form(request)
    if not state.csrf.check(_field(form.get("csrf")), state.csrf.bind(token)):
        prefs = await in_transaction(request, lambda s: _load_preferences(s, claim))
        lang = page_language(request, prefs.language)
        return _preferences_page(request, prefs, error=MESSAGES["form_expired"][lang])
    language = _field(form.get("language"))
    if language not in VARIANTS:
        raise ValidationError(f"language: expected one of {', '.join(VARIANTS)}")
    values = [v for v in form.getlist("lists") if isinstance(v, str)]
    if not all(v.isascii() and v.isdigit() for v in values):
        raise ValidationError("lists: expected list ids")
    list_ids = sorted({parse_id(v, MailingList.id) for v in values})  # too large: 404, unknown
    # An unticked checkbox is not sent: the hidden field says the choice was on the form.
    tracking = form.get("tracking") == "on" if form.get("tracking_shown") == "1" else None
    delete_events = form.get("forget_events") == "yes"

    def work(session: Session) -> _Preferences:
        _load_preferences(session, claim)  # the subscriber and list still exist
        known = set(session.scalars(select(MailingList.id).where(MailingList.id.in_(list_ids))))
        if known != set(list_ids):
            raise NotFoundError("lists: unknown list id")
        set_preferences(
            session,
            state.runtime.clock,
            subscriber_id=claim.subscriber_id,
            language=language,
            list_ids=list_ids,
        )
        if tracking is not None or delete_events:
            set_tracking(
                session,
                state.runtime.clock,
                subscriber_id=claim.subscriber_id,
                allowed=tracking,
                delete_events=delete_events,
            )
        session.flush()
        return _load_preferences(session, claim)

    prefs = await in_transaction(request, work)
    return _preferences_page(request, prefs, saved=True, deleted=delete_events)


def _field(value: object) -> str | None:
    return value if isinstance(value, str) else None
