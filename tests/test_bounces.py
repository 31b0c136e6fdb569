"""Bounce mail read into hard bounces, soft bounces and complaints: DSN (RFC 3464), ARF
(RFC 5965), and older MTA formats through flufl.bounce."""

from __future__ import annotations

from subscribers.bounces import COMPLAINT, HARD_BOUNCE, SOFT_BOUNCE, parse_report


def dsn(action: str, status: str, recipient: str = "taro@example.jp") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.jp\r\n"
        "To: bounces+tok@in.ainippo.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.jp\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"To: {recipient}\r\nSubject: AI\r\n"
        "--B--\r\n"
    ).encode()


def arf(feedback: str = "abuse", rcpt: str | None = "taro@example.jp") -> bytes:
    original_rcpt = f"Original-Rcpt-To: {rcpt}\r\n" if rcpt else ""
    return (
        "From: fbl@isp.example\r\n"
        "To: bounces+tok@in.ainippo.example\r\n"
        "Subject: complaint\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n'
        "\r\n"
        "--F\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback}\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\n{original_rcpt}"
        "--F\r\nContent-Type: message/rfc822\r\n\r\n"
        "From: news@ainippo.example\r\nTo: hanako@example.jp\r\nSubject: AI\r\n\r\nbody\r\n"
        "--F--\r\n"
    ).encode()


def test_a_permanent_failure_is_a_hard_bounce():
    (report,) = parse_report(dsn("failed", "5.1.1"))
    assert report.kind == HARD_BOUNCE
    assert report.address == "taro@example.jp"
    assert report.detail.startswith("5.1.1")


def test_a_temporary_failure_is_a_soft_bounce():
    (report,) = parse_report(dsn("failed", "4.2.2"))
    assert (report.kind, report.address) == (SOFT_BOUNCE, "taro@example.jp")


def test_delays_and_deliveries_change_nothing():
    assert parse_report(dsn("delayed", "4.4.7")) == []
    assert parse_report(dsn("delivered", "2.0.0")) == []


EXIM_BOUNCE = (
    b"From: Mail Delivery System <Mailer-Daemon@mx.example.jp>\r\n"
    b"To: bounces+tok@in.ainippo.example\r\n"
    b"Subject: Mail delivery failed: returning message to sender\r\n"
    b"X-Failed-Recipients: jiro@example.jp\r\n"
    b"\r\n"
    b"This message was created automatically by mail delivery software.\r\n\r\n"
    b"A message that you sent could not be delivered to one or more of its\r\n"
    b"recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
    b"  jiro@example.jp\r\n"
    b"    SMTP error from remote mail server after RCPT TO:<jiro@example.jp>:\r\n"
    b"    550 5.1.1 User unknown\r\n"
)


def test_a_bounce_in_an_older_mta_format_is_read_by_flufl_bounce():
    (report,) = parse_report(EXIM_BOUNCE)
    assert (report.kind, report.address) == (HARD_BOUNCE, "jiro@example.jp")


def test_an_abuse_report_is_a_complaint():
    (report,) = parse_report(arf())
    assert (report.kind, report.address, report.detail) == (COMPLAINT, "taro@example.jp", "abuse")


def test_a_complaint_without_original_rcpt_to_names_the_original_recipient():
    (report,) = parse_report(arf(rcpt=None))
    assert report.address == "hanako@example.jp"


def test_not_spam_feedback_and_ordinary_mail_are_not_reports():
    assert parse_report(arf("not-spam")) == []
    assert parse_report(b"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n") == []
