"""The Jinja environments, built once per (kind, language) and cached for the process.

`html` renders the MJML templates with autoescape on (`.mjml` and `.j2` included); `text`
renders the plain-text part with autoescape off (text is never parsed as markup). Each has the
gettext callables of its language installed through `jinja2.ext.i18n`; `label(msg, lang)`
translates into another language, for the English half of the bilingual variant.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from newsletter.paths import templates_dir
from newsletter.render import i18n

LANGUAGE_NAMES = {"ja": "Japanese", "en": "English"}


def paragraphs(text: str) -> Markup:
    """Plain text to escaped <p> paragraphs (blank line: new paragraph; newline: <br>)."""
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    html = "".join(
        Markup('<p style="margin:0 0 8px;">{}</p>').format(
            Markup("<br>").join(escape(line) for line in block.split("\n"))
        )
        for block in blocks
    )
    return Markup(html)


def label(message: str, language: str) -> str:
    return i18n.gettext(language, message)


def language_name(code: str, in_language: str) -> str:
    return i18n.gettext(in_language, LANGUAGE_NAMES[code])


@cache
def environment(kind: str, language: str) -> Environment:
    """`kind` is "html" (MJML, autoescaped) or "text" (plain text)."""
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=(
            select_autoescape(
                enabled_extensions=("mjml", "j2", "html", "xml"),
                default_for_string=True,
                default=True,
            )
            if kind == "html"
            else False
        ),
        extensions=["jinja2.ext.i18n"],
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["paragraphs"] = paragraphs
    env.globals.update(font=i18n.font_stack, label=label, language_name=language_name)
    return env
