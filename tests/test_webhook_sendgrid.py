"""SendGrid Signed Event Webhook: verification and parsing, without a database."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from newsletter.errors import ConfigError, WebhookError
from newsletter.webhooks import sendgrid
from tests.fixtures.web import WebhookKey, make_webhook_key

NOW = datetime(2026, 6, 13, 0, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
BODY = b'[{"email":"a@example.com","timestamp":1781308800,"event":"delivered","sg_event_id":"e1"}]'


def _verify(key: WebhookKey, headers: dict[str, str], body: bytes = BODY, **kw: object) -> None:
    sendgrid.verify(
        key.public_b64,
        signature=headers.get(sendgrid.SIGNATURE_HEADER),
        timestamp=headers.get(sendgrid.TIMESTAMP_HEADER),
        body=body,
        now=NOW,
        **kw,  # type: ignore[arg-type]
    )


def test_a_genuine_signature_verifies(webhook_key: WebhookKey) -> None:
    _verify(webhook_key, webhook_key.headers(BODY, TS))


def test_a_changed_body_fails_with_403(webhook_key: WebhookKey) -> None:
    headers = webhook_key.headers(BODY, TS)
    with pytest.raises(WebhookError) as err:
        _verify(webhook_key, headers, body=BODY.replace(b"delivered", b"open"))
    assert err.value.status == 403


def test_a_signature_from_another_key_fails(webhook_key: WebhookKey) -> None:
    forged = make_webhook_key().headers(BODY, TS)
    with pytest.raises(WebhookError, match="does not match"):
        _verify(webhook_key, forged)


def test_the_timestamp_is_part_of_what_is_signed(webhook_key: WebhookKey) -> None:
    headers = webhook_key.headers(BODY, TS)
    headers[sendgrid.TIMESTAMP_HEADER] = str(TS + 1)
    with pytest.raises(WebhookError, match="does not match"):
        _verify(webhook_key, headers)


@pytest.mark.parametrize("offset", [-601, 601])
def test_a_timestamp_outside_the_tolerance_is_refused(webhook_key: WebhookKey, offset: int) -> None:
    headers = webhook_key.headers(BODY, TS + offset)
    with pytest.raises(WebhookError, match="tolerance 600 s") as err:
        _verify(webhook_key, headers)
    assert err.value.status == 403


def test_the_tolerance_is_configurable(webhook_key: WebhookKey) -> None:
    _verify(webhook_key, webhook_key.headers(BODY, TS - 3000), tolerance_s=3600)


@pytest.mark.parametrize(
    "headers",
    [{}, {sendgrid.SIGNATURE_HEADER: "not base64!", sendgrid.TIMESTAMP_HEADER: str(TS)}],
)
def test_missing_or_garbled_headers_are_refused(
    webhook_key: WebhookKey, headers: dict[str, str]
) -> None:
    with pytest.raises(WebhookError) as err:
        _verify(webhook_key, headers)
    assert err.value.status == 403


def test_an_invalid_public_key_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        sendgrid.load_public_key(base64.b64encode(b"not a key").decode())


def test_parse_keeps_custom_args_and_drops_personal_fields_from_the_payload() -> None:
    body = (
        b'[{"email":"Hana@example.jp","timestamp":1781308800,"event":"click",'
        b'"sg_event_id":"abc","ip":"203.0.113.9","useragent":"Mail","url":"https://x.test/a",'
        b'"issue_id":"7","delivery_id":"42","subscriber_id":"9","batch_id":"3"}]'
    )
    [event] = sendgrid.parse(body)
    assert (event.event_id, event.type, event.email) == ("abc", "click", "Hana@example.jp")
    assert (event.issue_id, event.delivery_id, event.subscriber_id, event.batch_id) == (7, 42, 9, 3)
    assert event.occurred_at == datetime(2026, 6, 13, 0, 0, tzinfo=UTC)
    assert "email" not in event.payload and "ip" not in event.payload
    assert event.payload["url"] == "https://x.test/a"


def test_an_event_without_sg_event_id_gets_a_stable_content_id() -> None:
    body = b'[{"email":"a@example.com","timestamp":1781308800,"event":"open"}]'
    assert sendgrid.parse(body)[0].event_id == sendgrid.parse(body)[0].event_id
    assert sendgrid.parse(body)[0].event_id.startswith("sha256:")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"event":"open"}', "JSON array"),
        (b"[1]", "event 0: expected an object"),
        (b'[{"timestamp":1}]', "missing field 'event'"),
        (b'[{"event":"open","timestamp":"yesterday"}]', "Unix time"),
    ],
)
def test_malformed_bodies_are_400_naming_the_problem(body: bytes, problem: str) -> None:
    with pytest.raises(WebhookError, match=problem) as err:
        sendgrid.parse(body)
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("event", "hard"),
    [
        ({"event": "bounce", "type": "bounce"}, True),
        ({"event": "bounce", "type": "blocked"}, False),
        ({"event": "dropped", "reason": "Bounced Address"}, True),
        ({"event": "dropped", "reason": "Unsubscribed Address"}, False),
        ({"event": "deferred"}, False),
    ],
)
def test_only_real_bounces_count_as_hard_bounces(event: dict[str, str], hard: bool) -> None:
    parsed = sendgrid.parse_event({**event, "timestamp": TS, "email": "a@example.com"})
    assert parsed.is_hard_bounce is hard


def test_a_pem_copy_of_the_key_verifies_too(webhook_key: WebhookKey) -> None:
    der = base64.b64decode(webhook_key.public_b64)
    pem = (
        "-----BEGIN PUBLIC KEY-----\n"
        + base64.encodebytes(der).decode()
        + "-----END PUBLIC KEY-----\n"
    )
    headers = webhook_key.headers(BODY, TS)
    sendgrid.verify(
        pem,
        signature=headers[sendgrid.SIGNATURE_HEADER],
        timestamp=headers[sendgrid.TIMESTAMP_HEADER],
        body=BODY,
        now=NOW,
    )


def test_an_issue_id_out_of_the_columns_range_reads_as_absent() -> None:
    from newsletter.webhooks.sendgrid import parse_event

    event = parse_event(
        {"event": "processed", "timestamp": 1781300000, "issue_id": "9999999999", "batch_id": "7"}
    )
    assert event.issue_id is None  # issues.id is 32-bit on PostgreSQL
    assert event.batch_id == 7
