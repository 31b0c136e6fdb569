"""The SendGrid provider against the local SendGrid-compatible server (no mocks)."""

from __future__ import annotations

import gc
import socket

import httpx
import pytest

from newsletter.config import Secret
from newsletter.errors import (
    ConfigError,
    InDoubtProviderError,
    PermanentProviderError,
    TransientProviderError,
)
from newsletter.providers.base import Batch, BatchRejected, BatchTooLarge
from newsletter.providers.sendgrid import SendGridProvider, build_payload, retry_after_seconds
from newsletter.testing.sendgrid_server import SendGridServer
from newsletter.types import SLOT_NAME, SLOT_PREFERENCES_URL, SLOT_UNSUBSCRIBE_URL
from tests.fixtures.providers import (
    SENDGRID_TEST_KEY,
    make_batch,
    make_message,
    make_recipient,
    provider_settings,
)


@pytest.fixture
def provider(sendgrid_server: SendGridServer):
    sendgrid = SendGridProvider(Secret(SENDGRID_TEST_KEY), sendgrid_server.url, timeout=5)
    yield sendgrid
    sendgrid.close()


def test_every_recipient_gets_their_own_personalization(provider, sendgrid_server):
    result = provider.send_batch(make_batch(3))
    (request,) = sendgrid_server.requests
    assert [p["to"] for p in request["personalizations"]] == [
        [{"email": f"reader{n}@example.com", "name": f"読者{n}"}] for n in (1, 2, 3)
    ]
    assert result.accepted == [1001, 1002, 1003]
    assert result.provider_message_id


def test_personal_links_travel_as_substitutions(provider, sendgrid_server):
    provider.send_batch(make_batch(1))
    personalization = sendgrid_server.requests[0]["personalizations"][0]
    assert personalization["substitutions"] == {
        SLOT_UNSUBSCRIBE_URL: "https://news.example.com/u/token-1",
        SLOT_PREFERENCES_URL: "https://news.example.com/p/token-1",
        SLOT_NAME: "読者1",
    }


def test_custom_args_let_webhook_events_find_the_delivery(provider, sendgrid_server):
    provider.send_batch(make_batch(1, batch_id=77))
    personalization = sendgrid_server.requests[0]["personalizations"][0]
    assert personalization["custom_args"] == {
        "issue_id": "42",
        "batch_id": "77",
        "delivery_id": "1001",
        "subscriber_id": "501",
    }


