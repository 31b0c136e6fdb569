"""Signed tokens for every subscriber link (unsubscribe, preferences, sign-up confirmation).

itsdangerous signs them with NEWSLETTER_SECRET_KEY. Several keys may be configured (newest
first): the newest signs, every one verifies, so a key can be rotated without breaking the
links in mail already delivered. The per-subscriber link token never expires (an unsubscribe
link in an old email must keep working); the confirmation token does.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, Signer, URLSafeTimedSerializer
from itsdangerous.exc import SignatureExpired

from newsletter.config import Settings
from newsletter.errors import TokenError
from newsletter.urls import preferences_url, unsubscribe_url

LINK_SALT = "newsletter.subscriber-link.v1"
CONFIRM_SALT = "newsletter.confirm.v1"
CONFIRM_MAX_AGE_S = 7 * 24 * 3600
_URLSAFE = bytes.maketrans(b"+/", b"-_")  # base64 to its URL-safe alphabet, as itsdangerous


class PrekeyedHmac:
    """HMAC-SHA256 (RFC 2104) with the key's two hash states computed once.

    `hmac.new` pads and hashes the key on every call; here each signature only copies the two
    keyed states, which is what makes signing a million links cheap. Same bytes as `hmac`.
    """

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self._urlsafe = self.urlsafe_signer()

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def urlsafe_signature(self, value: str) -> str:
        """The digest of an ASCII `value` in itsdangerous's form: URL-safe base64, no padding."""
        return self._urlsafe(value)

    def urlsafe_signer(self) -> Callable[[str], str]:
        """`urlsafe_signature` as a plain function with everything it uses bound: one call per
        signature, where a link's token is most of a recipient's signing cost."""

        def signature(
            value: str,
            inner_copy: Callable[[], Any] = self._inner.copy,
            outer_copy: Callable[[], Any] = self._outer.copy,
            b2a: Callable[[bytes], bytes] = binascii.b2a_base64,
            urlsafe: bytes = _URLSAFE,
        ) -> str:
            inner = inner_copy()
            inner.update(value.encode("ascii"))
            outer = outer_copy()
            outer.update(inner.digest())
            # 32 bytes are 43 base64 characters, then one "=" of padding and the newline.
            return b2a(outer.digest())[:43].translate(urlsafe).decode("ascii")

        return signature


@dataclass(frozen=True, slots=True)
class LinkClaim:
    subscriber_id: int
    list_id: int


class LinkSigner:
    """Signs and verifies per-subscriber-and-list link tokens; built once per send."""

    def __init__(self, settings: Settings) -> None:
        keys = [k.reveal() for k in reversed(settings.secret_keys)]  # itsdangerous: newest last
        self._signer = Signer(keys, salt=LINK_SALT, digest_method=hashlib.sha256)
        self._base_url = settings.base_url
        # A send signs one token per recipient: derive the signing key once, not per call, and
        # key HMAC once too (`PrekeyedHmac`). The result is byte for byte what `Signer.sign`
        # gives (tests hold it to that).
        self._signing_key = self._signer.derive_key()
        self._sep = self._signer.sep.decode("ascii")
        self._signature = PrekeyedHmac(self._signing_key).urlsafe_signer()

    def token(self, subscriber_id: int, list_id: int) -> str:
        value = f"{subscriber_id:x}.{list_id:x}"
        return f"{value}{self._sep}{self._signature(value)}"

    def verify(self, token: str) -> LinkClaim:
        """The claim inside a genuine token; TokenError (no detail) for anything else."""
        try:
            value = self._signer.unsign(token).decode("ascii")
            subscriber_hex, list_hex = value.split(".")
            return LinkClaim(int(subscriber_hex, 16), int(list_hex, 16))
        except (BadSignature, ValueError, UnicodeError):
            raise TokenError("this link is not valid") from None

    def links(self, subscriber_id: int, list_id: int) -> tuple[str, str]:
        """(unsubscribe URL, preferences URL) for one recipient."""
        token = self.token(subscriber_id, list_id)
        return unsubscribe_url(self._base_url, token), preferences_url(self._base_url, token)

    def links_for_list(self, list_id: int) -> Callable[[int], tuple[str, str]]:
        """`links` for one list as a function of the subscriber id, for a whole batch: what is
        the same for every recipient (the list's part of the token, the URLs' start) is
        computed once. Gives exactly what `links` gives (a test holds it to that)."""
        u_start = unsubscribe_url(self._base_url, "")
        p_start = preferences_url(self._base_url, "")
        probe = "probe-token"
        if (
            unsubscribe_url(self._base_url, probe) != u_start + probe
            or preferences_url(self._base_url, probe) != p_start + probe
        ):
            return lambda subscriber_id: self.links(subscriber_id, list_id)
        list_part = f".{list_id:x}"
        signature, sep = self._signature, self._sep

        def links(subscriber_id: int) -> tuple[str, str]:
            value = f"{subscriber_id:x}{list_part}"
            token = f"{value}{sep}{signature(value)}"
            return u_start + token, p_start + token

        return links


UNSUBSCRIBE_LOCAL = "unsubscribe"  # unsubscribe+TOKEN@<NEWSLETTER_INBOUND_DOMAIN>


def unsubscribe_mailto(token: str, domain: str) -> str:
    """The RFC 2369 mailto target carrying the recipient's signed token (never a bare id)."""
    return f"mailto:{UNSUBSCRIBE_LOCAL}+{token}@{domain}?subject=unsubscribe"


BOUNCES_LOCAL = "bounces"  # bounces+TOKEN@<NEWSLETTER_INBOUND_DOMAIN>: VERP return path


def bounce_address(token: str, domain: str) -> str:
    """The per-recipient envelope sender (VERP): bounces and complaints name their subscriber."""
    return f"{BOUNCES_LOCAL}+{token}@{domain}"


def token_from_address(address: str, local: str, domain: str) -> str | None:
    """TOKEN from `<local>+TOKEN@<domain>` (domain case-insensitive), else None. Not verified."""
    mailbox, _, at = address.strip().strip("<>").rpartition("@")
    prefix, plus, token = mailbox.partition("+")
    if not plus or prefix.lower() != local or at.lower() != domain.lower() or not token:
        return None
    return token


class ConfirmSigner:
    """Expiring tokens for double opt-in confirmation links."""

    def __init__(self, settings: Settings, max_age_s: int = CONFIRM_MAX_AGE_S) -> None:
        keys = [k.reveal() for k in reversed(settings.secret_keys)]
        self._serializer = URLSafeTimedSerializer(
            keys, salt=CONFIRM_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )
        self._max_age_s = max_age_s

    def token(self, subscription_id: int) -> str:
        return self._serializer.dumps(subscription_id)

    def verify(self, token: str) -> int:
        try:
            value = self._serializer.loads(token, max_age=self._max_age_s)
        except SignatureExpired:
            raise TokenError("this confirmation link has expired; please sign up again") from None
        except BadSignature:
            raise TokenError("this link is not valid") from None
        if not isinstance(value, int):
            raise TokenError("this link is not valid")
        return value
