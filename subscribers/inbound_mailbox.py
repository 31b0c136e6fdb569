"""The unsubscribe and bounce addresses read from a Maildir, for setups where the MTA cannot
hand mail to `newsletter inbound` over SMTP or LMTP (a hosted mailbox fetched by fetchmail or
getmail, a Postfix `virtual_mailbox_maps` delivery).

Each new message is acted on once, by the same functions the SMTP receiver uses, then marked
seen (moved to `cur/` with the `S` flag) whatever it was, so a poll never reads it twice and
the mailbox keeps it for whoever wants to look. The address it was delivered to is read from
the headers MTAs record the envelope recipient in (`Delivered-To`, `X-Original-To`,
`Envelope-To`), then `To` and `Cc`.
"""

from __future__ import annotations

import email.utils
import mailbox
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.errors import NotFoundError
from subscribers.inbound import InboundOutcome, report_by_mail, unsubscribe_by_mail
from subscribers.tokens import BOUNCES_LOCAL, UNSUBSCRIBE_LOCAL, token_from_address

ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")


@dataclass
class MailboxReport:
    read: int = 0
    outcomes: list[InboundOutcome] = field(default_factory=list)
    not_ours: int = 0  # messages to no address this receiver acts on (marked seen, kept)


def _target(message: mailbox.MaildirMessage, domain: str) -> tuple[str, str] | None:
    for header in ENVELOPE_HEADERS:
        for _name, address in email.utils.getaddresses(message.get_all(header) or []):
            for local in (UNSUBSCRIBE_LOCAL, BOUNCES_LOCAL):
                token = token_from_address(address, local, domain)
                if token is not None:
                    return local, token
    return None


def read_maildir(
    path: Path,
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: Clock,
    domain: str,
) -> MailboxReport:
    """Act on every new message in the Maildir at `path`, once."""
    if not (path / "new").is_dir() or not (path / "cur").is_dir():
        raise NotFoundError(f"{path}: not a Maildir (expected new/, cur/ and tmp/ folders)")
    box = mailbox.Maildir(path, factory=None, create=False)
    report = MailboxReport()
    for key in list(box.iterkeys()):
        message = box.get_message(key)
        if message.get_subdir() != "new":
            continue
        report.read += 1
        target = _target(message, domain)
        if target is None:
            report.not_ours += 1
        else:
            kind, token = target
            if kind == BOUNCES_LOCAL:
                outcome = report_by_mail(sessions, settings, clock, token, message.as_bytes())
            else:
                outcome = unsubscribe_by_mail(sessions, settings, clock, token)
            report.outcomes.append(outcome)
        message.set_subdir("cur")
        message.add_flag("S")
        box[key] = message
    return report
