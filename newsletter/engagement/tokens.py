"""The tracking token: which delivery a click or an open belongs to, signed.

One HMAC per recipient (the same cost as the unsubscribe token), over the delivery id only:
the link number travels beside it in the URL. Whoever holds a token can at most add clicks to
their own delivery, and only towards links of that issue (`issue_links`). Signed with
NEWSLETTER_SECRET_KEY under its own salt; every configured key verifies, so rotation keeps old
emails' links working.
"""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import Signer

from newsletter.config import Settings
from newsletter.errors import TokenError
from subscribers.tokens import PrekeyedHmac

TRACKING_SALT = "newsletter.tracking.v1"
_SIGNATURE_CHARS = 22  # 16 bytes of HMAC-SHA256 in URL-safe base64: 128 bits


class TrackingSigner:
    """Signs delivery ids for tracked links; built once per send, thread-safe."""

    def __init__(self, settings: Settings) -> None:
        keys = [k.reveal() for k in settings.secret_keys]  # newest first: the first signs
        self._signers = [
            PrekeyedHmac(Signer(key, salt=TRACKING_SALT, digest_method=hashlib.sha256).derive_key())
            for key in keys
        ]

    def token(self, delivery_id: int) -> str:
        value = f"{delivery_id:x}"
        return f"{value}.{self._signers[0].urlsafe_signature(value)[:_SIGNATURE_CHARS]}"

    def verify(self, token: str) -> int:
        """The delivery id inside a genuine token; TokenError (no detail) for anything else."""
        value, dot, signature = token.partition(".")
        if dot and len(signature) == _SIGNATURE_CHARS and 0 < len(value) <= 16:
            try:
                delivery_id = int(value, 16)
            except ValueError:
                delivery_id = -1
            if delivery_id >= 0 and value == f"{delivery_id:x}":
                for signer in self._signers:
                    expected = signer.urlsafe_signature(value)[:_SIGNATURE_CHARS]
                    if hmac.compare_digest(expected, signature):
                        return delivery_id
        raise TokenError("this link is not valid")
