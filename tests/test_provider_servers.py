"""The local stand-ins themselves: the SendGrid-compatible server enforces SendGrid's limits and
counts across requests; both servers run as processes for benchmarks."""

from __future__ import annotations

import smtplib
import socket

import httpx
import pytest

from newsletter.testing.sendgrid_server import SendGridServer, ServerProcess
from newsletter.testing.smtp_sink import SinkProcess, SmtpSink
from tests.fixtures.providers import SENDGRID_TEST_KEY

AUTH = {"Authorization": f"Bearer {SENDGRID_TEST_KEY}"}
CLIENT = httpx.Client()  # keep-alive: these tests are about the server, not connection setup


def mail(personalizations: list[dict], **extra) -> dict:
    return {
        "personalizations": personalizations,
        "from": {"email": "news@ainippo.example"},
        "subject": "件名",
        "content": [
            {"type": "text/plain", "value": "本文"},
            {"type": "text/html", "value": "<p>本文</p>"},
        ],
        **extra,
    }


def person(n: int, issue: str = "1", **extra) -> dict:
    return {"to": [{"email": f"r{n}@example.com"}], "custom_args": {"issue_id": issue}, **extra}


def post(server: SendGridServer, body: dict, headers: dict | None = None) -> httpx.Response:
    return CLIENT.post(f"{server.url}/v3/mail/send", json=body, headers=headers or AUTH)


def fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


def test_a_valid_request_is_accepted_with_a_message_id(sendgrid_server):
    response = post(sendgrid_server, mail([person(1)]))
    assert response.status_code == 202
    assert response.headers["X-Message-Id"]


def test_more_than_1000_personalizations_are_refused(sendgrid_server):
    response = post(sendgrid_server, mail([person(n) for n in range(1001)]))
    assert response.status_code == 400
    assert fields(response) == ["personalizations"]


def test_an_address_twice_in_one_request_is_refused(sendgrid_server):
    response = post(sendgrid_server, mail([person(1), person(2), person(1)]))
    assert response.status_code == 400
    assert fields(response) == ["personalizations.2.to"]


def test_custom_args_of_10000_bytes_are_refused(sendgrid_server):
    big = person(1)
    big["custom_args"] = {"issue_id": "1", "pad": "x" * 10_000}
    response = post(sendgrid_server, mail([big]))
    assert fields(response) == ["personalizations.0.custom_args"]


def test_required_fields_are_checked(sendgrid_server):
    body = mail([person(1)])
    del body["from"]
    body["content"] = [
        {"type": "text/html", "value": "<p>x</p>"},
        {"type": "text/plain", "value": "x"},
    ]
    assert set(fields(post(sendgrid_server, body))) == {"from.email", "content.0.type"}


