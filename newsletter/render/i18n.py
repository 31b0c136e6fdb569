"""Translations and locale formatting: the one i18n mechanism of emails, web pages and mail.

The catalogs are `.po` files under `locale/<lang>/LC_MESSAGES/messages.po`, compiled in memory
the first time they are needed (`read_po` + `write_mo` + `babel.support.Translations`). No
`.mo` file is committed, so the catalog in the repository is always the one in use. English is
the source language: its "catalog" is the message ids themselves.

Templates look messages up by their English text (`gettext`). Code that names a message by a
key (the web pages, the confirmation email) uses the catalog's msgctxt `<area>:<key>`:
`keyed_messages("web")` gives `{key: {"en": msgid, "ja": msgstr}}` from the same file.
"""

from __future__ import annotations

import io
from datetime import date
from functools import cache
from pathlib import Path

from babel.dates import format_date
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from newsletter.errors import RenderError

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"

# Unquoted family names are valid CSS and avoid an escaped quote in every styled element.
FONT_STACKS: dict[str, str] = {
    "ja": "Hiragino Sans,Hiragino Kaku Gothic ProN,Noto Sans JP,Meiryo,sans-serif",
    "en": "-apple-system,BlinkMacSystemFont,Segoe UI,Helvetica,Arial,sans-serif",
}


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def _catalog(language: str) -> Catalog:
    path = catalog_path(language)
    if not path.exists():
        raise RenderError(f"no translation catalog for language {language!r} at {path}")
    try:
        with path.open("rb") as fp:
            return read_po(fp, locale=language, domain=DOMAIN)
    except Exception as err:  # babel raises several types for a broken .po
        raise RenderError(f"{path}: cannot read the translation catalog: {err}") from err


@cache
def translations(language: str) -> NullTranslations:
    """The compiled catalog for `language` (cached for the life of the process)."""
    if language == "en":
        return NullTranslations()
    catalog = _catalog(language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def gettext(language: str, message: str) -> str:
    return translations(language).gettext(message)


@cache
def keyed_messages(area: str) -> dict[str, dict[str, str]]:
    """`{key: {"en": ..., "ja": ...}}` for the catalog entries with msgctxt `<area>:<key>`."""
    prefix = f"{area}:"
    found: dict[str, dict[str, str]] = {}
    for message in _catalog("ja"):
        context = message.context or ""
        if context.startswith(prefix) and isinstance(message.id, str):
            found[context.removeprefix(prefix)] = {"ja": str(message.string), "en": message.id}
    if not found:
        raise RenderError(f"{catalog_path('ja')}: no messages with msgctxt '{prefix}...'")
    return found


def long_date(value: date, language: str) -> str:
    """2026年6月13日 / June 13, 2026."""
    return format_date(value, format="long", locale=language)


def number(value: int, language: str) -> str:
    return format_decimal(value, locale=language)


def font_stack(language: str) -> str:
    return FONT_STACKS.get(language, FONT_STACKS["en"])
