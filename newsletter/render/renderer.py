"""Render an issue's variants (ja, en, both, both-en) to HTML and plain text, once each.

Pure: no database, no clock. The Jinja environments and translations are cached; each variant
compiles its MJML once (more only when the size budget forces a trim). Recipient-specific
values are slot markers (`newsletter.types.SLOT_*`) filled at send time.

A list that tracks clicks or opens gets each variant in two forms from the same trimmed view:
direct (what an untracked list gets, and what previews show) and tracked (content links through
`/c/TOKEN/N`, the open pixel when the list asks for it). Both forms are held to the size
budget together, so a reader who switched tracking off reads the same content as everyone else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.config import Settings
from newsletter.errors import RenderError
from newsletter.render import i18n
from newsletter.render.budget import GMAIL_CLIP_BYTES, TRIM_STEPS, transmitted_size
from newsletter.render.environment import compile_mjml, environment
from newsletter.render.links import add_utm
from newsletter.render.parts import ArticleParts, Text, article_parts, dateline, reading_order
from newsletter.render.plaintext import LinkRefs, finish
from newsletter.render.tracking import LinkCollector, TrackedLink, pixel_url
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


def _tracked_related(parts: ArticleParts, wrap: Callable[[str], str]) -> ArticleParts:
    """`parts` with every related article's URL replaced by `wrap(url)`."""
    related = parts.related
    if related is None:
        return parts

    def tracked(text: Text) -> Text:
        url = text.value.url
        return replace(text, value=replace(text.value, url=wrap(url))) if url else text

    items = tuple(
        replace(p, main=tracked(p.main), other=tracked(p.other) if p.other else None)
        for p in related.items
    )
    extra = tuple(tracked(t) for t in related.extra)
    return replace(parts, related=replace(related, items=items, extra=extra))


def _context(
    view: IssueView,
    variant: str,
    settings: Settings,
    links: LinkCollector | None = None,
    pixel: bool = False,
) -> dict[str, Any]:
    """What the templates see. With `links`, every content link is the collector's tracked
    link (`/c/SLOT/N`); with `pixel`, the HTML ends with the open pixel."""
    lang = chrome_language(variant)
    utm = view.utm_params if view.utm_params is not None else settings.utm_params
    zone = ZoneInfo(view.timezone) if view.timezone else settings.timezone
    articles = []
    bilingual = variant in BILINGUAL_VARIANTS
    other_lang = reading_order(variant)[1] if bilingual else ""
    for number, article in enumerate(view.articles, start=1):
        sections = article.sections(variant)
        missing = article.missing(variant)
        url = add_utm(article.url, utm) if article.url else None
        source_url = article.source_url
        parts = article_parts(article, variant)
        if links is not None:
            key = article.key
            if url:
                url = links(url, kind="article", position=number, article_key=key)
            if source_url:
                source_url = links(source_url, kind="source", position=number, article_key=key)
            parts = _tracked_related(
                parts,
                lambda u, n=number, k=key: links(u, kind="related", position=n, article_key=k),
            )
        articles.append(
            {
                "number": number,
                "anchor": f"article-{number}",
                "headline": sections[0].title,
                # The bilingual summary lists the English headline under the Japanese one.
                "subheadline": sections[1].title if len(sections) > 1 else "",
                "subheadline_lang": sections[1].language if len(sections) > 1 else "",
                "url": url,
                "source_url": source_url,
                "source_name": article.source_name,
                "dateline": dateline(article, lang, zone),
                "parts": parts,
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
        "open_pixel_url": pixel_url(settings.base_url) if pixel else "",
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


@dataclass(frozen=True, slots=True)
class VariantForms:
    """One variant as stored: the direct form, and the tracked form with the links it numbered
    (None and empty for a list that tracks nothing)."""

    direct: RenderedVariant
    tracked: RenderedVariant | None = None
    links: tuple[TrackedLink, ...] = ()


@dataclass(frozen=True, slots=True)
class IssueForms:
    """Every variant of an issue in its forms; `links` numbered uniquely across variants."""

    direct: dict[str, RenderedVariant]
    tracked: dict[str, RenderedVariant]
    links: tuple[TrackedLink, ...]


def render_variant_forms(
    view: IssueView, variant: str, settings: Settings, *, first_link_no: int = 1
) -> VariantForms:
    """One variant in its forms, trimmed step by step until every form's HTML fits under
    Gmail's clipping size: the forms always carry the same content."""
    where = f"issue {view.issue_id} variant {variant}"
    tracking = view.click_tracking or view.open_tracking
    base_url = settings.base_url
    applied: list[str] = []
    current = view
    steps = iter(TRIM_STEPS)
    while True:
        context = _context(current, variant, settings)
        html = compile_mjml(_mjml_source(context), where=where)
        size = transmitted_size(html, base_url)
        collector: LinkCollector | None = None
        tracked_context: dict[str, Any] | None = None
        tracked_html = ""
        if tracking:
            if view.click_tracking:
                collector = LinkCollector(base_url, variant, first_link_no)
            tracked_context = _context(
                current, variant, settings, links=collector, pixel=view.open_tracking
            )
            tracked_html = compile_mjml(_mjml_source(tracked_context), where=where + " (tracked)")
            size = max(size, transmitted_size(tracked_html, base_url))
        if size <= GMAIL_CLIP_BYTES:
            break
        step = next(steps, None)
        if step is None:
            raise RenderError(
                f"{where}: {size} bytes of HTML as transmitted after every trim, over Gmail's "
                f"{GMAIL_CLIP_BYTES}-byte limit: select fewer articles (NEWSLETTER_MAX_ARTICLES)"
            )
        current = step.apply(current)
        applied.append(step.description)
    direct = RenderedVariant(
        issue_id=view.issue_id,
        variant=variant,
        subject=context["subject"],
        preheader=context["preheader"],
        html=html,
        text=_text(context),
        trimmed=tuple(applied),
    )
    if tracked_context is None:
        return VariantForms(direct)
    tracked = replace(direct, html=tracked_html, text=_text(tracked_context))
    return VariantForms(direct, tracked, tuple(collector.links) if collector else ())


def render_variant(view: IssueView, variant: str, settings: Settings) -> RenderedVariant:
    """One variant's direct form, trimmed until it fits under Gmail's clipping size."""
    return render_variant_forms(view, variant, settings).direct


def render_issue_variants(view: IssueView, settings: Settings) -> dict[str, RenderedVariant]:
    """Every variant of an issue in its direct form, keyed "ja", "en", "both", "both-en"."""
    return render_issue_forms(view, settings).direct


def render_issue_forms(view: IssueView, settings: Settings) -> IssueForms:
    """Every variant in its forms; the tracked forms' link numbers never repeat in the issue."""
    direct: dict[str, RenderedVariant] = {}
    tracked: dict[str, RenderedVariant] = {}
    links: list[TrackedLink] = []
    for variant in VARIANTS:
        forms = render_variant_forms(view, variant, settings, first_link_no=len(links) + 1)
        direct[variant] = forms.direct
        if forms.tracked is not None:
            tracked[variant] = forms.tracked
        links.extend(forms.links)
    return IssueForms(direct, tracked, tuple(links))
