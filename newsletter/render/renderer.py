"""Render an issue's three variants (ja, en, both) to HTML and plain text, once each.

Pure: no database, no clock. The Jinja environments and translations are cached; each variant
compiles its MJML once (more only when the size budget forces a trim). Recipient-specific
values are slot markers (`newsletter.types.SLOT_*`) filled at send time.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from newsletter.config import Settings
from newsletter.errors import RenderError
from newsletter.render import i18n
from newsletter.render.budget import GMAIL_CLIP_BYTES, TRIM_STEPS, transmitted_size
from newsletter.render.environment import compile_mjml, environment
from newsletter.render.links import add_utm
from newsletter.render.parts import article_parts, dateline, reading_order
from newsletter.render.plaintext import LinkRefs, finish
from newsletter.render.view import ArticleView, IssueView, clean_text
from newsletter.render.width import display_width, truncate_width
from newsletter.types import (
    BILINGUAL_VARIANTS,
    SLOT_PREFERENCES_URL,
    SLOT_UNSUBSCRIBE_URL,
    VARIANTS,
    RenderedVariant,
)
from newsletter.urls import web_version_url

HTML_TEMPLATE = "digest/digest.mjml.j2"
TEXT_TEMPLATE = "digest/digest.txt.j2"
SUBJECT_MAX = 200  # columns; the database keeps 300 characters
PREHEADER_MAX = 140
BOTH_WIDTH = 60  # display columns of the bilingual subject and preheader
PAIR_SEPARATOR = " / "


def chrome_language(variant: str) -> str:
    """The document's language: Japanese for "both", English for "both-en" (English first)."""
    if variant not in VARIANTS:
        raise RenderError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    return "en" if variant in ("en", "both-en") else "ja"


def subject_for(view: IssueView, variant: str, settings: Settings) -> str:
    """The editor's subject for the language, else "<name> <date>: <first headline>".

    The bilingual subject holds both languages within BOTH_WIDTH display columns:
    "AI日報 6/13: <見出し> / <headline>" ("both-en": the English first), each half shortened by
    display width.
    """
    if variant in BILINGUAL_VARIANTS:
        return _both_subject(view, settings, reading_order(variant))
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


def _both_subject(view: IssueView, settings: Settings, order: tuple[str, str]) -> str:
    chosen = {"ja": clean_text(view.subject_ja), "en": clean_text(view.subject_en)}
    if any(chosen.values()):
        return fit_pair(chosen[order[0]], chosen[order[1]], "", BOTH_WIDTH)
    prefix = f"{settings.newsletter_name} {view.issue_date.month}/{view.issue_date.day}"
    if not view.articles:
        return prefix
    first = view.articles[0]
    titles = [_title_in(first, lang) for lang in order]
    return fit_pair(titles[0], titles[1], f"{prefix}: ", BOTH_WIDTH)


def _title_in(article: ArticleView, language: str) -> str:
    content = article.contents.get(language)
    return content.title if content else ""


def fit_pair(first: str, second: str, prefix: str, width: int) -> str:
    """`prefix` + "first / second" in at most `width` display columns: each half gets an
    equal share, and what one half does not need goes to the other."""
    first, second = " ".join(first.split()), " ".join(second.split())
    if not (first and second) or first == second:
        return truncate_width(prefix + (first or second), width)
    room = width - display_width(prefix) - display_width(PAIR_SEPARATOR)
    first_width, second_width = display_width(first), display_width(second)
    half = room // 2
    if first_width <= half:
        second_room = room - first_width
    elif second_width <= room - half:
        second_room = second_width
    else:
        second_room = room - half
    first_room = room - min(second_room, second_width)
    return (
        prefix
        + truncate_width(first, first_room)
        + PAIR_SEPARATOR
        + truncate_width(second, second_room)
    )


def preheader_for(view: IssueView, variant: str) -> str:
    """The inbox preview line: the day's headlines after the first (in the bilingual variants,
    the second headline in both languages within BOTH_WIDTH columns)."""
    rest = list(view.articles[1:4]) or list(view.articles[:1])
    if variant in BILINGUAL_VARIANTS:
        if not rest:
            return ""
        titles = [_title_in(rest[0], lang) for lang in reading_order(variant)]
        return fit_pair(titles[0], titles[1], "", BOTH_WIDTH)
    lang = chrome_language(variant)
    separator = "／" if lang == "ja" else " · "
    return truncate_width(separator.join(a.title(variant) for a in rest), PREHEADER_MAX)


def note_parts(note_ja: str | None, note_en: str | None, variant: str) -> dict[str, Any] | None:
    """The editor's note in the variant's reading order: `main` first, `other` (the other
    language, bilingual variants only) after; a note written in one language only is shown
    in that language to every variant. Shared by the email and the web edition."""
    notes = {"ja": clean_text(note_ja), "en": clean_text(note_en)}
    first = chrome_language(variant)
    order = (
        reading_order(variant)
        if variant in BILINGUAL_VARIANTS
        else (first, "en" if first == "ja" else "ja")
    )
    present = [(lang, notes[lang]) for lang in order if notes[lang]]
    if not present:
        return None
    main = {"lang": present[0][0], "value": present[0][1]}
    other = None
    if variant in BILINGUAL_VARIANTS and len(present) > 1:
        other = {"lang": present[1][0], "value": present[1][1]}
    return {"main": main, "other": other}


def _context(view: IssueView, variant: str, settings: Settings) -> dict[str, Any]:
    lang = chrome_language(variant)
    utm = view.utm_params if view.utm_params is not None else settings.utm_params
    zone = ZoneInfo(view.timezone) if view.timezone else settings.timezone
    articles = []
    bilingual = variant in BILINGUAL_VARIANTS
    other_lang = reading_order(variant)[1] if bilingual else ""
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
                "subheadline_lang": sections[1].language if len(sections) > 1 else "",
                "url": add_utm(article.url, utm) if article.url else None,
                "source_url": article.source_url,
                "source_name": article.source_name,
                "dateline": dateline(article, lang, zone),
                "parts": article_parts(article, variant),
                "missing": missing,
                # the language the article lacks: the badge says "<other language> only"
                "badge": sections[0].language if missing else "",
                "shortened": article.shortened,
            }
        )
    return {
        "variant": variant,
        "lang": lang,
        "chrome": variant if bilingual else lang,
        "other_lang": other_lang,
        "subject": subject_for(view, variant, settings),
        "preheader": preheader_for(view, variant),
        "newsletter_name": settings.newsletter_name,
        "date_label": i18n.long_date(view.issue_date, lang),
        "date_label_other": i18n.long_date(view.issue_date, other_lang) if bilingual else "",
        "note": note_parts(view.note_ja, view.note_en, variant),
        "article_count": len(articles),
        "count_label": i18n.number(len(articles), lang),
        "articles": articles,
        "list_name": view.list_name or settings.newsletter_name,
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
    return environment("html", context["chrome"]).get_template(HTML_TEMPLATE).render(context)


def render_text(view: IssueView, variant: str, settings: Settings) -> str:
    return _text(_context(view, variant, settings))


def _text(context: dict[str, Any]) -> str:
    refs = LinkRefs()
    template = environment("text", context["chrome"]).get_template(TEXT_TEMPLATE)
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
    """Every variant of an issue, keyed "ja", "en", "both", "both-en"."""
    return {variant: render_variant(view, variant, settings) for variant in VARIANTS}
