"""Which URLs may become links, and how the list's UTM parameters are added to them."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_FORBIDDEN = frozenset(' "<>\\^`{|}')


def safe_http_url(url: object) -> str | None:
    """`url` if it is an absolute http(s) URL that is safe to put in an href, else None.

    Everything else (``javascript:``, ``data:``, relative paths, URLs with spaces, quotes or
    control characters) is never rendered as a link.
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or any(ord(c) < 32 or ord(c) == 127 or c in _FORBIDDEN for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def add_utm(url: str, utm_params: str) -> str:
    """`url` with `utm_params` (a query string) appended, keeping its own query and fragment.

    A parameter the URL already carries wins: an editor's explicit `utm_campaign` is kept.
    """
    extra = parse_qsl(utm_params.lstrip("?"), keep_blank_values=False)
    if not extra:
        return url
    parts = urlsplit(url)
    present = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    missing = [(k, v) for k, v in extra if k not in present]
    if not missing:
        return url
    addition = urlencode(missing)
    query = f"{parts.query}&{addition}" if parts.query else addition
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
