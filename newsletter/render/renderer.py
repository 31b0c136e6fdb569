"""Render an issue's three variants (ja, en, both) to HTML and plain text, once each.

Pure: no database, no clock. The Jinja environments and translations are cached; each variant
compiles its MJML once (more only when the size budget forces a trim). Recipient-specific
values are slot markers (`newsletter.types.SLOT_*`) filled at send time.
"""

from __future__ import annotations

from typing import Any

from newsletter.config import Settings
from newsletter.errors import RenderError
from newsletter.render import i18n
from newsletter.render.budget import GMAIL_CLIP_BYTES, TRIM_STEPS, transmitted_size
from newsletter.render.environment import compile_mjml, environment
from newsletter.render.links import add_utm
from newsletter.render.plaintext import LinkRefs, finish
from newsletter.render.view import IssueView, clean_text
from newsletter.render.width import truncate_width
from newsletter.types import SLOT_PREFERENCES_URL, SLOT_UNSUBSCRIBE_URL, VARIANTS, RenderedVariant
from newsletter.urls import web_version_url

HTML_TEMPLATE = "digest/digest.mjml.j2"
TEXT_TEMPLATE = "digest/digest.txt.j2"
SUBJECT_MAX = 200  # columns; the database keeps 300 characters
PREHEADER_MAX = 140


def chrome_language(variant: str) -> str:
    """The language of labels, dates and footer: Japanese first for the bilingual variant."""
    if variant not in VARIANTS:
        raise RenderError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    return "en" if variant == "en" else "ja"


def subject_for(view: IssueView, variant: str, settings: Settings) -> str:
    """The editor's subject for the language, else "<name> <date>: <first headline>"."""
    lang = chrome_language(variant)
    chosen = clean_text(view.subject_en if lang == "en" else view.subject_ja)
    if chosen:
        return truncate_width(" ".join(chosen.split()), SUBJECT_MAX)
    t = i18n.translations(lang)
    date_label = i18n.long_date(view.issue_date, lang)
    if not view.articles:
        return f"{settings.newsletter_name} {date_label}"
    subject = t.gettext("%(name)s %(date)s: %(headline)s") % {
        "name": settings.newsletter_name,
        "date": date_label,
        "headline": view.articles[0].title(variant),
    }
    return truncate_width(" ".join(subject.split()), SUBJECT_MAX)


def preheader_for(view: IssueView, variant: str) -> str:
    """The inbox preview line: the day's headlines after the first."""
    lang = chrome_language(variant)
    titles = [a.title(variant) for a in view.articles[1:4]] or [
        a.title(variant) for a in view.articles[:1]
    ]
    separator = "／" if lang == "ja" else " · "
    return truncate_width(separator.join(titles), PREHEADER_MAX)


def _context(view: IssueView, variant: str, settings: Settings) -> dict[str, Any]:
    lang = chrome_language(variant)
    t = i18n.translations(lang)
    utm = view.utm_params if view.utm_params is not None else settings.utm_params
    badges = {"ja": t.gettext("Japanese only"), "en": t.gettext("English only")}
    articles = []
    for number, article in enumerate(view.articles, start=1):
        sections = article.sections(variant)
        missing = article.missing(variant)
        articles.append(
            {
                "number": number,
                "anchor": f"article-{number}",
                "headline": sections[0].title,
                # The bilingual summary lists the English headline under the Japanese one.
                "subheadline": sections[1].title if len(sections) > 1 else "",
                "url": add_utm(article.url, utm) if article.url else None,
                "source_url": article.source_url,
                "source_name": article.source_name,
                "sections": sections,
                "missing": missing,
                "badge": badges[sections[0].language] if missing else "",
                "shortened": article.shortened,
            }
        )
    count = len(articles)
    return {
        "variant": variant,
        "lang": lang,
        "subject": subject_for(view, variant, settings),
        "preheader": preheader_for(view, variant),
        "newsletter_name": settings.newsletter_name,
        "date_label": i18n.long_date(view.issue_date, lang),
        "article_count": t.ngettext("%(num)s article today", "%(num)s articles today", count)
        % {"num": i18n.number(count, lang)},
        "articles": articles,
        "reason": t.gettext("You are receiving this email because you subscribed to %(name)s.")
        % {"name": view.list_name or settings.newsletter_name},
        "unsubscribe_url": SLOT_UNSUBSCRIBE_URL,
        "preferences_url": SLOT_PREFERENCES_URL,
        "web_version_url": web_version_url(
            settings.base_url, view.issue_date, variant, view.list_slug
        ),
        "postal_address": settings.postal_address,
    }


def render_mjml(view: IssueView, variant: str, settings: Settings) -> str:
    """The MJML source of a variant (for tests and for debugging a template)."""
    return _mjml_source(_context(view, variant, settings))


def _mjml_source(context: dict[str, Any]) -> str:
    return environment("html", context["lang"]).get_template(HTML_TEMPLATE).render(context)


def render_text(view: IssueView, variant: str, settings: Settings) -> str:
    return _text(_context(view, variant, settings))


def _text(context: dict[str, Any]) -> str:
    refs = LinkRefs()
    template = environment("text", context["lang"]).get_template(TEXT_TEMPLATE)
    return finish(template.render({**context, "ref": refs, "refs": refs}))


def render_variant(view: IssueView, variant: str, settings: Settings) -> RenderedVariant:
    """One variant, trimmed step by step until its HTML fits under Gmail's clipping size."""
    where = f"issue {view.issue_id} variant {variant}"
    context = _context(view, variant, settings)
    html = compile_mjml(_mjml_source(context), where=where)
    size = transmitted_size(html, settings.base_url)
    applied: list[str] = []
    current = view
    for step in TRIM_STEPS:
        if size <= GMAIL_CLIP_BYTES:
            break
        current = step.apply(current)
        applied.append(step.description)
        context = _context(current, variant, settings)
        html = compile_mjml(_mjml_source(context), where=where)
        size = transmitted_size(html, settings.base_url)
    if size > GMAIL_CLIP_BYTES:
        raise RenderError(
            f"{where}: {size} bytes of HTML as transmitted after every trim, over Gmail's "
            f"{GMAIL_CLIP_BYTES}-byte limit: select fewer articles (NEWSLETTER_MAX_ARTICLES)"
        )
    return RenderedVariant(
        issue_id=view.issue_id,
        variant=variant,
        subject=context["subject"],
        preheader=context["preheader"],
        html=html,
        text=_text(context),
        trimmed=tuple(applied),
    )


def render_issue_variants(view: IssueView, settings: Settings) -> dict[str, RenderedVariant]:
    """All three variants of an issue, keyed "ja", "en", "both"."""
    return {variant: render_variant(view, variant, settings) for variant in VARIANTS}
