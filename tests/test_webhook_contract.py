"""The sender and the webhook agree: events built from what the SendGrid provider really posted
(its `custom_args`, flattened into each event as SendGrid does) land on the right ledger rows."""

from __future__ import annotations

import dataclasses
from email.headerregistry import Address
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from newsletter.clock import FixedClock
from newsletter.config import Secret
from newsletter.db.models import Delivery, Subscription, Suppression
from newsletter.db.session import transaction
from newsletter.delivery.sending import send_issue
from newsletter.providers.sendgrid import SendGridProvider
from newsletter.runtime import Runtime
from newsletter.testing.sendgrid_server import SendGridServer
from tests.fixtures.web import WebhookKey, add_issue, add_list, add_subscriber, body_of


def _send_through_sendgrid(runtime: Runtime, clock: FixedClock) -> list[dict[str, Any]]:
    """Send a 3-recipient issue to the local SendGrid stand-in; its personalizations."""
    with transaction(runtime.sessions) as session:
        list_id = add_list(session, clock)
        for n in range(3):
            add_subscriber(session, clock, f"reader{n}@example.jp", list_id)
        issue_id = add_issue(session, clock, list_id, status="built")
    with SendGridServer(api_key="k") as server:
        settings = dataclasses.replace(
            runtime.settings,
            provider="sendgrid",
            sendgrid_api_key=Secret("k"),
            sendgrid_host=server.url,
            from_address=Address("AI日報", "news", "example.com"),
        )
        provider = SendGridProvider.from_settings(settings)
        try:
            send_issue(runtime, settings, provider, issue_id, clock)
        finally:
            provider.close()
        return [p for request in server.requests for p in request["personalizations"]]


def test_events_from_real_sends_reach_their_deliveries(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock: FixedClock
) -> None:
    sent = _send_through_sendgrid(web_runtime, clock)
    assert len(sent) == 3
    ts = int(clock.now().timestamp())
    events = [
        {
            "email": p["to"][0]["email"],
            "timestamp": ts,
            "event": "delivered" if n < 2 else "bounce",
            "type": "bounce",
            "sg_event_id": f"ev-{n}",
            **p["custom_args"],
        }
        for n, p in enumerate(sent)
    ]
    body = body_of(events)
    answer = web_client.post(
        "/webhooks/sendgrid", content=body, headers=webhook_key.headers(body, ts)
    )
    assert answer.status_code == 200 and answer.json()["ledger_updates"] == 3
    with web_runtime.sessions() as session:
        last = dict(
            (row[0], row[1])
            for row in session.execute(select(Delivery.subscriber_id, Delivery.last_event))
        )
        bounced_subscriber = int(sent[2]["custom_args"]["subscriber_id"])
        assert sorted(last.values()) == ["bounce", "delivered", "delivered"]
        assert last[bounced_subscriber] == "bounce"
        assert session.scalar(select(Suppression.reason)) == "bounced"
        statuses = session.execute(select(Subscription.subscriber_id, Subscription.status)).all()
    assert {sid: status for sid, status in statuses}[bounced_subscriber] == "bounced"
