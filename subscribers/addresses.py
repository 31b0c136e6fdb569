"""Address validation and normalisation, with email-validator as the single authority.

`normalise_email` gives exactly what `email_validator.validate_email(...).normalized` gives
(deliverability not checked). Importing a million rows calls it a million times, so plain ASCII
addresses take a fast path: the local part is checked with email-validator's own dot-atom regex
and the domain is validated once per distinct domain (cached). Anything unusual (quoted local
parts, Unicode, display names, over-long addresses) goes through the full validator.
"""

from __future__ import annotations

from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DOT_ATOM_TEXT,
    EMAIL_MAX_LENGTH,
)

from newsletter.errors import ValidationError
from newsletter.logs import mask_email  # noqa: F401  (re-exported: the one masking rule)

_CASE_INSENSITIVE = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def _full(address: str) -> str:
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise ValidationError(str(err)) from None


@lru_cache(maxsize=65536)
def _domain(domain: str) -> str | Exception:
    """The normalised domain, or the error the validator gives for it (cached either way)."""
    try:
        return validate_email("a@" + domain, check_deliverability=False).domain
    except EmailNotValidError as err:
        return ValidationError(str(err))


def normalise_email(raw: str) -> str:
    """The address as email-validator normalises it; ValidationError says what is wrong."""
    address = raw.strip()
    if not address:
        raise ValidationError("the email address is empty")
    local, at, domain = address.rpartition("@")
    if not at or not address.isascii() or not DOT_ATOM_TEXT.match(local) or "@" in local:
        return _full(address)
    normal_domain = _domain(domain)
    if isinstance(normal_domain, Exception):
        raise normal_domain
    if local.lower() in _CASE_INSENSITIVE:
        local = local.lower()
    result = f"{local}@{normal_domain}"
    if len(result) > EMAIL_MAX_LENGTH:
        return _full(address)
    return result
