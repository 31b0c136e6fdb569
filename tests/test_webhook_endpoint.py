"""POST /webhooks/sendgrid end to end: signed batches recorded once, bad requests change nothing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from newsletter.clock import FixedClock
from newsletter.db.models import ConsentRecord, Delivery, Event, Subscription, Suppression
from newsletter.runtime import Runtime
from newsletter.web import create_app
from subscribers.audience import eligible_recipients
from tests.fixtures.web import Seeded, WebhookKey, body_of, make_webhook_key, sendgrid_event

URL = "/webhooks/sendgrid"


def _post(client: TestClient, key: WebhookKey, clock: FixedClock, events: list[dict[str, Any]]):
    body = body_of(events)
    return client.post(URL, content=body, headers=key.headers(body, int(clock.now().timestamp())))


def _count(runtime: Runtime, model: type) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _delivery(runtime: Runtime, delivery_id: int) -> Delivery:
    with runtime.sessions() as session:
        found = session.get(Delivery, delivery_id)
        assert found is not None
        return found


def _subscription_status(runtime: Runtime, web_seed: Seeded) -> str:
    with runtime.sessions() as session:
        return session.scalar(
            select(Subscription.status).where(Subscription.subscriber_id == web_seed.subscriber_id)
        )


def test_a_signed_batch_is_stored_and_moves_the_ledger(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    at = clock.now()
    events = [
        sendgrid_event("processed", web_seed, at),
        sendgrid_event("delivered", web_seed, at + timedelta(seconds=5)),
        sendgrid_event("open", web_seed, at + timedelta(minutes=3)),
    ]
    response = _post(web_client, webhook_key, clock, events)
    assert response.status_code == 200
    assert response.json()["stored"] == 3
    assert _count(web_runtime, Event) == 3
    delivery = _delivery(web_runtime, web_seed.delivery_id)
    assert delivery.last_event == "open"
    assert delivery.last_event_at == at + timedelta(minutes=3)


def test_stored_events_keep_a_hash_of_the_address_never_the_address(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    _post(web_client, webhook_key, clock, [sendgrid_event("click", web_seed, clock.now())])
    with web_runtime.sessions() as session:
        event = session.scalars(select(Event)).one()
    assert event.email_hash and len(event.email_hash) == 64
    assert web_seed.email.lower() not in str(event.payload).lower()
    assert (event.issue_id, event.subscriber_id) == (web_seed.issue_id, web_seed.subscriber_id)


def test_redelivering_the_same_batch_changes_nothing(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    events = [sendgrid_event("delivered", web_seed, clock.now())]
    assert _post(web_client, webhook_key, clock, events).json()["stored"] == 1
    again = _post(web_client, webhook_key, clock, events).json()
    assert (again["stored"], again["duplicates"]) == (0, 1)
    assert _count(web_runtime, Event) == 1


def test_a_late_earlier_event_never_moves_the_ledger_back(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    at = clock.now()
    _post(web_client, webhook_key, clock, [sendgrid_event("click", web_seed, at)])
    # A redelivery with a new sg_event_id, as SendGrid is reported to do.
    late = sendgrid_event("delivered", web_seed, at - timedelta(seconds=30), sg_event_id="new-id")
    _post(web_client, webhook_key, clock, [late])
    assert _delivery(web_runtime, web_seed.delivery_id).last_event == "click"


def test_a_hard_bounce_suppresses_the_address_and_leaves_the_audience(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    bounce = sendgrid_event(
        "bounce", web_seed, clock.now(), type="bounce", reason="550 no such user"
    )
    assert _post(web_client, webhook_key, clock, [bounce]).json()["suppressed"] == 1
    with web_runtime.sessions() as session:
        assert session.scalars(select(Suppression.reason)).one() == "bounced"
        assert session.execute(eligible_recipients(web_seed.list_id)).all() == []
    assert _subscription_status(web_runtime, web_seed) == "bounced"


def test_a_blocked_bounce_does_not_suppress(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    blocked = sendgrid_event("bounce", web_seed, clock.now(), type="blocked")
    _post(web_client, webhook_key, clock, [blocked])
    assert _count(web_runtime, Suppression) == 0
    assert _subscription_status(web_runtime, web_seed) == "active"


def test_a_drop_for_a_bounced_address_suppresses(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    dropped = sendgrid_event("dropped", web_seed, clock.now(), reason="Bounced Address")
    _post(web_client, webhook_key, clock, [dropped])
    assert _count(web_runtime, Suppression) == 1


def test_a_spam_report_marks_complained_suppresses_and_records_consent(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    result = _post(
        web_client, webhook_key, clock, [sendgrid_event("spamreport", web_seed, clock.now())]
    )
    assert result.json()["complained"] == 1
    assert _subscription_status(web_runtime, web_seed) == "complained"
    with web_runtime.sessions() as session:
        assert session.scalars(select(Suppression.reason)).one() == "complained"
        record = session.scalars(select(ConsentRecord)).one()
    assert (record.action, record.source, record.detail) == ("suppress", "webhook", "complained")


@pytest.mark.parametrize("kind", ["unsubscribe", "group_unsubscribe"])
def test_an_unsubscribe_event_ends_the_subscription_to_that_list(
    web_client: TestClient,
    web_runtime: Runtime,
    webhook_key: WebhookKey,
    clock,
    web_seed: Seeded,
    kind: str,
) -> None:
    _post(web_client, webhook_key, clock, [sendgrid_event(kind, web_seed, clock.now())])
    assert _subscription_status(web_runtime, web_seed) == "unsubscribed"
    assert _count(web_runtime, Suppression) == 0  # a list unsubscribe is not a suppression


def test_unknown_event_types_are_kept_and_not_fatal(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    events = [
        sendgrid_event("machine_opened", web_seed, clock.now()),
        sendgrid_event("delivered", web_seed, clock.now()),
    ]
    answer = _post(web_client, webhook_key, clock, events).json()
    assert answer["stored"] == 2 and answer["unknown_types"] == {"machine_opened": 1}
    assert _delivery(web_runtime, web_seed.delivery_id).last_event == "delivered"


def test_events_for_ids_that_do_not_exist_are_stored_without_them(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    stray = sendgrid_event(
        "delivered", web_seed, clock.now(), issue_id="999", subscriber_id="998", delivery_id="997"
    )
    assert _post(web_client, webhook_key, clock, [stray]).status_code == 200
    with web_runtime.sessions() as session:
        event = session.scalars(select(Event)).one()
    assert event.issue_id is None
    assert event.subscriber_id is None  # the custom arg did not match the address's subscriber


def test_a_forged_signature_is_403_and_changes_nothing(
    web_client: TestClient, web_runtime: Runtime, clock, web_seed: Seeded
) -> None:
    response = _post(
        web_client, make_webhook_key(), clock, [sendgrid_event("spamreport", web_seed, clock.now())]
    )
    assert response.status_code == 403
    assert _count(web_runtime, Event) == 0 and _count(web_runtime, Suppression) == 0


def test_a_replayed_old_request_is_403_and_changes_nothing(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    body = body_of([sendgrid_event("spamreport", web_seed, clock.now())])
    old = int(clock.now().timestamp()) - 11 * 60
    response = web_client.post(URL, content=body, headers=webhook_key.headers(body, old))
    assert response.status_code == 403
    assert (
        _count(web_runtime, Event) == 0 and _subscription_status(web_runtime, web_seed) == "active"
    )


def test_a_malformed_body_is_400_and_changes_nothing(
    web_client: TestClient, web_runtime: Runtime, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    body = b'[{"event": "spamreport", "timestamp": 1781308800}, {"broken"'
    response = web_client.post(
        URL, content=body, headers=webhook_key.headers(body, int(clock.now().timestamp()))
    )
    assert response.status_code == 400
    assert _count(web_runtime, Event) == 0


def test_without_a_signing_key_the_webhook_refuses_with_503(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    runtime = dataclasses.replace(
        web_runtime,
        settings=dataclasses.replace(web_runtime.settings, sendgrid_webhook_public_key=None),
    )
    with TestClient(create_app(runtime)) as client:
        body = body_of([sendgrid_event("delivered", web_seed, clock.now())])
        response = client.post(URL, content=body)
    assert response.status_code == 503
    assert "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json()["error"]
    assert _count(web_runtime, Event) == 0


def test_the_insecure_dev_setting_accepts_unsigned_webhooks(
    web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    settings = dataclasses.replace(
        web_runtime.settings, sendgrid_webhook_public_key=None, webhook_insecure=True
    )
    runtime = dataclasses.replace(web_runtime, settings=settings)
    with TestClient(create_app(runtime)) as client:
        body = body_of([sendgrid_event("delivered", web_seed, clock.now())])
        assert client.post(URL, content=body).status_code == 200
    assert _count(web_runtime, Event) == 1
