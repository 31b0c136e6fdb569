"""The Japanese catalog is complete: every message the templates and the renderer use has a
translation, and the catalog holds nothing fuzzy or empty."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from newsletter.render import i18n
from newsletter.render.environment import LANGUAGE_NAMES, environment
from newsletter.render.renderer import chrome_language

ROOT = Path(__file__).resolve().parent.parent
PYTHON_SOURCES = [ROOT / "newsletter/render/renderer.py", ROOT / "newsletter/render/environment.py"]


def _catalog() -> Catalog:
    with i18n.catalog_path("ja").open("rb") as fp:
        return read_po(fp, locale="ja")


def _template_messages() -> set[str]:
    env = environment("html", "ja")
    found: set[str] = set()
    for name in ("digest/digest.mjml.j2", "digest/digest.txt.j2"):
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        for _line, _func, message in env.extract_translations(
            source, gettext_functions=("_", "gettext", "ngettext", "label")
        ):
            singular = message[0] if isinstance(message, tuple) else message  # plurals: by singular
            if singular:
                found.add(singular)
    return found


def _python_messages() -> set[str]:
    found: set[str] = set()
    for path in PYTHON_SOURCES:
        for _line, message, _comments, _context in extract_from_file(
            "python", str(path), keywords={"gettext": None, "ngettext": (1, 2)}
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found | set(LANGUAGE_NAMES.values())


def test_the_catalog_has_no_empty_or_fuzzy_translation() -> None:
    for message in _catalog():
        if not message.id:
            continue
        assert not message.fuzzy, message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"{message.id!r} has no translation"


def test_every_message_in_use_is_in_the_catalog() -> None:
    catalog = _catalog()
    used = _template_messages() | _python_messages()
    assert len(used) >= 15
    missing = sorted(m for m in used if m not in catalog)
    assert missing == []


def test_english_is_the_source_language() -> None:
    assert i18n.gettext("en", "Key points") == "Key points"
    assert i18n.gettext("ja", "Key points") == "キーポイント"


def test_dates_follow_each_locale() -> None:
    assert i18n.long_date(date(2026, 6, 13), "ja") == "2026年6月13日"
    assert i18n.long_date(date(2026, 6, 13), "en") == "June 13, 2026"
    assert i18n.number(1234, "ja") == "1,234"


def test_the_bilingual_variant_speaks_japanese_around_the_articles() -> None:
    assert chrome_language("both") == "ja"
    assert chrome_language("en") == "en"
