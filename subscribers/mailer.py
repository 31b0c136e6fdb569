"""Transactional mail about a subscription (the double opt-in confirmation).

Small and separate from the digest renderer: one MJML template and one text template in
`templates/transactional/`, in the subscriber's language (ja, en or both; both-en gets both),
rendered with Jinja2 autoescaping and sent as a non-bulk message to exactly one recipient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from babel.dates import format_datetime
from jinja2 import Environment

from newsletter.config import Settings
from newsletter.errors import ProviderError, RenderError
from newsletter.providers.base import Batch, PreparedMessage, Provider, Recipient
from newsletter.render.environment import compile_mjml, make_environment
from newsletter.render.i18n import keyed_messages
from newsletter.types import SLOTS


def _by_language() -> tuple[dict[str, str], dict[str, str]]:
    """Subject and preheader per language (`ja`, `en`, `both`) from the translation catalog."""
    texts = keyed_messages("mail")
    subject, short, preheader = (
        texts["confirm_subject"],
        texts["confirm_subject_short"],
        texts["confirm_preheader"],
    )
    return (
        {**subject, "both": f"{short['ja']} / {short['en']}"},
        {**preheader, "both": f"{preheader['ja']} {preheader['en']}"},
    )


SUBJECTS, PREHEADERS = _by_language()


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    html: str
    text: str


@lru_cache(maxsize=2)
def _environment(autoescape: bool) -> Environment:
    return make_environment("transactional", autoescape=autoescape, trim=False)


def _clean(value: str | None) -> str:
    """A person's name as text: no slot markers (a provider would fill them), no newlines."""
    text = value or ""
    for slot in SLOTS:
        text = text.replace(slot, "")
    return " ".join(text.split())


def render_confirmation(
    settings: Settings,
    *,
    language: str,
    name: str | None,
    list_name: str,
    confirm_url: str,
    expires_at: datetime,
) -> RenderedMail:
    """The confirmation email in the subscriber's language (`both`: Japanese, then English)."""
    # English-first readers get the bilingual confirmation (it is short: Japanese, then English)
    lang = "both" if language == "both-en" else language if language in SUBJECTS else "ja"
    local_expiry = expires_at.astimezone(settings.timezone)
    subject = SUBJECTS[lang].format(name=settings.newsletter_name)
    values = {
        "lang": lang,
        "name": _clean(name),
        "list_name": list_name,
        "newsletter_name": settings.newsletter_name,
        "confirm_url": confirm_url,
        "expires_ja": format_datetime(local_expiry, "yyyy年M月d日 H:mm", locale="ja"),
        "expires_en": format_datetime(local_expiry, "MMMM d, yyyy, h:mm a", locale="en"),
        "postal_address": settings.postal_address,
        "subject": subject,
        "preheader": PREHEADERS[lang],
    }
    try:
        mjml_source = _environment(True).get_template("confirm.mjml.j2").render(values)
        text = _environment(False).get_template("confirm.txt.j2").render(values)
    except Exception as err:  # jinja2: report which template failed and why
        raise RenderError(f"templates/transactional/confirm: {err}") from err
    html = compile_mjml(mjml_source, where="templates/transactional/confirm.mjml.j2")
    return RenderedMail(subject=subject, html=html, text=text)


def send_confirmation(
    provider: Provider,
    settings: Settings,
    *,
    subscriber_id: int,
    email: str,
    language: str,
    name: str | None,
    list_name: str,
    confirm_url: str,
    expires_at: datetime,
) -> None:
    """Render and send one confirmation; ProviderError if the provider did not accept it."""
    mail = render_confirmation(
        settings,
        language=language,
        name=name,
        list_name=list_name,
        confirm_url=confirm_url,
        expires_at=expires_at,
    )
    message = PreparedMessage(
        issue_id=None,
        variant=language,
        subject=mail.subject,
        html=mail.html,
        text=mail.text,
        from_name=settings.from_address.display_name,
        from_email=settings.from_address.addr_spec,
        reply_to=settings.reply_to,
        categories=("confirmation",),
        bulk=False,
    )
    recipient = Recipient(
        delivery_id=0, subscriber_id=subscriber_id, email=email, name=_clean(name)
    )
    result = provider.send_batch(Batch(batch_id=0, message=message, recipients=[recipient]))
    if 0 not in result.accepted:
        reason = result.failed.get(0) or result.deferred.get(0) or "not accepted"
        raise ProviderError(f"the confirmation email was not sent: {reason}")


def confirm_expiry(now: datetime, max_age_s: int) -> datetime:
    return now + timedelta(seconds=max_age_s)
