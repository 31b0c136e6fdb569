"""Addresses as logs and file names may show them: enough to recognise, never the full address."""

from __future__ import annotations

import re

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._@+-]")
_EMAIL_IN_TEXT = re.compile(r"[^\s@<>\[\]\"'(),;:]+@[^\s@<>\[\]\"'(),;:]+")


def mask_email(email: str) -> str:
    """`taro.yamada@example.com` -> `t***@example.com` (the domain helps diagnose, the user not)."""
    local, sep, domain = email.rpartition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"


def masked_filename_part(email: str) -> str:
    """The masked address with anything a file system may dislike replaced by `_`."""
    return _UNSAFE_FILENAME.sub("_", mask_email(email))[:80]


def redact_text(text: str) -> str:
    """`text` with every address in it masked (provider replies often echo the address)."""
    return _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)
