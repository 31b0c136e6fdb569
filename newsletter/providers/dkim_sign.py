"""DKIM signatures (RFC 6376) for the messages SMTP and the outbox send, with dkimpy.

One signature per recipient message, relaxed/relaxed canonicalisation, rsa-sha256. The signed
header fields (`h=`) are those of `SIGNED_HEADERS` the message actually carries: From, To,
Subject, Date, Message-ID and the list headers (List-Id, List-Unsubscribe,
List-Unsubscribe-Post), so a forwarder cannot swap the unsubscribe target without breaking the
signature. From is always present and always signed.

SendGrid signs on its side (domain authentication in its console); this is for SMTP relays that
do not sign, and for `.eml` files that should look exactly like what was sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dkim

from newsletter.config import Settings, dkim_private_key_bytes
from newsletter.errors import PermanentProviderError

SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
_WANTED = {name.lower(): name.encode("ascii") for name in SIGNED_HEADERS}
_FIELD_NAME = re.compile(rb"^([A-Za-z0-9-]+):", re.MULTILINE)


def present_signed_headers(message: bytes) -> list[bytes]:
    """The names of `SIGNED_HEADERS` that `message` carries, in `SIGNED_HEADERS` order."""
    head, _, _ = message.partition(b"\r\n\r\n")
    found = {name.decode("ascii").lower() for name in _FIELD_NAME.findall(head)}
    return [encoded for lower, encoded in _WANTED.items() if lower in found]


@dataclass(frozen=True)
class DkimSigner:
    """Signs complete messages (CRLF line ends) as `domain` with the key for `selector`."""

    selector: str
    domain: str
    private_key: bytes  # PEM

    def signature(self, message: bytes) -> bytes:
        """The `DKIM-Signature:` field (CRLF-terminated, folded) for `message`."""
        try:
            return dkim.sign(
                message,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self.private_key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=present_signed_headers(message),
            )
        except dkim.DKIMException as err:
            # A key that loaded at start-up does not fail later; this is a malformed message.
            raise PermanentProviderError(f"DKIM signing failed: {err}") from None

    def sign(self, message: bytes) -> bytes:
        """`message` with its DKIM-Signature field prepended."""
        return self.signature(message) + message


def make_signer(settings: Settings) -> DkimSigner | None:
    """The signer the settings ask for (NEWSLETTER_DKIM_*), or None when DKIM is off."""
    key = dkim_private_key_bytes(settings)
    if key is None or settings.dkim_selector is None:
        return None
    return DkimSigner(
        selector=settings.dkim_selector,
        domain=settings.dkim_signing_domain,
        private_key=key,
    )
