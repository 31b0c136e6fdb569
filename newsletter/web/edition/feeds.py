"""Atom feeds of issues per list and language, `sitemap.xml` and `robots.txt`.

Written with Jinja2 templates (`templates/web/edition/*.xml`, autoescaped like every page):
Atom and sitemaps are a few fixed elements, and the templates keep the markup in one place
with no new dependency. The feed holds the newest `FEED_SIZE` issues; the sitemap every public
issue (in both languages) and article, well under the format's 50,000 URLs for decades of
daily issues.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from newsletter.errors import NotFoundError
from newsletter.render.i18n import long_date
from newsletter.types import VARIANTS
from newsletter.web.context import in_transaction, state_of
from newsletter.web.edition import queries
from newsletter.web.edition.cache import CachedPage, make_page, page_cache, respond
from newsletter.web.edition.pages import (
    TRANSLATORS,
    article_path,
    feed_path,
    index_path,
    issue_path,
)
from newsletter.web.i18n import PAGE_LANGUAGES

FEED_SIZE = 50
ATOM = "application/atom+xml; charset=utf-8"
XML = "application/xml; charset=utf-8"


def rfc3339(value: datetime | None) -> str:
    value = value or datetime(1970, 1, 1, tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def atom(request: Request) -> Response:
    slug = request.path_params["slug"]
    variant = request.path_params["lang"]
    if variant not in VARIANTS:
        raise NotFoundError(f"no feed in {variant!r}")
    lang = variant if variant in PAGE_LANGUAGES else ("en" if variant == "both-en" else "ja")

    def work(session: Session) -> CachedPage:
        version = queries.edition_version(session, slug)
        if version[0] == 0:
            raise NotFoundError(f"no sent issue on list {slug!r}")
        key = ("atom", slug, variant, version)
        return page_cache(request).get_or_render(
            key, lambda: _feed(request, session, slug, variant, lang)
        )

    return respond(request, await in_transaction(request, work), vary=None)


def _feed(request: Request, session: Session, slug: str, variant: str, lang: str) -> CachedPage:
    state = state_of(request)
    base = state.settings.base_url
    refs = queries.feed_issues(session, slug, FEED_SIZE)
    t = TRANSLATORS[lang]
    entries = []
    for item in queries.headlines(session, refs):
        ref = item.issue
        articles = queries.issue_articles(session, ref.id)
        title = long_date(ref.issue_date, lang)
        if item.first is not None:
            title = f"{title}: {item.first.title(lang)}"
        entries.append(
            {
                "url": base + issue_path(ref, variant),
                "title": title,
                "updated": rfc3339(ref.sent_at),
                "articles": [
                    (a.sections(variant)[0], base + article_path(a.article_id, variant))
                    for a in articles
                ],
            }
        )
    newest = max((r.sent_at for r in refs if r.sent_at), default=None)
    xml = state.env.get_template("edition/atom.xml").render(
        lang=lang,
        feed_url=base + feed_path(slug, variant),
        index_url=base + index_path(1, slug),
        title=t("feed_title", name=refs[0].list_name if refs else slug),
        subtitle=t("site_description"),
        author=state.settings.newsletter_name,
        updated=rfc3339(newest),
        entries=entries,
    )
    return make_page(xml, ATOM, newest)


async def sitemap(request: Request) -> Response:
    def work(session: Session) -> CachedPage:
        key = ("sitemap", queries.edition_version(session))
        return page_cache(request).get_or_render(key, lambda: _sitemap(request, session))

    return respond(request, await in_transaction(request, work), vary=None)


def _sitemap(request: Request, session: Session) -> CachedPage:
    state = state_of(request)
    base = state.settings.base_url
    issues, articles = queries.sitemap_entries(session)
    urls: list[tuple[str, str | None]] = [(base + "/", None), (base + index_path(1), None)]
    for ref in issues:
        for code in PAGE_LANGUAGES:
            urls.append((base + issue_path(ref, code), rfc3339(ref.sent_at)))
    for article_id, sent in articles:
        urls.append((base + article_path(article_id), rfc3339(sent)))
    newest = max((r.sent_at for r in issues if r.sent_at), default=None)
    xml = state.env.get_template("edition/sitemap.xml").render(urls=urls)
    return make_page(xml, XML, newest)


async def robots(request: Request) -> Response:
    base = state_of(request).settings.base_url
    text = (
        "User-agent: *\n"
        "Allow: /\n"
        # Personal links, forms and editor pages are nobody's search result.
        "Disallow: /u/\nDisallow: /p/\nDisallow: /confirm/\nDisallow: /language/\n"
        "Disallow: /preview/\nDisallow: /admin/\nDisallow: /desk/\nDisallow: /webhooks/\n"
        f"Sitemap: {base}/sitemap.xml\n"
    )
    return PlainTextResponse(text, headers={"Cache-Control": "public, max-age=3600"})
