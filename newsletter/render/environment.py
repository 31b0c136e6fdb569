"""Every Jinja environment of the project, and the one place MJML is compiled.

`make_environment` is the only way an environment is built (digest, confirmation email, web
pages, preview page): templates come from files under `templates/` only, never from content,
and every value is escaped unless the caller renders plain text. The differences between
callers are the arguments, not separate setups.

`environment(kind, language)` is the digest's, built once per (kind, language) and cached:
`html` renders the MJML templates with autoescape on; `text` renders the plain-text part with
autoescape off (text is never parsed as markup). Each has the gettext callables of its
language installed through `jinja2.ext.i18n`; `label(msg, lang)` translates into another
language, for the English half of the bilingual variant.
"""

from __future__ import annotations

import re
from functools import cache

import mjml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Undefined
from markupsafe import Markup, escape

from newsletter.errors import RenderError
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


_URL = re.compile(r"https?://[^\s<>\"'\u3000-\u303f\uff01-\uff60]+")
_URL_TAIL = ".,;:!?)]}"


def _linked(line: str, styled: bool) -> Markup:
    """One line of plain text, escaped, with its http(s) addresses made links."""
    link = (
        Markup('<a href="{0}" style="color:#0b5cad;">{0}</a>')
        if styled
        else Markup('<a href="{0}">{0}</a>')
    )
    out: list[Markup | str] = []
    last = 0
    for match in _URL.finditer(line):
        url = match.group().rstrip(_URL_TAIL)
        out.append(line[last : match.start()])
        out.append(link.format(url))
        last = match.start() + len(url)
    out.append(line[last:])
    return Markup("").join(escape(part) for part in out)


def linked_paragraphs(text: str, styled: bool = True) -> Markup:
    """`paragraphs` for an editor's plain text: the same escaping, and its addresses linked.
    `styled=False` for the web pages, whose stylesheet (CSP: no inline styles) does the rest."""
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    paragraph = Markup('<p style="margin:0 0 8px;">{}</p>') if styled else Markup("<p>{}</p>")
    return Markup("").join(
        paragraph.format(Markup("<br>").join(_linked(line, styled) for line in block.split("\n")))
        for block in blocks
    )


def label(message: str, language: str) -> str:
    return i18n.gettext(language, message)


def language_name(code: str, in_language: str) -> str:
    return i18n.gettext(in_language, LANGUAGE_NAMES[code])


def make_environment(
    folder: str = "",
    *,
    autoescape: bool = True,
    strict: bool = True,
    trim: bool = True,
    keep_trailing_newline: bool = True,
) -> Environment:
    """An environment over `templates/<folder>`.

    `strict`: an undefined value is an error (emails), not an empty string (web pages).
    `trim`: `trim_blocks` and `lstrip_blocks`, so block tags leave no blank lines.
    """
    env = Environment(
        loader=FileSystemLoader(templates_dir() / folder if folder else templates_dir()),
        autoescape=autoescape,
        undefined=StrictUndefined if strict else Undefined,
        trim_blocks=trim,
        lstrip_blocks=trim,
        keep_trailing_newline=keep_trailing_newline,
        auto_reload=False,
    )
    env.filters["linked_paragraphs"] = linked_paragraphs
    return env


class BilingualTranslations:
    """The chrome of the bilingual variants: every label in Japanese, then in English ("both"),
    or in English, then in Japanese ("both-en").

    A short label reads "キーポイント · Key points"; a sentence (ending with a full stop) puts
    the second language on a line of its own. In HTML the second half is a `<span lang>` (Jinja's
    new-style gettext marks a translation safe and escapes the values put into it).
    """

    def __init__(self, html: bool, english_first: bool = False) -> None:
        self.html = html
        self.english_first = english_first

    def gettext(self, message: str) -> str:
        return self._join(i18n.translations("ja").gettext(message), message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        japanese = i18n.translations("ja").ngettext(singular, plural, n)
        return self._join(japanese, singular if n == 1 else plural)

    def _join(self, japanese: str, english: str) -> str:
        if japanese == english:
            return english
        sentence = english.endswith(".")
        (first, _), (second, second_lang) = (
            ((english, "en"), (japanese, "ja"))
            if self.english_first
            else ((japanese, "ja"), (english, "en"))
        )
        if not self.html:
            return f"{first}\n{second}" if sentence else f"{first} · {second}"
        separator = "<br>" if sentence else " &#183; "
        return f'{escape(first)}{separator}<span lang="{second_lang}">{escape(second)}</span>'


@cache
def environment(kind: str, language: str) -> Environment:
    """`kind` is "html" (MJML, autoescaped) or "text" (plain text); `language` is "ja", "en",
    "both" or "both-en" (every label in both languages, Japanese or English first)."""
    env = make_environment(autoescape=kind == "html")
    env.add_extension("jinja2.ext.i18n")
    translations = (
        BilingualTranslations(html=kind == "html", english_first=language == "both-en")
        if language in ("both", "both-en")
        else i18n.translations(language)
    )
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["paragraphs"] = paragraphs
    env.globals.update(font=i18n.font_stack, label=label, language_name=language_name)
    return env


def compile_mjml(source: str, *, where: str) -> str:
    """MJML to email HTML; RenderError naming the template when it does not compile."""
    try:
        return mjml.mjml2html(source)
    except Exception as err:  # mjml-python raises a bare exception type on malformed XML
        raise RenderError(f"{where}: the MJML did not compile: {err}") from err
