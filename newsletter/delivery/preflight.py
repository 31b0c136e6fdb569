"""Preflight: the settings that would fail every batch, checked before anything is planned.

A From address at `localhost`, a base URL without https (RFC 8058 one-click unsubscribe needs
https), an API key the provider refuses: each of these fails the whole list, one batch at a
time, and used to end in an issue marked sent. They are checked before the send starts, and by
`newsletter health --provider` without sending. The outbox (files on disk) needs none of this.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from newsletter.config import ENV_NAMES, Settings
from newsletter.errors import ConfigError
from newsletter.providers.base import Provider

REAL_PROVIDERS = frozenset({"sendgrid", "smtp"})
# Names no mail system will deliver from (RFC 2606, RFC 6761, RFC 6762).
_UNDELIVERABLE_SUFFIXES = (".local", ".localhost", ".invalid", ".test", ".example", ".internal")


def settings_problems(settings: Settings) -> list[str]:
    """One line per setting that would make a real provider refuse or the mail break. Pure."""
    if settings.provider not in REAL_PROVIDERS:
        return []
    problems = []
    domain = (settings.from_address.domain or "").lower().rstrip(".")
    if "." not in domain or domain == "localhost" or domain.endswith(_UNDELIVERABLE_SUFFIXES):
        problems.append(
            f"{ENV_NAMES['from_address']}: {domain or 'no domain'} cannot send mail; use an "
            "address at your sending domain (authenticated with SPF and DKIM)"
        )
    if urlsplit(settings.base_url).scheme != "https":
        problems.append(
            f"{ENV_NAMES['base_url']}: {settings.base_url} is not https; one-click unsubscribe "
            "(RFC 8058, required by Gmail and Yahoo) needs an https URL"
        )
    return problems


def preflight(settings: Settings, provider: Provider) -> None:
    """Raise ConfigError (exit 78) naming the first problem; ask the provider last (network)."""
    problems = settings_problems(settings)
    if problems:
        raise ConfigError(problems[0])
    if settings.provider in REAL_PROVIDERS:
        check = getattr(provider, "preflight", None)
        if check is not None:
            check()
