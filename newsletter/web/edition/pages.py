"""The web edition's pages: home, the paged index, an issue, an article, the language switch.

Issue, article and index pages are public and the same for every reader of a language: each is
rendered once (on its first request) into the page cache under a key naming everything it
shows, and answered with ETag / Last-Modified and a short public max-age. The home page carries
the sign-up form, whose CSRF nonce is the visitor's own: its data is cached, the page is not.
Nothing here knows a subscriber: no personal link, no greeting, no "you are receiving this".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from newsletter.db.models import Article
from newsletter.errors import NotFoundError
from newsletter.issues.editorial import get_note
from newsletter.render.i18n import long_date
from newsletter.render.renderer import note_parts
from newsletter.types import VARIANTS
from newsletter.urls import DEFAULT_LIST_SLUG
from newsletter.web.context import in_transaction, parse_id, state_of
from newsletter.web.edition import queries
from newsletter.web.edition.cache import CachedPage, make_page, page_cache, respond
from newsletter.web.edition.model import WebArticle, headline
from newsletter.web.edition.queries import IssueRef
from newsletter.web.edition.reader import (
    COOKIE,
    COOKIE_MAX_AGE_S,
    content_variant,
    page_language_for,
    reader_language,
    safe_next,
    switch_url,
)
from newsletter.web.i18n import CONSENT_WORDING_VERSION, PAGE_LANGUAGES, translator
from newsletter.web.signup import csrf_pair, set_csrf_cookie

PAGE_SIZE = 50
TRANSLATORS = {lang: translator(lang) for lang in PAGE_LANGUAGES}


# --- URLs -------------------------------------------------------------------------------------


def issue_path(ref: IssueRef, variant: str | None = None) -> str:
    """`/issues/DATE?lang=...[&list=slug]`: the same URL the emails' "view in browser" uses."""
    query = {}
    if variant is not None:
        query["lang"] = variant
    if ref.list_slug != DEFAULT_LIST_SLUG:
        query["list"] = ref.list_slug
    path = f"/issues/{ref.issue_date.isoformat()}"
    return f"{path}?{urlencode(query)}" if query else path


def email_path(ref: IssueRef, variant: str) -> str:
    """The email as sent (neutral links), kept for readers who want the original."""
    query = {"lang": variant}
    if ref.list_slug != DEFAULT_LIST_SLUG:
        query["list"] = ref.list_slug
    return f"/issues/{ref.issue_date.isoformat()}/email?{urlencode(query)}"


def article_path(article_id: int, variant: str | None = None) -> str:
    return f"/articles/{article_id}" + (f"?lang={variant}" if variant else "")


def index_path(page: int, slug: str | None = None) -> str:
    query: dict[str, str | int] = {}
    if slug:
        query["list"] = slug
    if page > 1:
        query["page"] = page
    return "/issues/" + (f"?{urlencode(query)}" if query else "")


def feed_path(slug: str, lang: str) -> str:
    return f"/feeds/{slug}/{lang}.atom"


@dataclass(frozen=True, slots=True)
class Link:
    href: str
    label: str = ""
    hreflang: str = ""
    current: bool = False


# --- rendering --------------------------------------------------------------------------------


def _render(request: Request, template: str, lang: str, **values: Any) -> str:
    state = state_of(request)
    base = state.settings.base_url
    values.setdefault("alternates", [])
    values.setdefault("feeds", [])
    values.setdefault("og_type", "website")
    other = "en" if lang == "ja" else "ja"
    return state.env.get_template(template).render(
        lang=lang,
        other_lang=other,
        t=TRANSLATORS[lang],
        ts=TRANSLATORS,
        base_url=base,
        newsletter_name=state.settings.newsletter_name,
        postal_address=state.settings.postal_address,
        long_date=long_date,
        **values,
    )


def _absolute(request: Request, path: str) -> str:
    return state_of(request).settings.base_url + path


def _feeds(request: Request, lists: list[tuple[str, str]], lang: str) -> list[Link]:
    t = TRANSLATORS[lang]
    return [
        Link(_absolute(request, feed_path(slug, lang)), t("feed_title", name=name))
        for slug, name in lists
    ]


def _cached(request: Request, key: tuple[Any, ...], build: Callable[[], CachedPage]) -> CachedPage:
    return page_cache(request).get_or_render(key, build)


# --- the issue page ---------------------------------------------------------------------------


def editor_note_for(session: Session, issue: IssueRef, variant: str) -> dict[str, Any] | None:
    """The editor's note above the articles, in the variant's reading order (as in the email).

    No cache key of its own: a note can only change while the issue is `built`, and a page
    exists only once it was sent (its `sent_at` is in the key).
    """
    note = get_note(session, issue.list_id, issue.issue_date)
    if note is None:
        return None
    return note_parts(note.ja, note.en, variant)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise NotFoundError("expected a date like 2026-06-13") from None


