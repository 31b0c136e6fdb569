"""Choose and build the configured provider (`NEWSLETTER_PROVIDER`: outbox | sendgrid | smtp)."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.providers.base import Provider


def make_provider(settings: Settings) -> Provider:
    """A new provider for `settings`; the caller closes it. Imports only the one it needs."""
    if settings.provider == "outbox":
        from newsletter.providers.dkim_sign import make_signer
        from newsletter.providers.outbox import OutboxProvider

        return OutboxProvider(settings.outbox_dir, make_signer(settings))
    if settings.provider == "sendgrid":
        from newsletter.providers.sendgrid import SendGridProvider

        return SendGridProvider.from_settings(settings)
    if settings.provider == "smtp":
        from newsletter.providers.smtp import SmtpProvider

        return SmtpProvider.from_settings(settings)
    raise ConfigError(
        f"NEWSLETTER_PROVIDER: expected outbox, sendgrid or smtp, got {settings.provider!r}"
    )
