"""The mailto: unsubscribe, end to end: real SMTP and LMTP sessions (aiosmtpd + smtplib) to the
inbound receiver, a genuine token unsubscribes, a forged one changes nothing."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from newsletter.db.models import ConsentRecord, Subscription
from newsletter.runtime import Runtime
from subscribers.inbound import InboundController, InboundHandler
from subscribers.tokens import LinkSigner, token_from_address, unsubscribe_mailto
from tests.fixtures.web import Seeded

DOMAIN = "in.ainippo.example"


@pytest.fixture
def receiver(web_runtime: Runtime) -> Iterator[tuple[InboundController, InboundHandler]]:
    handler = InboundHandler(web_runtime.sessions, web_runtime.settings, web_runtime.clock, DOMAIN)
    controller = InboundController(handler, hostname="127.0.0.1", port=0, server_hostname=DOMAIN)
    controller.start()
    yield controller, handler
    controller.stop()


def _status(runtime: Runtime, seed: Seeded) -> str:
    with runtime.sessions() as session:
        return session.scalar(
            select(Subscription.status).where(Subscription.subscriber_id == seed.subscriber_id)
        )


def _address(runtime: Runtime, seed: Seeded, token: str | None = None) -> str:
    token = token or LinkSigner(runtime.settings).token(seed.subscriber_id, seed.list_id)
    mailto = unsubscribe_mailto(token, DOMAIN)
    return mailto.removeprefix("mailto:").partition("?")[0]


def _send(port: int, rcpt: str) -> dict:
    with smtplib.SMTP("127.0.0.1", port) as client:
        return client.sendmail(
            "reader@example.jp", [rcpt], b"Subject: unsubscribe\r\n\r\nplease\r\n"
        )


def test_a_mailto_unsubscribe_with_a_genuine_token_unsubscribes(
    receiver, web_runtime: Runtime, web_seed: Seeded
) -> None:
    controller, handler = receiver
    assert _status(web_runtime, web_seed) == "active"
    assert _send(controller.port, _address(web_runtime, web_seed)) == {}
    assert _status(web_runtime, web_seed) == "unsubscribed"
    assert [o.outcome for o in handler.outcomes] == ["unsubscribed"]
    with web_runtime.sessions() as session:
        sources = session.scalars(
            select(ConsentRecord.source).where(ConsentRecord.action == "unsubscribe")
        ).all()
    assert sources == ["email"]
    # A second message is harmless.
    _send(controller.port, _address(web_runtime, web_seed))
    assert [o.outcome for o in handler.outcomes] == ["unsubscribed", "already"]


def test_a_forged_token_changes_nothing(receiver, web_runtime: Runtime, web_seed: Seeded) -> None:
    controller, handler = receiver
    genuine = LinkSigner(web_runtime.settings).token(web_seed.subscriber_id, web_seed.list_id)
    forged = genuine[:-3] + ("aaa" if not genuine.endswith("aaa") else "bbb")
    bare_id = f"{web_seed.subscriber_id:x}.{web_seed.list_id:x}"
    for token in (forged, bare_id):
        _send(controller.port, _address(web_runtime, web_seed, token))
    assert _status(web_runtime, web_seed) == "active"
    assert [o.outcome for o in handler.outcomes] == ["forged", "forged"]


def test_other_addresses_are_refused_at_rcpt(receiver, web_runtime, web_seed) -> None:
    controller, _ = receiver
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        _send(controller.port, f"postmaster@{DOMAIN}")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        token = LinkSigner(web_runtime.settings).token(web_seed.subscriber_id, web_seed.list_id)
        _send(controller.port, f"unsubscribe+{token}@elsewhere.example")
    assert _status(web_runtime, web_seed) == "active"


def test_lmtp_sessions_work_the_same(web_runtime: Runtime, web_seed: Seeded) -> None:
    handler = InboundHandler(web_runtime.sessions, web_runtime.settings, web_runtime.clock, DOMAIN)
    controller = InboundController(handler, lmtp=True, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        with smtplib.LMTP("127.0.0.1", controller.port) as client:
            client.sendmail("r@example.jp", [_address(web_runtime, web_seed)], b"\r\nx\r\n")
    finally:
        controller.stop()
    assert _status(web_runtime, web_seed) == "unsubscribed"


def test_the_token_is_read_only_from_the_unsubscribe_mailbox() -> None:
    assert token_from_address("Unsubscribe+abc.1.sig@IN.ainippo.example", "unsubscribe", DOMAIN)
    assert token_from_address("<unsubscribe+t@in.ainippo.example>", "unsubscribe", DOMAIN) == "t"
    assert token_from_address("unsubscribe@in.ainippo.example", "unsubscribe", DOMAIN) is None
    assert token_from_address("bounces+t@in.ainippo.example", "unsubscribe", DOMAIN) is None