def test_one_click_unsubscribe_headers_are_personal(provider, sendgrid_server):
    provider.send_batch(make_batch(2))
    headers = [p["headers"] for p in sendgrid_server.requests[0]["personalizations"]]
    assert headers[1] == {
        "List-Unsubscribe": (
            "<https://news.example.com/u/token-2>, <mailto:unsubscribe@ainippo.example?subject=u2>"
        ),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_shared_fields_are_sent_once_with_text_before_html(provider, sendgrid_server):
    provider.send_batch(make_batch(1))
    request = sendgrid_server.requests[0]
    assert request["from"] == {"email": "news@ainippo.example", "name": "AI日報"}
    assert request["reply_to"] == {"email": "editors@ainippo.example"}
    assert request["subject"] == make_message().subject
    assert [c["type"] for c in request["content"]] == ["text/plain", "text/html"]
    assert request["categories"] == ["newsletter", "ja"]
    assert request["headers"] == {  # custom header values go RFC 2047-encoded, as SendGrid asks
        "List-Id": "=?utf-8?b?QUnml6XloLE=?= <daily.ainippo.example>",
        "Precedence": "bulk",
    }
    assert "mail_settings" not in request


def test_sandbox_mode_is_requested_and_its_200_counts_as_accepted(sendgrid_server):
    sandbox = SendGridProvider(Secret(SENDGRID_TEST_KEY), sendgrid_server.url, sandbox=True)
    try:
        result = sandbox.send_batch(make_batch(2))
    finally:
        sandbox.close()
    assert sendgrid_server.requests[0]["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert result.accepted == [1001, 1002]
    assert sendgrid_server.stats()["statuses"] == {"200": 1}


def test_more_than_1000_recipients_is_split_by_the_core_before_anything_is_sent(
    provider, sendgrid_server
):
    with pytest.raises(BatchTooLarge) as caught:
        provider.send_batch(make_batch(1001))
    assert caught.value.splittable
    assert sendgrid_server.stats()["requests"] == 0


def test_a_full_batch_of_1000_is_one_request(provider, sendgrid_server):
    result = provider.send_batch(make_batch(1000))
    assert len(result.accepted) == 1000
    assert result.requests == 1
    assert sendgrid_server.stats()["unique_recipients"] == 1000


def test_the_same_address_twice_is_never_sent_and_is_reported(provider, sendgrid_server):
    batch = make_batch(3)
    twin = make_recipient(9, email="READER2@example.com")
    result = provider.send_batch(Batch(7, batch.message, [*batch.recipients, twin]))
    assert result.accepted == [1001, 1002, 1003]
    assert "already in this batch (delivery 1002)" in result.failed[1009]
    assert len(sendgrid_server.requests[0]["personalizations"]) == 3


def test_oversized_substitutions_fail_only_that_recipient(provider, sendgrid_server):
    huge = make_recipient(2, preferences_url="https://news.example.com/p/" + "x" * 10_000)
    batch = Batch(7, make_message(), [make_recipient(1), huge])
    result = provider.send_batch(batch)
    assert result.accepted == [1001]
    assert "10,000-byte" in result.failed[1002]


def test_names_lose_html_characters_because_sendgrid_fills_html_verbatim(provider, sendgrid_server):
    batch = Batch(7, make_message(), [make_recipient(1, name='<img src=x onerror="alert(1)">')])
    provider.send_batch(batch)
    substitutions = sendgrid_server.requests[0]["personalizations"][0]["substitutions"]
    assert substitutions[SLOT_NAME] == "img src=x onerror=alert(1)"


def test_rate_limit_is_transient_with_the_servers_retry_after(provider, sendgrid_server):
    sendgrid_server.configure(script=[429], retry_after=7)
    with pytest.raises(TransientProviderError) as caught:
        provider.send_batch(make_batch(2))
    assert caught.value.status == 429
    assert caught.value.retry_after == 7


def test_retry_after_falls_back_to_the_rate_limit_reset_epoch():
    headers = httpx.Headers({"X-RateLimit-Reset": "1000030"})
    assert retry_after_seconds(headers, now=1_000_000.0) == 30
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"}), now=0) is None


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(provider, sendgrid_server, status):
    sendgrid_server.configure(script=[status])
    with pytest.raises(TransientProviderError) as caught:
        provider.send_batch(make_batch(1))
    assert caught.value.status == status


def test_413_with_an_html_body_means_split_and_retry(provider, sendgrid_server):
    sendgrid_server.configure(max_request_bytes=2_000)
    with pytest.raises(BatchTooLarge) as caught:
        provider.send_batch(make_batch(10))
    assert caught.value.status == 413
    assert caught.value.splittable


def test_a_400_naming_recipients_fails_them_and_sends_the_rest(provider, sendgrid_server):
    sendgrid_server.configure(reject_addresses=["reader2@example.com", "reader4@example.com"])
    result = provider.send_batch(make_batch(5))
    assert result.accepted == [1001, 1003, 1005]
    assert set(result.failed) == {1002, 1004}
    assert "valid address" in result.failed[1002]
    assert "reader2@example.com" not in result.failed[1002]
    assert result.requests == 2
    assert sendgrid_server.stats()["unique_recipients"] == 3


def test_a_400_about_personalizations_in_general_is_splittable(provider, sendgrid_server):
    sendgrid_server.configure(script=[400])
    with pytest.raises(BatchRejected) as caught:
        provider.send_batch(make_batch(4))
    assert caught.value.splittable


def test_a_400_about_the_message_itself_is_permanent_and_not_splittable(provider, sendgrid_server):
    batch = make_batch(2, message=make_message(from_email="not-an-address"))
    with pytest.raises(PermanentProviderError) as caught:
        provider.send_batch(batch)
    assert not getattr(caught.value, "splittable", False)
    assert "from.email" in str(caught.value)


def test_a_wrong_api_key_is_permanent_and_never_shown(sendgrid_server):
    wrong = SendGridProvider(Secret("SG.wrong-secret-value"), sendgrid_server.url)
    try:
        with pytest.raises(PermanentProviderError) as caught:
            wrong.send_batch(make_batch(1))
    finally:
        wrong.close()
    assert caught.value.status == 401
    assert not getattr(caught.value, "splittable", False)
    assert "wrong-secret" not in str(caught.value)


def test_an_answer_later_than_the_timeout_leaves_the_batch_in_doubt(sendgrid_server):
    sendgrid_server.configure(late_rate=1.0, late_after=0.5)
    impatient = SendGridProvider(Secret(SENDGRID_TEST_KEY), sendgrid_server.url, timeout=0.1)
    try:
        with pytest.raises(InDoubtProviderError, match="no answer from SendGrid"):
            impatient.send_batch(make_batch(1))
    finally:
        impatient.close()
    assert sendgrid_server.stats()["accepted_recipients"] == 1  # it was sent all the same


def test_a_dropped_connection_after_the_request_leaves_the_batch_in_doubt(sendgrid_server):
    sendgrid_server.configure(drop_rate=1.0)
    provider = SendGridProvider(Secret(SENDGRID_TEST_KEY), sendgrid_server.url)
    try:
        with pytest.raises(InDoubtProviderError):
            provider.send_batch(make_batch(2))
    finally:
        provider.close()
    assert sendgrid_server.stats()["dropped"] == 1


def test_the_timeout_is_a_setting(tmp_path):
    settings = provider_settings(tmp_path, sendgrid_api_key=Secret("k"), sendgrid_timeout_s=7)
    provider = SendGridProvider.from_settings(settings)
    try:
        assert provider._client.timeout.read == 7
    finally:
        provider.close()


def test_preflight_accepts_a_key_that_may_send_mail(sendgrid_server):
    provider = SendGridProvider(Secret(SENDGRID_TEST_KEY), sendgrid_server.url)
    try:
        provider.preflight()
    finally:
        provider.close()


def test_preflight_refuses_a_key_sendgrid_refuses(sendgrid_server):
    provider = SendGridProvider(Secret("wrong-key"), sendgrid_server.url)
    try:
        with pytest.raises(ConfigError, match="SENDGRID_API_KEY: SendGrid refused the key .401"):
            provider.preflight()
    finally:
        provider.close()


def test_preflight_refuses_a_key_without_mail_send(sendgrid_server):
    sendgrid_server.configure(scopes=("stats.read",))
    provider = SendGridProvider(Secret(SENDGRID_TEST_KEY), sendgrid_server.url)
    try:
        with pytest.raises(ConfigError, match="lacks the mail.send permission"):
            provider.preflight()
    finally:
        provider.close()


def test_connection_refused_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nobody = SendGridProvider(Secret(SENDGRID_TEST_KEY), f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(TransientProviderError, match="unreachable"):
            nobody.send_batch(make_batch(1))
    finally:
        nobody.close()


def test_one_kept_alive_connection_serves_many_batches(provider, sendgrid_server):
    for batch_id in range(5):
        provider.send_batch(make_batch(3, batch_id=batch_id))
    assert sendgrid_server.stats()["connections"] == 1


def test_a_sent_batch_leaves_no_request_behind_for_the_cyclic_collector(provider, sendgrid_server):
    """A send quiets the cyclic collector: a request left in a cycle keeps its whole payload."""
    gc.collect()
    gc.disable()
    try:
        for batch_id in range(5):
            provider.send_batch(make_batch(200, batch_id=batch_id))
        left = [o for o in gc.get_objects() if isinstance(o, httpx.Request | httpx.Response)]
    finally:
        gc.enable()
    assert sendgrid_server.stats()["requests"] == 5
    assert left == []


def test_transactional_mail_has_no_issue_and_no_list_headers():
    message = make_message(issue_id=None, bulk=False, list_id=None)
    payload = build_payload(
        Batch(0, message, [make_recipient(1)]), [make_recipient(1)], sandbox=False
    )
    personalization = payload.body["personalizations"][0]
    assert "issue_id" not in personalization["custom_args"]
    assert "headers" not in personalization
    assert payload.body["headers"] == {"Auto-Submitted": "auto-generated"}
