"""The SMTP provider against a real aiosmtpd server with injected replies (no mocks)."""

from __future__ import annotations

import email
import socket
import threading
from email import policy

import pytest

from newsletter.errors import ConfigError, PermanentProviderError, TransientProviderError
from newsletter.providers.base import Batch
from newsletter.providers.smtp import SmtpProvider, classify_smtp_code, parse_smtp_url
from newsletter.testing.smtp_sink import SmtpSink, server_tls_context
from tests.fixtures.providers import JA_SUBJECT, make_batch, make_message, make_recipient


@pytest.fixture(params=["pipelining", "lockstep"])
def smtp_sink(request: pytest.FixtureRequest):
    """The aiosmtpd sink, announcing PIPELINING (one write and one wait a message) or not (each
    command waits for its answer): every test here runs against both."""
    with SmtpSink(pipelining=request.param == "pipelining") as sink:
        yield sink


@pytest.fixture
def provider(smtp_sink: SmtpSink):
    smtp = SmtpProvider(parse_smtp_url(smtp_sink.url, default_pool=2))
    yield smtp
    smtp.close()


def test_each_recipient_receives_one_message_addressed_to_them_alone(provider, smtp_sink):
    result = provider.send_batch(make_batch(3))
    assert result.accepted == [1001, 1002, 1003]
    assert [m.rcpt_tos for m in smtp_sink.messages] == [
        ("reader1@example.com",),
        ("reader2@example.com",),
        ("reader3@example.com",),
    ]
    assert {m.mail_from for m in smtp_sink.messages} == {"news@ainippo.example"}


def test_received_message_is_utf8_multipart_with_the_japanese_subject_intact(provider, smtp_sink):
    provider.send_batch(make_batch(1))
    message = email.message_from_bytes(smtp_sink.messages[0].data, policy=policy.default)
    assert message["Subject"] == JA_SUBJECT
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert "読者1さん、おはようございます。" in text.get_content()
    assert 'href="https://news.example.com/u/token-1"' in html.get_content()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Newsletter-Delivery"] == "1001"


def test_message_ids_are_unique(provider, smtp_sink):
    provider.send_batch(make_batch(20))
    ids = [
        email.message_from_bytes(m.data, policy=policy.default)["Message-ID"]
        for m in smtp_sink.messages
    ]
    assert len(set(ids)) == 20


def test_connections_are_reused_across_batches(provider, smtp_sink):
    for batch_id in range(4):
        provider.send_batch(make_batch(5, batch_id=batch_id))
    assert smtp_sink.stats()["messages"] == 20
    assert smtp_sink.stats()["connections"] == 1


def test_a_connection_is_renewed_after_its_message_allowance(smtp_sink):
    recycling = SmtpProvider(parse_smtp_url(smtp_sink.url + "&recycle=4"))
    try:
        result = recycling.send_batch(make_batch(10))
    finally:
        recycling.close()
    assert len(result.accepted) == 10
    assert smtp_sink.stats()["connections"] == 3


def test_a_4xx_recipient_reply_defers_only_that_recipient(provider, smtp_sink):
    smtp_sink.configure(refuse={"reader2@example.com": "450 4.2.1 mailbox busy"})
    result = provider.send_batch(make_batch(3))
    assert result.accepted == [1001, 1003]
    assert result.deferred == {1002: "450 4.2.1 mailbox busy"}


def test_a_5xx_recipient_reply_fails_that_recipient_permanently(provider, smtp_sink):
    smtp_sink.configure(refuse={"reader1@example.com": "550 5.1.1 reader1@example.com unknown"})
    result = provider.send_batch(make_batch(2))
    assert result.accepted == [1002]
    assert result.failed == {1001: "550 5.1.1 r***@example.com unknown"}


def test_552_is_deferred_not_failed(provider, smtp_sink):
    smtp_sink.configure(data_replies={1: "552 5.2.2 mailbox full"})
    result = provider.send_batch(make_batch(2))
    assert result.deferred == {1001: "552 5.2.2 mailbox full"}
    assert result.accepted == [1002]


def test_a_5xx_data_reply_fails_that_message(provider, smtp_sink):
    smtp_sink.configure(data_replies={2: "554 5.7.1 rejected as spam"})
    result = provider.send_batch(make_batch(3))
    assert result.failed == {1002: "554 5.7.1 rejected as spam"}
    assert result.accepted == [1001, 1003]


