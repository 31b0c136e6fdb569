"""A real MIME message from a rendered variant: multipart/alternative, UTF-8, RFC 2047 subject.

Used by the preview (`.eml` files) and the test send; the SMTP and outbox providers may reuse
it. `policy.SMTP` gives CRLF line ends and encodes non-ASCII headers; nothing is coerced to
ASCII, so Japanese survives every hop.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from newsletter.providers.base import PreparedMessage
from newsletter.types import RenderedVariant


def fill_slots(text: str, values: Mapping[str, str]) -> str:
    """Replace each slot marker with its value (the send-time fill, done with str.replace)."""
    for slot, value in values.items():
        text = text.replace(slot, value)
    return text


def build_mime(
    message: RenderedVariant | PreparedMessage,
    *,
    sender: Address | str,
    to: str,
    slots: Mapping[str, str] | None = None,
    subject_prefix: str = "",
    reply_to: str | None = None,
    date: datetime | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """One recipient's message: text part first, then HTML (the preferred part), slots filled."""
    values = dict(slots or {})
    mail = EmailMessage(policy=policy.SMTP)
    mail["Subject"] = subject_prefix + fill_slots(message.subject, values)
    mail["From"] = sender
    mail["To"] = to
    if reply_to:
        mail["Reply-To"] = reply_to
    if date is not None:
        mail["Date"] = format_datetime(date)
    domain = sender.domain if isinstance(sender, Address) else str(sender).rpartition("@")[2]
    mail["Message-ID"] = make_msgid(domain=(domain.strip(">") or None))
    for name, value in (headers or {}).items():
        mail[name] = value
    # Quoted-printable keeps the message 7-bit clean (no 8BITMIME needed) and the mostly-ASCII
    # HTML readable in an .eml file.
    text, html = fill_slots(message.text, values), fill_slots(message.html, values)
    mail.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    mail.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return mail
