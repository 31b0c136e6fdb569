"""The mailto: unsubscribe and the VERP bounce address, end to end: real SMTP and LMTP
sessions (aiosmtpd + smtplib) to the inbound receiver. A genuine token unsubscribes; a DSN
hard bounce or an ARF complaint for the token's own address suppresses, and so do soft bounces
on three days; a forged token, a delay warning or a report about another address changes
nothing."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select

from newsletter.db.models import ConsentRecord, Subscriber, Subscription, Suppression
from newsletter.runtime import Runtime
from subscribers.inbound import InboundController, InboundHandler
from subscribers.tokens import (
    LinkSigner,
    bounce_address,
    token_from_address,
    unsubscribe_mailto,
)
from tests.fixtures.web import Seeded
from tests.test_bounces import arf, dsn

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


def _bounce_to(runtime: Runtime, seed: Seeded, token: str | None = None) -> str:
    token = token or LinkSigner(runtime.settings).token(seed.subscriber_id, seed.list_id)
    return bounce_address(token, DOMAIN)


def _suppressed(runtime: Runtime, seed: Seeded) -> str | None:
    with runtime.sessions() as session:
        subscriber = session.get(Subscriber, seed.subscriber_id)
        return session.scalar(
            select(Suppression.reason).where(Suppression.email_hash == subscriber.email_hash)
        )


def _deliver(port: int, rcpt: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail("", [rcpt], data)


def test_a_dsn_hard_bounce_to_the_verp_address_suppresses(
    receiver, web_runtime: Runtime, web_seed: Seeded
) -> None:
    controller, handler = receiver
    _deliver(
        controller.port, _bounce_to(web_runtime, web_seed), dsn("failed", "5.1.1", web_seed.email)
    )
    assert _suppressed(web_runtime, web_seed) == "bounced"
    assert _status(web_runtime, web_seed) == "bounced"
    assert [o.outcome for o in handler.outcomes] == ["suppressed"]


def test_an_arf_complaint_suppresses(receiver, web_runtime: Runtime, web_seed: Seeded) -> None:
    controller, _ = receiver
    _deliver(controller.port, _bounce_to(web_runtime, web_seed), arf(rcpt=web_seed.email))
    assert _suppressed(web_runtime, web_seed) == "complained"
    assert _status(web_runtime, web_seed) == "complained"


def test_soft_bounces_forged_tokens_and_other_addresses_change_nothing(
    receiver, web_runtime: Runtime, web_seed: Seeded
) -> None:
    controller, handler = receiver
    genuine = LinkSigner(web_runtime.settings).token(web_seed.subscriber_id, web_seed.list_id)
    forged = genuine[:-3] + ("aaa" if not genuine.endswith("aaa") else "bbb")
    port = controller.port
    _deliver(port, _bounce_to(web_runtime, web_seed), dsn("delayed", "4.4.7", web_seed.email))
    _deliver(
        port, _bounce_to(web_runtime, web_seed, forged), dsn("failed", "5.1.1", web_seed.email)
    )
    _deliver(port, _bounce_to(web_runtime, web_seed), dsn("failed", "5.1.1", "other@example.jp"))
    assert _suppressed(web_runtime, web_seed) is None
    assert _status(web_runtime, web_seed) == "active"
    assert [o.outcome for o in handler.outcomes] == ["ignored", "forged", "ignored"]


def test_one_soft_bounce_is_counted_but_changes_nothing(
    receiver, web_runtime: Runtime, web_seed: Seeded
) -> None:
    controller, handler = receiver
    _deliver(
        controller.port, _bounce_to(web_runtime, web_seed), dsn("failed", "4.2.2", web_seed.email)
    )
    assert _suppressed(web_runtime, web_seed) is None
    assert _status(web_runtime, web_seed) == "active"
    assert [o.outcome for o in handler.outcomes] == ["soft-bounce"]


def test_soft_bounces_on_three_days_suppress_the_address_as_bounced(
    receiver, web_runtime: Runtime, web_seed: Seeded
) -> None:
    controller, handler = receiver
    for _ in range(3):
        for _twice_a_day in range(2):  # a second report the same day is not a second day
            _deliver(
                controller.port,
                _bounce_to(web_runtime, web_seed),
                dsn("failed", "4.2.2", web_seed.email),
            )
        web_runtime.clock.advance(days=1)
    assert _suppressed(web_runtime, web_seed) == "bounced"
    assert _status(web_runtime, web_seed) == "bounced"
    # The first report of the third day crosses the limit.
    assert [o.outcome for o in handler.outcomes] == ["soft-bounce"] * 4 + ["suppressed"] * 2


def test_smtp_messages_go_out_with_the_verp_return_path(smtp_sink) -> None:
    from newsletter.providers.smtp import SmtpProvider, parse_smtp_url
    from tests.fixtures.providers import make_batch

    batch = make_batch(2)
    batch = replace(
        batch,
        recipients=[
            replace(r, return_path=bounce_address(f"t{r.subscriber_id}", DOMAIN))
            for r in batch.recipients
        ],
    )
    provider = SmtpProvider(parse_smtp_url(smtp_sink.url))
    try:
        provider.send_batch(batch)
    finally:
        provider.close()
    assert [m.mail_from for m in smtp_sink.messages] == [
        f"bounces+t501@{DOMAIN}",
        f"bounces+t502@{DOMAIN}",
    ]