def test_a_connection_dropped_after_end_of_data_leaves_that_message_in_doubt(provider, smtp_sink):
    smtp_sink.configure(drop_at={3})
    result = provider.send_batch(make_batch(6))
    assert list(result.in_doubt) == [1003]  # sent whole; the server may have queued it
    assert not result.deferred
    assert result.accepted == [1001, 1002, 1004, 1005, 1006]
    assert smtp_sink.stats()["connections"] == 2


def test_a_connection_dropped_before_end_of_data_defers_the_message_and_the_rest_continue(
    provider, smtp_sink
):
    smtp_sink.configure(drop_at_rcpt={make_recipient(3).email})
    result = provider.send_batch(make_batch(6))
    assert list(result.deferred) == [1003]
    assert not result.in_doubt
    assert result.accepted == [1001, 1002, 1004, 1005, 1006]
    assert smtp_sink.stats()["connections"] == 2


def test_a_server_gone_between_batches_is_a_transient_error_for_the_whole_batch():
    sink = SmtpSink().start()
    smtp = SmtpProvider(parse_smtp_url(sink.url + "&timeout=2"))
    try:
        first = smtp.send_batch(make_batch(1))
        sink.stop()
        with pytest.raises(TransientProviderError, match="cannot connect"):
            smtp.send_batch(make_batch(4, batch_id=8))
    finally:
        smtp.close()
    assert first.accepted == [1001]


def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(provider, smtp_sink):
    provider.send_batch(make_batch(1))  # leaves one idle connection in the pool
    smtp_sink.reset()
    held = provider.pool.take_idle()
    assert held is not None
    held.smtp.sock.close()  # what a server's idle timeout looks like from here
    provider.pool.give_back(held)
    result = provider.send_batch(make_batch(2, batch_id=9))
    assert result.accepted == [1001, 1002]


def test_no_server_at_all_is_a_transient_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = SmtpProvider(parse_smtp_url(f"smtp://127.0.0.1:{port}?starttls=never&timeout=2"))
    with pytest.raises(TransientProviderError, match="cannot connect"):
        smtp.send_batch(make_batch(1))


def test_threads_share_the_pool_without_exceeding_it(smtp_sink):
    smtp = SmtpProvider(parse_smtp_url(smtp_sink.url + "&pool=3"))
    results = []

    def send(batch_id: int) -> None:
        results.append(smtp.send_batch(make_batch(10, batch_id=batch_id)))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    smtp.close()
    assert sum(len(r.accepted) for r in results) == 60
    assert smtp_sink.stats()["connections"] <= 3


def test_an_address_that_would_inject_headers_is_failed_before_sending(provider, smtp_sink):
    bad = make_recipient(2, email="x@example.com\r\nBcc: all@example.com")
    result = provider.send_batch(Batch(7, make_message(), [make_recipient(1), bad]))
    assert result.accepted == [1001]
    assert 1002 in result.failed
    assert smtp_sink.stats()["messages"] == 1


def test_smtp_url_options_are_read_and_the_password_never_prints():
    target = parse_smtp_url("smtps://user%40x:p%40ss@mail.example.com?pool=8&recycle=50")
    assert (target.host, target.port, target.implicit_tls) == ("mail.example.com", 465, True)
    assert (target.username, target.pool_size, target.recycle_after) == ("user@x", 8, 50)
    assert target.password is not None and target.password.reveal() == "p@ss"
    assert "p@ss" not in repr(target)


@pytest.mark.parametrize(
    "url",
    ["http://mail.example.com", "smtp://host?pool=0", "smtp://host?starttls=maybe", "smtp://h?x=1"],
)
def test_invalid_smtp_urls_name_the_setting(url):
    with pytest.raises(ConfigError, match="NEWSLETTER_SMTP_URL"):
        parse_smtp_url(url)


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(250, "accepted"), (421, "deferred"), (451, "deferred"), (552, "deferred"), (550, "failed")],
)
def test_reply_codes_follow_mailmans_rules(code, outcome):
    assert classify_smtp_code(code) == outcome


