"""Page language: the subscriber's preference when known, else the browser's Accept-Language.

Every string a page shows comes from the one translation catalog (msgctxt "web:<key>"), in
both languages, so a page can never be half-translated.
"""

from __future__ import annotations

from collections.abc import Callable

from newsletter.render.i18n import keyed_messages

PAGE_LANGUAGES = ("ja", "en")

# Version of the consent wording shown on the sign-up form; recorded with each sign-up. Change
# it whenever the wording of "web:consent" in the catalog changes.
CONSENT_WORDING_VERSION = "signup-2026-06-v1"

# Every string a page shows, in both languages, keyed by name: the catalog's msgctxt "web:<key>"
# entries in newsletter/render/locale/ja/LC_MESSAGES/messages.po (the English text is the msgid).
MESSAGES: dict[str, dict[str, str]] = keyed_messages("web")


def pick_language(
    accept_language: str | None, preference: str | None = None, override: str | None = None
) -> str:
    """`override` (?hl=) wins, then a one-language preference, then the browser's best match."""
    if override in PAGE_LANGUAGES:
        return override  # type: ignore[return-value]
    if preference in PAGE_LANGUAGES:
        return preference  # type: ignore[return-value]
    if preference == "both-en":  # both languages, English first: pages in English
        return "en"
    best, best_q = "ja", -1.0
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in PAGE_LANGUAGES:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        q -= position * 1e-6  # earlier wins on a tie
        if q > best_q and q > 0:
            best, best_q = primary, q
    return best


def translator(language: str) -> Callable[..., str]:
    """`t(key, **values)` for one language; a missing key is a bug and raises KeyError."""

    def t(key: str, **values: object) -> str:
        text = MESSAGES[key][language]
        return text.format(**values) if values else text

    return t
