"""The reader's language on the web edition, and the language of a page's content.

The page language (navigation, labels) is, in order: `?hl=`, the reader's choice remembered in
the `nl_hl` cookie (set by the switch, `/language/{code}`), then `Accept-Language`. An issue or
article page's content follows `?lang=ja|en|both|both-en` when given (the emails' "view in
browser" links carry it), else the page language.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request

from newsletter.errors import ValidationError
from newsletter.types import VARIANTS
from newsletter.web.i18n import PAGE_LANGUAGES, pick_language

COOKIE = "nl_hl"
COOKIE_MAX_AGE_S = 365 * 24 * 3600


def reader_language(request: Request) -> str:
    return pick_language(
        request.headers.get("accept-language"),
        request.cookies.get(COOKIE),
        request.query_params.get("hl"),
    )


def content_variant(request: Request) -> str:
    """`?lang=` when given (one of the four variants, else 400), else the reader's language."""
    variant = request.query_params.get("lang")
    if variant is None or variant == "":
        return reader_language(request)
    if variant not in VARIANTS:
        raise ValidationError(f"lang: expected one of {', '.join(VARIANTS)}")
    return variant


def page_language_for(request: Request, variant: str) -> str:
    """Labels in the content's language when it is one language, unless `?hl=` says otherwise."""
    override = request.query_params.get("hl")
    if override in PAGE_LANGUAGES:
        return override
    if variant in PAGE_LANGUAGES:
        return variant
    if variant == "both-en" and COOKIE not in request.cookies and "hl" not in request.query_params:
        return "en"
    return reader_language(request)


def safe_next(target: str | None) -> str:
    """A local path to go back to after the switch; anything else is the home page."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ch in target for ch in "\r\n\\"):
        return "/"
    return target


def switch_url(language: str, back_to: str) -> str:
    """The language switch's link: sets the cookie, then returns to `back_to`."""
    return f"/language/{language}?" + urlencode({"next": back_to})
