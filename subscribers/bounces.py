"""Bounce and complaint reports that arrive by mail: DSN (RFC 3464), ARF (RFC 5965), and the
non-standard bounce formats MTAs still send.

A `multipart/report` with a `message/delivery-status` part is a DSN, read here field by field:
a recipient whose `Action` is `failed` with a `5.x.x` `Status` is a hard bounce, one that
`failed` with a `4.x.x` status (mailbox full, over quota, greylisted to the end) is a soft
bounce, and a `delayed` report changes nothing (the MTA is still trying). One with a
`message/feedback-report` part is an ARF complaint unless its `Feedback-Type` is `not-spam`.

Anything else goes to `flufl.bounce` (Mailman's bounce detectors: Exim, Postfix, qmail,
Microsoft, Yahoo and other pre-RFC formats), whose permanent failures count as hard bounces;
its temporary ones are delay warnings and change nothing. These feed the same suppression rules
as the SendGrid webhook: a hard bounce suppresses the address as bounced, a complaint as
complained, and soft bounces on enough days (`newsletter.webhooks.soft_bounces`) as bounced.
"""

from __future__ import annotations

import email
import email.utils
from dataclasses import dataclass
from email import policy
from email.message import Message

from flufl.bounce import all_failures

HARD_BOUNCE = "bounced"
SOFT_BOUNCE = "soft"
COMPLAINT = "complained"


@dataclass(frozen=True, slots=True)
class Report:
    kind: str  # HARD_BOUNCE | SOFT_BOUNCE | COMPLAINT
    address: str | None  # the recipient the report names (Final-Recipient / Original-Rcpt-To)
    detail: str  # status code and diagnostic, or the feedback type


def parse_report(data: bytes) -> list[Report]:
    """The hard bounces and complaints in one inbound message (empty for anything else)."""
    message = email.message_from_bytes(data, policy=policy.compat32)
    reports: list[Report] = []
    standard = False
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            reports += _dsn(part)
            standard = True
        elif kind == "message/feedback-report":
            reports += _arf(part, message)
            standard = True
    if not standard:
        reports += _other_formats(message)
    return reports


def _other_formats(message: Message) -> list[Report]:
    """A bounce in one of the older formats: its permanent failures, by flufl.bounce."""
    try:
        _temporary, permanent = all_failures(message)
    except Exception:  # a detector tripping on a strange message must not stop the receiver
        return []
    return [
        Report(HARD_BOUNCE, address.decode("utf-8", "replace").strip("<>"), "bounce")
        for address in sorted(permanent)
    ]


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
        if action == "failed" and status[:1] in ("4", "5"):
            diagnostic = " ".join((block.get("Diagnostic-Code") or "").split())
            address = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
            kind = HARD_BOUNCE if status.startswith("5") else SOFT_BOUNCE
            out.append(Report(kind, address, f"{status} {diagnostic}".strip()))
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