async def issue(request: Request) -> Response:
    issue_date = _parse_date(request.path_params["date"])
    variant = content_variant(request)
    lang = page_language_for(request, variant)
    slug = request.query_params.get("list") or DEFAULT_LIST_SLUG

    def work(session: Session) -> CachedPage:
        ref = queries.find_issue(session, slug, issue_date)
        if ref is None:
            raise NotFoundError(f"no sent issue for {issue_date} on list {slug!r}")
        before, after = queries.neighbours(session, ref)
        key = (
            "issue",
            ref.id,
            variant,
            lang,
            ref.sent_at,
            before.id if before else None,
            after.id if after else None,
        )
        return _cached(
            request, key, lambda: _issue_page(request, session, ref, before, after, variant, lang)
        )

    return respond(request, await in_transaction(request, work))


def _variant_links(lang: str, make: Callable[[str], str], current: str) -> list[Link]:
    t = TRANSLATORS[lang]
    return [Link(make(v), t("variant_" + v), current=v == current) for v in VARIANTS]


def _issue_page(
    request: Request,
    session: Session,
    ref: IssueRef,
    before: IssueRef | None,
    after: IssueRef | None,
    variant: str,
    lang: str,
) -> CachedPage:
    articles = queries.issue_articles(session, ref.id)
    t = TRANSLATORS[lang]
    first = headline(articles, variant if variant in PAGE_LANGUAGES else lang)
    heading = t("issue_heading", name=ref.list_name, date=long_date(ref.issue_date, lang))
    other = "en" if lang == "ja" else "ja"
    switch_to = issue_path(ref, other) if variant in PAGE_LANGUAGES else issue_path(ref, variant)
    html = _render(
        request,
        "edition/issue.html",
        lang,
        title=f"{heading}: {first}" if first else heading,
        description=" / ".join(a.title(lang) for a in articles[:4]),
        canonical=_absolute(request, issue_path(ref, variant)),
        alternates=[
            Link(_absolute(request, issue_path(ref, code)), hreflang=code)
            for code in PAGE_LANGUAGES
        ],
        feeds=_feeds(request, [(ref.list_slug, ref.list_name)], lang),
        switch_url=switch_url(other, switch_to),
        og_type="website",
        heading=heading,
        ref=ref,
        variant=variant,
        variants=_variant_links(lang, lambda v: issue_path(ref, v), variant),
        articles=articles,
        article_path=article_path,
        editor_note=editor_note_for(session, ref, variant),
        email_url=email_path(ref, variant),
        before=Link(issue_path(before, variant), long_date(before.issue_date, lang))
        if before
        else None,
        after=Link(issue_path(after, variant), long_date(after.issue_date, lang))
        if after
        else None,
    )
    return make_page(html, "text/html; charset=utf-8", ref.sent_at)


# --- the article page -------------------------------------------------------------------------


async def article(request: Request) -> Response:
    article_id = parse_id(request.path_params["article_id"], Article.id)
    variant = content_variant(request)
    lang = page_language_for(request, variant)

    def work(session: Session) -> CachedPage:
        refs = queries.appearances(session, article_id)
        if not refs:
            raise NotFoundError(f"article {article_id} was never published")
        key = ("article", article_id, variant, lang, tuple((r.id, r.sent_at) for r in refs))
        return _cached(
            request, key, lambda: _article_page(request, session, article_id, variant, lang)
        )

    return respond(request, await in_transaction(request, work))


def _article_page(
    request: Request, session: Session, article_id: int, variant: str, lang: str
) -> CachedPage:
    public = queries.public_article(session, article_id)
    if public is None:
        raise NotFoundError(f"article {article_id} was never published")
    item: WebArticle = public.article
    sections = item.sections(variant)
    other = "en" if lang == "ja" else "ja"
    switch_to = (
        article_path(article_id, other)
        if variant in PAGE_LANGUAGES
        else article_path(article_id, variant)
    )
    canonical_variant = (
        variant
        if variant in item.languages or variant not in PAGE_LANGUAGES
        else (sections[0].language)
    )
    html = _render(
        request,
        "edition/article.html",
        lang,
        title=sections[0].title,
        description=sections[0].parts.summary,
        canonical=_absolute(request, article_path(article_id, canonical_variant)),
        alternates=[
            Link(_absolute(request, article_path(article_id, code)), hreflang=code)
            for code in item.languages
        ],
        feeds=_feeds(request, sorted({(r.list_slug, r.list_name) for r in public.issues}), lang),
        switch_url=switch_url(other, switch_to),
        og_type="article",
        article=item,
        sections=sections,
        variant=variant,
        variants=_variant_links(lang, lambda v: article_path(article_id, v), variant),
        issues=[
            Link(issue_path(r, variant), f"{r.list_name} {long_date(r.issue_date, lang)}")
            for r in public.issues
        ],
    )
    return make_page(html, "text/html; charset=utf-8", public.last_published)


