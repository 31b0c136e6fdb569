"""Bounce and complaint reports that arrive by mail: DSN (RFC 3464) and ARF (RFC 5965).

Read with the standard library's parser (no maintained DSN parser is installed here): a
`multipart/report` with a `message/delivery-status` part is a DSN, one with a
`message/feedback-report` part is an ARF complaint. A DSN counts as a hard bounce only for a
recipient whose `Action` is `failed` with a `5.x.x` `Status` (a `4.x.x` or `delayed` report is a
soft bounce and changes nothing). An ARF report is a complaint unless its `Feedback-Type` is
`not-spam`. These feed the same suppression rules as the SendGrid webhook: a hard bounce
suppresses the address as bounced, a complaint as complained.
"""

from __future__ import annotations

import email
import email.utils
from dataclasses import dataclass
from email import policy
from email.message import Message

HARD_BOUNCE = "bounced"
COMPLAINT = "complained"


@dataclass(frozen=True, slots=True)
class Report:
    kind: str  # HARD_BOUNCE | COMPLAINT
    address: str | None  # the recipient the report names (Final-Recipient / Original-Rcpt-To)
    detail: str  # status code and diagnostic, or the feedback type


def parse_report(data: bytes) -> list[Report]:
    """The hard bounces and complaints in one inbound message (empty for anything else)."""
    message = email.message_from_bytes(data, policy=policy.compat32)
    reports: list[Report] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            reports += _dsn(part)
        elif kind == "message/feedback-report":
            reports += _arf(part, message)
    return reports


def _address(value: str | None) -> str | None:
    """`rfc822; user@example.com` -> `user@example.com`."""
    if not value:
        return None
    _, _, address = value.partition(";") if ";" in value else ("", "", value)
    return address.strip().strip("<>") or None


def _dsn(part: Message) -> list[Report]:
    blocks = part.get_payload()
    if not isinstance(blocks, list):
        return []
    out: list[Report] = []
    for block in blocks[1:]:  # the first block is about the message, the rest per recipient
        action = (block.get("Action") or "").strip().lower()
        status = (block.get("Status") or "").strip()
        if action == "failed" and status.startswith("5"):
            diagnostic = " ".join((block.get("Diagnostic-Code") or "").split())
            address = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
            out.append(Report(HARD_BOUNCE, address, f"{status} {diagnostic}".strip()))
    return out


def _arf(part: Message, message: Message) -> list[Report]:
    payload = part.get_payload()
    fields = payload[0] if isinstance(payload, list) and payload else part
    feedback = (fields.get("Feedback-Type") or "").strip().lower()
    if feedback == "not-spam":
        return []
    address = _address(fields.get("Original-Rcpt-To"))
    if address is None:
        for inner in message.walk():
            if inner.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
                original = inner.get_payload()
                if isinstance(original, list) and original:
                    address = _address(email.utils.parseaddr(original[0].get("To", ""))[1])
                break
    return [Report(COMPLAINT, address, feedback or "abuse")]