def test_a_server_with_8bitmime_gets_raw_utf8_bodies(provider, smtp_sink):
    provider.send_batch(make_batch(1))
    data = smtp_sink.messages[0].data
    assert b"Content-Transfer-Encoding: 8bit" in data
    assert "読者1さん".encode() in data


def test_lines_beginning_with_a_dot_arrive_intact(provider, smtp_sink):
    message = make_message(text=".hidden line\n..two dots\n.\nend -unsubscribe_url-\n")
    provider.send_batch(Batch(7, message, [make_recipient(1)]))
    received = email.message_from_bytes(smtp_sink.messages[0].data, policy=policy.default)
    text = next(received.iter_parts()).get_content().replace("\r\n", "\n")
    assert text.startswith(".hidden line\n..two dots\n.\nend https://")


def test_the_fast_data_sink_receives_the_same_bytes():
    with SmtpSink(fast_data=True) as sink:
        smtp = SmtpProvider(parse_smtp_url(sink.url))
        message = make_message(text=".dot\n" + TEXT_WITH_SLOT)
        result = smtp.send_batch(Batch(7, message, [make_recipient(1), make_recipient(2)]))
        smtp.close()
        received = [
            next(email.message_from_bytes(m.data, policy=policy.default).iter_parts())
            for m in sink.messages
        ]
    assert result.accepted == [1001, 1002]
    assert received[1].get_content().replace("\r\n", "\n").startswith(".dot\n")


TEXT_WITH_SLOT = "unsubscribe: -unsubscribe_url-\n"


def test_credentials_in_the_url_log_in():
    with SmtpSink(login=("news", "s3cret")) as sink:
        smtp = SmtpProvider(
            parse_smtp_url(f"smtp://news:s3cret@{sink.host}:{sink.port}?starttls=never")
        )
        try:
            result = smtp.send_batch(make_batch(2))
        finally:
            smtp.close()
        assert result.accepted == [1001, 1002]


def test_a_refused_login_is_permanent_and_hides_the_password():
    with SmtpSink(login=("news", "s3cret")) as sink:
        url = f"smtp://news:wrong-pass@{sink.host}:{sink.port}?starttls=never&timeout=5"
        smtp = SmtpProvider(parse_smtp_url(url))
        with pytest.raises(PermanentProviderError) as caught:
            smtp.send_batch(make_batch(1))
        smtp.close()
    assert "wrong-pass" not in str(caught.value)
    assert not getattr(caught.value, "splittable", False)


def test_starttls_required_but_not_offered_is_permanent(smtp_sink):
    smtp = SmtpProvider(
        parse_smtp_url(f"smtp://{smtp_sink.host}:{smtp_sink.port}?starttls=require")
    )
    with pytest.raises(PermanentProviderError, match="STARTTLS"):
        smtp.send_batch(make_batch(1))
    assert smtp_sink.stats()["messages"] == 0


def test_starttls_with_a_private_ca_delivers(tls_certificate):
    cert, key = tls_certificate
    with SmtpSink(tls=server_tls_context(cert, key)) as sink:  # refuses MAIL before STARTTLS
        smtp = SmtpProvider(parse_smtp_url(f"{sink.url}&cafile={cert}"))
        try:
            result = smtp.send_batch(make_batch(2))
        finally:
            smtp.close()
        assert result.accepted == [1001, 1002]
        assert sink.stats()["messages"] == 2


def test_implicit_tls_smtps_delivers(tls_certificate):
    cert, key = tls_certificate
    with SmtpSink(tls=server_tls_context(cert, key), implicit_tls=True) as sink:
        smtp = SmtpProvider(parse_smtp_url(f"{sink.url}&cafile={cert}"))
        try:
            result = smtp.send_batch(make_batch(1))
        finally:
            smtp.close()
        assert result.accepted == [1001]


def test_an_untrusted_certificate_is_permanent(tls_certificate):
    cert, key = tls_certificate
    with SmtpSink(tls=server_tls_context(cert, key)) as sink:
        smtp = SmtpProvider(parse_smtp_url(sink.url))  # system CAs only
        with pytest.raises(PermanentProviderError, match="certificate not trusted"):
            smtp.send_batch(make_batch(1))
        smtp.close()
        assert sink.stats()["messages"] == 0