# --- the index --------------------------------------------------------------------------------


def _page_number(request: Request) -> int:
    text = request.query_params.get("page", "1")
    if not (text.isascii() and text.isdigit()) or len(text) > 6 or int(text) < 1:
        raise NotFoundError("page: expected a page number from 1")
    return int(text)


async def index(request: Request) -> Response:
    page = _page_number(request)
    lang = reader_language(request)
    slug = request.query_params.get("list") or None

    def work(session: Session) -> CachedPage:
        version = queries.edition_version(session, slug)
        key = ("index", slug, page, lang, version)
        return _cached(request, key, lambda: _index_page(request, session, page, slug, lang))

    return respond(request, await in_transaction(request, work))


@dataclass(frozen=True, slots=True)
class IndexRow:
    url: str
    issue_date: date
    list_name: str
    headline: str
    article_count: int


def _index_page(
    request: Request, session: Session, page: int, slug: str | None, lang: str
) -> CachedPage:
    total = queries.count_issues(session, slug)
    pages = max(1, -(-total // PAGE_SIZE))
    if page > pages:
        raise NotFoundError(f"page {page}: there are {pages}")
    refs = queries.issue_page(session, (page - 1) * PAGE_SIZE, PAGE_SIZE, slug)
    lists = queries.public_lists(session)
    rows = [
        IndexRow(
            url=issue_path(h.issue, lang),
            issue_date=h.issue.issue_date,
            list_name=h.issue.list_name,
            headline=h.first.title(lang) if h.first else "",
            article_count=h.article_count,
        )
        for h in queries.headlines(session, refs)
    ]
    t = TRANSLATORS[lang]
    other = "en" if lang == "ja" else "ja"
    here = index_path(page, slug)
    newest = max((r.sent_at for r in refs if r.sent_at), default=None)
    html = _render(
        request,
        "edition/index.html",
        lang,
        title=t("archive_title")
        + (f" ({t('page_of', page=page, pages=pages)})" if page > 1 else ""),
        description=t("site_description"),
        canonical=_absolute(request, here),
        feeds=_feeds(request, lists, lang),
        switch_url=switch_url(other, here),
        rows=rows,
        several_lists=len(lists) > 1,
        page=page,
        pages=pages,
        newer=Link(index_path(page - 1, slug)) if page > 1 else None,
        older=Link(index_path(page + 1, slug)) if page < pages else None,
    )
    return make_page(html, "text/html; charset=utf-8", newest)


# --- home -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latest:
    ref: IssueRef
    articles: list[WebArticle]


def _latest(request: Request, session: Session) -> tuple[list[Latest], list[tuple[str, str]]]:
    """The latest issue of each list with its articles; kept until another issue is sent."""
    version = queries.edition_version(session)
    cache = page_cache(request)
    key = ("home-data", version)
    found = cache.data.get(key)
    if found is None:
        latest = [
            Latest(ref, queries.issue_articles(session, ref.id))
            for ref in queries.latest_issues(session)
        ]
        found = (latest, queries.public_lists(session))
        cache.data = {key: found}
    return found  # type: ignore[no-any-return]


async def home(request: Request) -> Response:
    lang = reader_language(request)
    latest, lists = await in_transaction(request, lambda s: _latest(request, s))
    nonce, csrf = csrf_pair(request)
    other = "en" if lang == "ja" else "ja"
    html = _render(
        request,
        "edition/home.html",
        lang,
        title=state_of(request).settings.newsletter_name,
        description=TRANSLATORS[lang]("site_description"),
        canonical=_absolute(request, "/"),
        feeds=_feeds(request, lists, lang),
        switch_url=switch_url(other, "/"),
        latest=latest,
        lists=lists,
        issue_path=issue_path,
        article_path=article_path,
        csrf=csrf,
        wording_version=CONSENT_WORDING_VERSION,
        default_list=lists[0][0] if len(lists) == 1 else DEFAULT_LIST_SLUG,
    )
    # The form's nonce is this visitor's: the page is never shared or stored.
    response = HTMLResponse(html, headers={"Vary": "Accept-Language, Cookie"})
    set_csrf_cookie(request, response, nonce)
    return response


# --- the language switch ----------------------------------------------------------------------


async def switch_language(request: Request) -> Response:
    """Remember the reader's language in a cookie and go back to the page (a local path)."""
    code = request.path_params["code"]
    if code not in PAGE_LANGUAGES:
        raise NotFoundError(f"no pages in {code!r}")
    response = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    response.set_cookie(
        COOKIE,
        code,
        max_age=COOKIE_MAX_AGE_S,
        path="/",
        secure=state_of(request).settings.base_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response
