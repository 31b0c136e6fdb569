"""Mail to the unsubscribe and bounce addresses: `unsubscribe+TOKEN@` and `bounces+TOKEN@`
`<NEWSLETTER_INBOUND_DOMAIN>`.

The `mailto:` target of every newsletter's List-Unsubscribe (RFC 2369) carries the recipient's
signed link token (`subscribers.tokens`), never a bare id. A message to it with a genuine token
ends that subscriber's subscription to that list through `service.unsubscribe_with_token`, the
same function the web link uses; a forged or damaged token changes nothing. What the message
says does not matter (RFC 2369: sending it is the request).

The bounce address is each SMTP message's envelope sender (VERP), so a DSN or an ARF complaint
comes back to an address that names its subscriber with a signed token: a report can only
suppress the subscriber it was sent for (and only when it names that address, or none). Hard
bounces and complaints (`subscribers.bounces`) go through `suppression.suppress`, the rules the
SendGrid webhook applies.

`InboundHandler` is an aiosmtpd handler (SMTP or LMTP): `newsletter inbound` serves it. It
accepts at RCPT only addresses it can act on, so a relay keeps other mail (and its bounce).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import Subscriber
from newsletter.errors import TokenError
from newsletter.webhooks.soft_bounces import record_soft_bounces
from subscribers.bounces import COMPLAINT, HARD_BOUNCE, SOFT_BOUNCE, parse_report
from subscribers.service import unsubscribe_with_token
from subscribers.suppression import suppress
from subscribers.tokens import BOUNCES_LOCAL, UNSUBSCRIBE_LOCAL, LinkSigner, token_from_address

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboundOutcome:
    address_kind: str  # "unsubscribe" | "bounces"
    outcome: str  # "unsubscribed" | "already" | "suppressed" | "ignored" | "forged"


def unsubscribe_by_mail(
    sessions: sessionmaker[Session], settings: Settings, clock: Clock, token: str
) -> InboundOutcome:
    """Act on one message to `unsubscribe+TOKEN@`; commits. Never raises for a bad token."""
    with sessions() as session:
        try:
            changed = unsubscribe_with_token(session, settings, clock, token=token, source="email")
        except TokenError:
            log.warning("inbound: unsubscribe message with an invalid token ignored")
            return InboundOutcome("unsubscribe", "forged")
        session.commit()
    return InboundOutcome("unsubscribe", "unsubscribed" if changed else "already")


def report_by_mail(
    sessions: sessionmaker[Session], settings: Settings, clock: Clock, token: str, data: bytes
) -> InboundOutcome:
    """Act on one message to `bounces+TOKEN@`: a hard bounce or complaint suppresses."""
    try:
        claim = LinkSigner(settings).verify(token)
    except TokenError:
        log.warning("inbound: bounce message with an invalid token ignored")
        return InboundOutcome("bounces", "forged")
    reports = parse_report(data)
    with sessions() as session:
        subscriber = session.get(Subscriber, claim.subscriber_id)
        if subscriber is None:
            return InboundOutcome("bounces", "ignored")  # erased or removed since
        own = {subscriber.email.lower(), subscriber.email_key}
        mine = [r for r in reports if r.address is None or r.address.lower() in own]
        kinds = {r.kind for r in mine}
        if not kinds:
            return InboundOutcome("bounces", "ignored")  # a delay warning, or another address
        if kinds == {SOFT_BOUNCE}:
            over = record_soft_bounces(
                session,
                [subscriber.email_hash],
                now=clock.now(),
                source="smtp",
                limit=settings.soft_bounce_limit,
            )
            if not over:
                session.commit()
                return InboundOutcome("bounces", "soft-bounce")
            kind, source = HARD_BOUNCE, "smtp:soft-bounces"
        else:
            # A complaint outranks a bounce (SendGrid webhook rule).
            kind = COMPLAINT if COMPLAINT in kinds else HARD_BOUNCE
            source = f"smtp:{kind}"
        suppress(session, clock, email_hash=subscriber.email_hash, reason=kind, source=source)
        session.commit()
    return InboundOutcome("bounces", "suppressed")


class InboundHandler:
    """aiosmtpd handler: RCPT accepts only `unsubscribe+TOKEN@` and `bounces+TOKEN@` at the
    inbound domain; DATA acts on each."""

    def __init__(
        self, sessions: sessionmaker[Session], settings: Settings, clock: Clock, domain: str
    ) -> None:
        self.sessions, self.settings, self.clock, self.domain = sessions, settings, clock, domain
        self.outcomes: list[InboundOutcome] = []  # for tests and logs

    def token(self, address: str) -> tuple[str, str] | None:
        """(kind, token) for an address this receiver acts on, else None."""
        for local in (UNSUBSCRIBE_LOCAL, BOUNCES_LOCAL):
            token = token_from_address(address, local, self.domain)
            if token is not None:
                return local, token
        return None

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.token(address) is None:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        loop = asyncio.get_running_loop()
        for address in envelope.rcpt_tos:
            found = self.token(address)
            if found is None:
                continue
            kind, token = found
            args = (self.sessions, self.settings, self.clock, token)
            if kind == BOUNCES_LOCAL:
                data = envelope.original_content or envelope.content or b""
                outcome = await loop.run_in_executor(None, report_by_mail, *args, data)
            else:
                outcome = await loop.run_in_executor(None, unsubscribe_by_mail, *args)
            self.outcomes.append(outcome)
        # A forged token is accepted and ignored: refusing it would tell a prober which is real.
        return "250 OK"


class InboundController(Controller):
    """aiosmtpd's threaded server for `InboundHandler`: SMTP, or LMTP with `lmtp=True`; port 0
    picks a free port (read `.port` after `start()`)."""

    def __init__(self, handler: InboundHandler, *, lmtp: bool = False, **kwargs: Any) -> None:
        self.lmtp = lmtp
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        if self.lmtp:
            return LMTP(self.handler, **self.SMTP_kwargs)
        return SMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()
