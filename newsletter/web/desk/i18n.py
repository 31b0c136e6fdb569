"""The desk's words: msgctxt "desk:<key>" in the one catalog, with the public pages' words
(msgctxt "web:<key>") as the fallback for what both share (the language switch, metrics)."""

from __future__ import annotations

from collections.abc import Callable

from newsletter.render.i18n import keyed_messages
from newsletter.web.i18n import MESSAGES as WEB_MESSAGES

DESK_MESSAGES: dict[str, dict[str, str]] = keyed_messages("desk")


def desk_translator(language: str) -> Callable[..., str]:
    """`t(key, **values)`; a key in neither area is a bug and raises KeyError."""

    def t(key: str, **values: object) -> str:
        texts = DESK_MESSAGES.get(key) or WEB_MESSAGES[key]
        text = texts[language]
        return text.format(**values) if values else text

    return t