def test_a_wrong_key_is_401(sendgrid_server):
    response = post(sendgrid_server, mail([person(1)]), headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_an_oversized_body_gets_413_with_an_html_page(sendgrid_server):
    sendgrid_server.configure(max_request_bytes=100)
    response = post(sendgrid_server, mail([person(n) for n in range(10)]))
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "text/html"


def test_unique_recipients_and_duplicates_are_counted_across_requests(sendgrid_server):
    post(sendgrid_server, mail([person(1), person(2)]))
    post(sendgrid_server, mail([person(2), person(3)]))
    post(sendgrid_server, mail([person(2, issue="2")]))
    stats = httpx.get(f"{sendgrid_server.url}/_stats").json()
    assert stats["unique_recipients"] == 4
    assert stats["duplicates"] == 1
    assert stats["accepted_recipients"] == 5


def test_reset_clears_counters_and_faults(sendgrid_server):
    sendgrid_server.configure(script=[503])
    httpx.post(f"{sendgrid_server.url}/_reset")
    assert post(sendgrid_server, mail([person(1)])).status_code == 202
    assert sendgrid_server.stats()["requests"] == 1


def test_injected_failures_follow_the_seed(sendgrid_server):
    def run() -> list[int]:
        sendgrid_server.configure(fail_rate=0.5, seed=3)
        return [post(sendgrid_server, mail([person(n)])).status_code for n in range(12)]

    first = run()
    assert first == run()
    assert {202} < set(first) <= {202, 429, 500, 503}


def test_rate_limit_answers_carry_retry_after(sendgrid_server):
    sendgrid_server.configure(script=[429], retry_after=12)
    response = post(sendgrid_server, mail([person(1)]))
    assert response.headers["Retry-After"] == "12"
    assert int(response.headers["X-RateLimit-Reset"]) > 0


def test_the_sendgrid_server_runs_as_a_process_and_prints_its_url():
    with ServerProcess.start(api_key=SENDGRID_TEST_KEY) as server:
        assert server.url.startswith("http://127.0.0.1:")
        response = CLIENT.post(f"{server.url}/v3/mail/send", json=mail([person(1)]), headers=AUTH)
        assert response.status_code == 202
        assert server.stats()["unique_recipients"] == 1


def test_the_smtp_sink_runs_as_a_process_and_reports_its_counts_on_exit():
    sink = SinkProcess.start("--count-only", "--fast-data")
    try:
        port = int(sink.url.split(":")[2].split("?")[0])
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nhello\r\n")
    finally:
        stats = sink.stop()
    assert stats["messages"] == 1
    assert stats["connections"] == 1


def test_the_sink_refuses_recipients_and_data_as_configured():
    with SmtpSink() as sink:
        sink.configure(
            refuse={"no@example.com": "550 5.1.1 unknown"}, data_replies={1: "451 later"}
        )
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("a@example.com", ["no@example.com"], b"x\r\n")
            with pytest.raises(smtplib.SMTPDataError):
                client.sendmail("a@example.com", ["yes@example.com"], b"x\r\n")
            client.sendmail("a@example.com", ["yes@example.com"], b"x\r\n")
        assert sink.stats() == {
            "connections": 1,
            "messages": 1,
            "recipients": 1,
            "refused_recipients": 1,
            "data_commands": 2,
        }


def _counting_dialogue(lines: bytes) -> tuple[bytes, dict]:
    """Send `lines` at once (pipelined) to a counting sink process; its answers and counts."""
    sink = SinkProcess.start("--count-only")
    try:
        port = int(sink.url.split(":")[2].split("?")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            answers = conn.recv(1000)
            conn.sendall(lines)
            conn.shutdown(socket.SHUT_WR)
            while chunk := conn.recv(65536):
                answers += chunk
    finally:
        stats = sink.stop()
    return answers, stats


def test_the_counting_sink_answers_a_pipelined_dialogue_in_order_and_counts_it():
    message = b"Subject: x\r\n\r\n..dot-stuffed\r\n" + b"y" * 998 + b"\r\n.\r\n"
    answers, stats = _counting_dialogue(
        b"EHLO client.example\r\n"
        + b"MAIL FROM:<a@example.com> BODY=8BITMIME\r\nRCPT TO:<b@example.com>\r\n"
        + b"RCPT TO:<c@example.com>\r\nDATA\r\n" + message
        + b"MAIL FROM:<a@example.com>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n.\r\nQUIT\r\n"
    )  # fmt: skip
    codes = [line[:3] for line in answers.split(b"\r\n") if line]
    assert b"250-PIPELINING" in answers
    assert b" ".join(codes[-10:]) == b"250 250 250 354 250 250 250 354 250 221"
    assert (stats["messages"], stats["recipients"], stats["connections"]) == (2, 3, 1)


@pytest.mark.parametrize(
    ("dialogue", "refused"),
    [
        (b"MAIL FROM:<a@example.com>\r\n", b"503"),  # no EHLO
        (b"EHLO x\r\nRCPT TO:<b@example.com>\r\n", b"503"),  # no MAIL
        (b"EHLO x\r\nMAIL FROM:<a@example.com>\r\nDATA\r\n", b"503"),  # no RCPT
        (b"EHLO x\r\nMAIL FROM:a@example.com\r\n", b"501"),  # no angle brackets
        (b"EHLO x\r\nMAIL FROM:<a@example.com> FOO=1\r\n", b"555"),  # unknown parameter
        (b"EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<nobody>\r\n", b"501"),
        (b"EHLO x\r\nVRFY a\r\n", b"500"),
        (b"EHLO x\r\nMAIL FROM:<" + b"a" * 600 + b"@example.com>\r\n", b"500"),  # > 512
    ],
)
def test_the_counting_sink_refuses_malformed_commands(dialogue, refused):
    answers, stats = _counting_dialogue(dialogue)
    assert answers.split(b"\r\n")[-2].startswith(refused)
    assert stats["messages"] == 0


def test_the_counting_sink_refuses_a_message_with_a_line_over_998_octets():
    answers, stats = _counting_dialogue(
        b"EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
        + b"ok\r\n" * 400 + b"z" * 999 + b"\r\n.\r\n"
    )  # fmt: skip
    assert answers.split(b"\r\n")[-2].startswith(b"500")
    assert (stats["messages"], stats["refused_messages"]) == (0, 1)


def test_the_provider_sends_through_the_counting_sink():
    from newsletter.providers.smtp import SmtpProvider, parse_smtp_url
    from tests.fixtures.providers import make_batch

    sink = SinkProcess.start("--count-only")
    try:
        smtp = SmtpProvider(parse_smtp_url(sink.url + "&recycle=7"))
        try:
            result = smtp.send_batch(make_batch(20))
        finally:
            smtp.close()
    finally:
        stats = sink.stop()
    assert len(result.accepted) == 20
    assert (stats["messages"], stats["recipients"], stats["connections"]) == (20, 20, 3)
    assert stats["refused_commands"] == 0
