"""SendGrid's Signed Event Webhook: verify a request, then parse it into `ProviderEvent`s.

Pure functions, no database. Verification comes first and works on the raw bytes: SendGrid
signs `timestamp + body` with ECDSA P-256 / SHA-256 and sends the base64 DER signature in
`X-Twilio-Email-Event-Webhook-Signature` and the Unix timestamp in
`X-Twilio-Email-Event-Webhook-Timestamp`. The public key (base64 DER SubjectPublicKeyInfo, as
shown in SendGrid's settings) is `NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY`.

A timestamp outside the tolerance (past or future) is refused, so a captured request cannot be
replayed later. The signature itself is checked by the `sendgrid` package's `EventWebhook`, the
provider's own implementation, after our stricter checks of the headers' form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    load_der_public_key,
    load_pem_public_key,
)
from sendgrid.helpers.eventwebhook import EventWebhook

from newsletter.errors import ConfigError, WebhookError
from newsletter.webhooks.events import ProviderEvent

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
DEFAULT_TOLERANCE_S = 600

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
# Fields SendGrid sends that identify a person; never stored (the address is kept as a hash).
_PERSONAL_FIELDS = frozenset({"email", "ip", "useragent"})


@lru_cache(maxsize=8)
def load_public_key(public_key_b64: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its base64 DER form; ConfigError if it is not a P-256 key."""
    name = "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY"
    text = public_key_b64.strip()
    try:
        if text.startswith("-----BEGIN"):  # a PEM copy of the same key is accepted too
            key = load_pem_public_key(text.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, UnicodeError, UnsupportedAlgorithm):
        raise ConfigError(f"{name}: not a base64 DER (or PEM) public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{name}: expected an ECDSA P-256 key")
    return key


def verify(
    public_key_b64: str,
    *,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: datetime,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Return if SendGrid signed exactly this body recently; else WebhookError(status=403)."""
    if not signature or not timestamp:
        raise WebhookError("missing signature or timestamp header", status=403)
    try:
        sent_at = int(timestamp.strip())
    except ValueError:
        raise WebhookError("the timestamp header is not a Unix time", status=403) from None
    skew = now.timestamp() - sent_at
    if abs(skew) > tolerance_s:
        raise WebhookError(
            f"the timestamp is {int(skew)} s away from now (tolerance {tolerance_s} s)", status=403
        )
    try:
        base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookError("the signature header is not base64", status=403) from None
    key = load_public_key(public_key_b64)
    try:
        # SendGrid's own verifier (the `sendgrid` package), inside our replay and format checks.
        valid = EventWebhook().verify_signature(
            body.decode("utf-8"), signature.strip(), timestamp.strip(), public_key=key
        )
    except (ValueError, UnicodeError, binascii.Error):
        valid = False
    if not valid:
        raise WebhookError("the signature does not match the body", status=403)


def parse(body: bytes) -> list[ProviderEvent]:
    """The events of one webhook POST (a JSON array of objects); WebhookError(400) otherwise."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookError("the body is not valid JSON", status=400) from None
    if not isinstance(data, list):
        raise WebhookError("expected a JSON array of events", status=400)
    events = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise WebhookError(f"event {index}: expected an object", status=400)
        events.append(parse_event(item, index))
    return events


def parse_event(item: dict[str, Any], index: int = 0) -> ProviderEvent:
    kind = item.get("event")
    if not isinstance(kind, str) or not kind:
        raise WebhookError(f"event {index}: missing field 'event'", status=400)
    email = item.get("email")
    payload = {k: v for k, v in item.items() if k not in _PERSONAL_FIELDS}
    return ProviderEvent(
        provider=PROVIDER,
        event_id=_event_id(item),
        type=kind[:32],
        occurred_at=_occurred_at(item.get("timestamp"), index),
        email=email if isinstance(email, str) and "@" in email else None,
        issue_id=_int_arg(item, "issue_id", limit=_INT32_MAX),  # issues.id is 32-bit
        batch_id=_int_arg(item, "batch_id"),
        delivery_id=_int_arg(item, "delivery_id"),
        subscriber_id=_int_arg(item, "subscriber_id"),
        bounce_type=_str_or_none(item.get("type")),
        reason=_str_or_none(item.get("reason")),
        payload=payload,
    )


def _event_id(item: dict[str, Any]) -> str:
    """`sg_event_id` when present, else a hash of the whole event (stable across redeliveries)."""
    value = item.get("sg_event_id")
    if isinstance(value, str) and value:
        return value[:200]
    digest = hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return "sha256:" + digest


def _occurred_at(value: Any, index: int) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WebhookError(f"event {index}: 'timestamp' must be a Unix time", status=400)
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise WebhookError(f"event {index}: 'timestamp' is out of range", status=400) from None


def _int_arg(item: dict[str, Any], name: str, *, limit: int = _INT64_MAX) -> int | None:
    """A custom arg set by our sender; SendGrid returns them as strings at the top level.

    Out of the column's range (a forged or garbled id) reads as absent: the lookup must not
    fail the whole batch with a database error that SendGrid would retry for three days.
    """
    value = item.get(name)
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        return None  # 0 marks transactional mail (no ledger row)
    return value


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
