"""Pages rendered once and kept in memory; answers with ETag / Last-Modified, or 304.

A page is stored under a key that names everything it shows (the issue's id, the languages,
and a version that changes when anything on the page would: the neighbouring issues, the
time it was sent). A changed issue gets a new key, so nothing is ever invalidated by hand; the
cache is bounded (least recently used pages go first) and each process keeps its own.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

# Public pages: shared caches may keep them briefly, then must ask again (a 304 is cheap).
PUBLIC_CACHE_CONTROL = "public, max-age=300"
# A page whose language comes from the browser or the cookie differs by these.
VARY = "Accept-Language, Cookie"


@dataclass(frozen=True, slots=True)
class CachedPage:
    body: bytes
    etag: str
    last_modified: datetime | None
    media_type: str


def make_page(text: str, media_type: str, last_modified: datetime | None) -> CachedPage:
    body = text.encode("utf-8")
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if last_modified is not None and last_modified.tzinfo is None:
        last_modified = last_modified.replace(tzinfo=UTC)
    return CachedPage(body, etag, last_modified, media_type)


class PageCache:
    """A bounded, thread-safe map from a page's key to its rendered bytes."""

    def __init__(self, max_pages: int = 2048) -> None:
        self.max_pages = max_pages
        self._pages: OrderedDict[Hashable, CachedPage] = OrderedDict()
        self._lock = threading.Lock()
        self.renders = 0  # pages rendered (a test and the benchmark read it)
        # Data shared by pages that are not cached whole (the home page's latest issues):
        # one entry, replaced when its key (the edition's version) changes.
        self.data: dict[Hashable, Any] = {}

    def get_or_render(self, key: Hashable, render: Callable[[], CachedPage]) -> CachedPage:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
                return page
        page = render()  # outside the lock: two first requests may both render, same bytes
        with self._lock:
            self.renders += 1
            self._pages[key] = page
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)
        return page

    def __len__(self) -> int:
        return len(self._pages)


_CREATE = threading.Lock()


def page_cache(request: Request) -> PageCache:
    """The application's cache, made on first use (one per application, so per process)."""
    state = request.app.state
    cache = getattr(state, "edition_cache", None)
    if cache is None:
        with _CREATE:
            cache = getattr(state, "edition_cache", None)
            if cache is None:
                cache = state.edition_cache = PageCache()
    return cache  # type: ignore[no-any-return]


def _not_modified(request: Request, page: CachedPage) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or page.etag in tags
    since = request.headers.get("if-modified-since")
    if since and page.last_modified is not None:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return page.last_modified.replace(microsecond=0) <= when
    return False


def respond(
    request: Request,
    page: CachedPage,
    *,
    cache_control: str = PUBLIC_CACHE_CONTROL,
    vary: str | None = VARY,
) -> Response:
    """200 with the page, or 304 when the reader's copy (ETag, else date) is this one."""
    headers = {"ETag": page.etag, "Cache-Control": cache_control}
    if vary:
        headers["Vary"] = vary
    if page.last_modified is not None:
        headers["Last-Modified"] = format_datetime(page.last_modified.astimezone(UTC), usegmt=True)
    if _not_modified(request, page):
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type=page.media_type, headers=headers)
