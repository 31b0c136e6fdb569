"""SendGrid's Signed Event Webhook scheme, checked independently of the project's verifier.

The batches are signed here with `cryptography` alone, exactly as SendGrid documents it: ECDSA
P-256 with SHA-256 over the timestamp header's text followed by the raw body, the DER
signature base64-encoded in X-Twilio-Email-Event-Webhook-Signature, the Unix time in
X-Twilio-Email-Event-Webhook-Timestamp, and the public key shown as base64 DER
(SubjectPublicKeyInfo). SendGrid's own reference verifier (the `sendgrid` package's
EventWebhook) must accept the same signature, so the test's idea of the scheme is SendGrid's.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from starlette.testclient import TestClient

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.runtime import Runtime
from newsletter.web import create_app
from tests.fixtures.web import Seeded

PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY_B64 = base64.b64encode(
    PRIVATE_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode("ascii")


def _signed(body: bytes, timestamp: str) -> dict[str, str]:
    signature = PRIVATE_KEY.sign(timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode("ascii"),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }
    reference = EventWebhook(PUBLIC_KEY_B64)
    assert reference.verify_signature(
        body.decode("utf-8"), headers["X-Twilio-Email-Event-Webhook-Signature"], timestamp
    )
    return headers


@pytest.fixture
def client(web_settings: Settings, clock: FixedClock) -> Iterator[TestClient]:
    settings = dataclasses.replace(web_settings, sendgrid_webhook_public_key=PUBLIC_KEY_B64)
    runtime = Runtime.open(settings, clock=clock)
    try:
        with TestClient(create_app(runtime)) as test_client:
            yield test_client
    finally:
        runtime.close()


def _batch(web_seed: Seeded, clock: FixedClock) -> bytes:
    event = {
        "email": web_seed.email,
        "timestamp": int(clock.now().timestamp()),
        "event": "delivered",
        "sg_event_id": "independent-1",
        "sg_message_id": "msg.filter0001",
        "issue_id": str(web_seed.issue_id),
        "delivery_id": str(web_seed.delivery_id),
        "subscriber_id": str(web_seed.subscriber_id),
    }
    return orjson.dumps([event])


def test_a_batch_signed_the_way_sendgrid_signs_is_accepted(
    client: TestClient, clock: FixedClock, web_seed: Seeded
) -> None:
    body = _batch(web_seed, clock)
    now = str(int(clock.now().timestamp()))
    response = client.post("/webhooks/sendgrid", content=body, headers=_signed(body, now))
    assert response.status_code == 200 and response.json()["stored"] == 1


def test_a_tampered_body_is_refused(
    client: TestClient, clock: FixedClock, web_seed: Seeded
) -> None:
    body = _batch(web_seed, clock)
    headers = _signed(body, str(int(clock.now().timestamp())))
    tampered = body.replace(b'"delivered"', b'"spamreport"')
    response = client.post("/webhooks/sendgrid", content=tampered, headers=headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    "offset", [timedelta(seconds=-601), timedelta(hours=-1), timedelta(hours=1)]
)
def test_a_stale_or_future_timestamp_is_refused_even_when_correctly_signed(
    client: TestClient, clock: FixedClock, web_seed: Seeded, offset: timedelta
) -> None:
    body = _batch(web_seed, clock)
    stale = str(int((clock.now() + offset).timestamp()))
    response = client.post("/webhooks/sendgrid", content=body, headers=_signed(body, stale))
    assert response.status_code == 403


def test_a_signature_by_another_key_is_refused(
    client: TestClient, clock: FixedClock, web_seed: Seeded
) -> None:
    body = _batch(web_seed, clock)
    timestamp = str(int(clock.now().timestamp()))
    other = ec.generate_private_key(ec.SECP256R1())
    signature = other.sign(timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode("ascii"),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }
    assert client.post("/webhooks/sendgrid", content=body, headers=headers).status_code == 403
