"""Every public URL the emails and pages link to, built in one place so all layers agree."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

DEFAULT_LIST_SLUG = "daily"


def unsubscribe_url(base_url: str, token: str) -> str:
    """GET shows a confirmation page; POST `List-Unsubscribe=One-Click` unsubscribes (RFC 8058)."""
    return f"{base_url}/u/{token}"


def preferences_url(base_url: str, token: str) -> str:
    return f"{base_url}/p/{token}"


def click_url(base_url: str, token: str, link_no: int) -> str:
    """A tracked link: records the click, then 302 to the issue's own link number `link_no`."""
    return f"{base_url}/c/{token}/{link_no}"


def open_pixel_url(base_url: str, token: str) -> str:
    """The opt-in open pixel (a 1x1 GIF)."""
    return f"{base_url}/o/{token}.gif"


def confirm_url(base_url: str, token: str) -> str:
    return f"{base_url}/confirm/{token}"


def subscribe_url(base_url: str) -> str:
    return f"{base_url}/subscribe"


def archive_url(base_url: str) -> str:
    return f"{base_url}/issues/"


def web_version_url(base_url: str, issue_date: date, variant: str, list_slug: str) -> str:
    """The issue in the browser, with no personal links in it."""
    query = {"lang": variant}
    if list_slug != DEFAULT_LIST_SLUG:
        query["list"] = list_slug
    return f"{base_url}/issues/{issue_date.isoformat()}?{urlencode(query)}"
