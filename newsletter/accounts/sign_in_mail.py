"""The sign-in link email: one short message, Japanese and English (or the account's language),
sent through the configured provider like the double opt-in confirmation, outside the ledger."""

from __future__ import annotations

import html
from datetime import datetime

from babel.dates import format_datetime

from newsletter.config import Settings
from newsletter.errors import ProviderError
from newsletter.providers.base import Batch, PreparedMessage, Provider, Recipient

_SUBJECT = {
    "ja": "【{name}】デスクへのサインイン",
    "en": "{name}: sign in to the desk",
}
_BODY = {
    "ja": (
        "デスクにサインインするには、次のリンクを開いてください。"
        "リンクは {expires} まで、1回だけ使えます。",
        "心当たりがない場合は、このメールを無視してください。",
    ),
    "en": (
        "Open this link to sign in to the desk. It works once, until {expires}.",
        "If you did not ask for it, ignore this email.",
    ),
}
_FORMATS = {"ja": "yyyy年M月d日 H:mm", "en": "MMMM d, yyyy, h:mm a"}


def render_sign_in_mail(
    settings: Settings, *, language: str | None, url: str, expires_at: datetime
) -> tuple[str, str, str]:
    """(subject, html, text); no language: Japanese, then English."""
    languages = [language] if language in _SUBJECT else ["ja", "en"]
    local = expires_at.astimezone(settings.timezone)
    name = settings.newsletter_name
    subject = " / ".join(_SUBJECT[lang].format(name=name) for lang in languages)
    text_parts: list[str] = []
    html_parts: list[str] = []
    for lang in languages:
        expires = format_datetime(local, _FORMATS[lang], locale=lang)
        first, second = _BODY[lang]
        first = first.format(expires=expires)
        text_parts.append(f"{first}\n\n{url}\n\n{second}\n")
        html_parts.append(
            f'<div lang="{lang}"><p>{html.escape(first)}</p>'
            f'<p><a href="{html.escape(url)}">{html.escape(url)}</a></p>'
            f"<p>{html.escape(second)}</p></div>"
        )
    text = f"{name}\n\n" + "\n----------------------------------------\n\n".join(text_parts)
    text += f"\n--\n{settings.postal_address}\n"
    body = "<hr>".join(html_parts)
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(subject)}</title>'
        f"</head><body><h1>{html.escape(name)}</h1>{body}"
        f"<p>{html.escape(settings.postal_address)}</p></body></html>"
    )
    return subject, page, text


def send_sign_in_mail(
    provider: Provider,
    settings: Settings,
    *,
    email: str,
    language: str | None,
    url: str,
    expires_at: datetime,
) -> None:
    """ProviderError if the provider did not accept it."""
    subject, page, text = render_sign_in_mail(
        settings, language=language, url=url, expires_at=expires_at
    )
    message = PreparedMessage(
        issue_id=None,
        variant=language or "both",
        subject=subject,
        html=page,
        text=text,
        from_name=settings.from_address.display_name,
        from_email=settings.from_address.addr_spec,
        reply_to=settings.reply_to,
        categories=("sign-in",),
        bulk=False,
    )
    recipient = Recipient(delivery_id=0, subscriber_id=0, email=email, name="")
    result = provider.send_batch(Batch(batch_id=0, message=message, recipients=[recipient]))
    if 0 not in result.accepted:
        reason = result.failed.get(0) or result.deferred.get(0) or "not accepted"
        raise ProviderError(f"the sign-in email was not sent: {reason}")
