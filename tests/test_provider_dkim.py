"""DKIM: what the SMTP server receives (and the outbox writes) verifies with dkimpy against the
configured public key, served by a DNS stub; the settings refuse incomplete or unusable keys."""

from __future__ import annotations

import base64
import email
import re
from email import policy
from email.headerregistry import Address
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.config import Secret
from newsletter.errors import ConfigError
from newsletter.providers.dkim_sign import make_signer, present_signed_headers, relaxed_body
from newsletter.providers.factory import make_provider
from newsletter.providers.smtp import SmtpProvider, parse_smtp_url
from newsletter.testing.smtp_sink import SmtpSink
from tests.fixtures.providers import make_batch, make_message, provider_settings

SELECTOR = "news2026"
DOMAIN = "ainippo.example"  # the From domain of make_message()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key_file(tmp_path: Path, rsa_key) -> Path:
    path = tmp_path / "dkim.pem"
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,  # what `openssl genpkey` writes
            serialization.NoEncryption(),
        )
    )
    return path


def dns_stub(rsa_key, *, selector: str = SELECTOR, domain: str = DOMAIN):
    """dkimpy's `dnsfunc`: the TXT record `<selector>._domainkey.<domain>` publishes."""
    public = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    asked: list[bytes] = []

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        asked.append(name)
        return record if name == f"{selector}._domainkey.{domain}.".encode() else None

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def signature_tags(message: bytes) -> dict[str, str]:
    parsed = email.message_from_bytes(message, policy=policy.compat32)
    value = re.sub(r"\s+", "", str(parsed["DKIM-Signature"]))
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


def dkim_settings(tmp_path: Path, key_file: Path, **overrides):
    overrides.setdefault("provider", "outbox")
    overrides.setdefault("from_address", Address("AI日報", "news", DOMAIN))
    return provider_settings(
        tmp_path,
        dkim_private_key=key_file,
        dkim_selector=SELECTOR,
        **overrides,
    )


def test_mail_received_over_smtp_verifies_against_the_published_key(
    tmp_path, key_file, rsa_key, smtp_sink: SmtpSink
):
    settings = dkim_settings(tmp_path, key_file, provider="smtp", smtp_url=Secret(smtp_sink.url))
    provider = SmtpProvider.from_settings(settings)
    try:
        result = provider.send_batch(make_batch(3))
    finally:
        provider.close()
    assert result.accepted == [1001, 1002, 1003]
    lookup = dns_stub(rsa_key)
    for received in smtp_sink.messages:
        assert dkim.verify(received.data, dnsfunc=lookup)
        tags = signature_tags(received.data)
        assert tags["d"] == DOMAIN and tags["s"] == SELECTOR
        assert tags["c"] == "relaxed/relaxed" and tags["a"] == "rsa-sha256"
        assert tags["h"].split(":") == [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
        ]
        assert received.data.count(b"DKIM-Signature:") == 1
    assert lookup.asked == [f"{SELECTOR}._domainkey.{DOMAIN}.".encode()] * 3


def test_a_changed_unsubscribe_header_breaks_the_signature(
    tmp_path, key_file, rsa_key, smtp_sink: SmtpSink
):
    provider = SmtpProvider(
        parse_smtp_url(smtp_sink.url), make_signer(dkim_settings(tmp_path, key_file))
    )
    try:
        provider.send_batch(make_batch(1))
    finally:
        provider.close()
    data = smtp_sink.messages[0].data
    forged = data.replace(b"https://news.example.com/u/token-1", b"https://evil.example/u/x")
    assert forged != data
    assert not dkim.verify(forged, dnsfunc=dns_stub(rsa_key))


def test_eightbit_bodies_are_signed_as_sent(tmp_path, key_file, rsa_key):
    """aiosmtpd announces 8BITMIME, so the text part travels 8bit: still verifies."""
    with SmtpSink() as sink:
        provider = SmtpProvider(
            parse_smtp_url(sink.url), make_signer(dkim_settings(tmp_path, key_file))
        )
        try:
            provider.send_batch(make_batch(1))
        finally:
            provider.close()
        data = sink.messages[0].data
    assert b"Content-Transfer-Encoding: 8bit" in data
    assert dkim.verify(data, dnsfunc=dns_stub(rsa_key))


def test_transactional_mail_signs_only_the_headers_it_has(tmp_path, key_file, rsa_key):
    settings = dkim_settings(tmp_path, key_file, provider="outbox")
    provider = make_provider(settings)
    provider.send_batch(
        make_batch(1, message=make_message(bulk=False, list_id=None, issue_id=None))
    )
    (written,) = (settings.outbox_dir / "transactional").glob("*.eml")
    data = written.read_bytes()
    assert dkim.verify(data, dnsfunc=dns_stub(rsa_key))
    assert signature_tags(data)["h"].split(":") == ["from", "to", "subject", "date", "message-id"]


def test_the_outbox_writes_signed_files_with_the_configured_domain(tmp_path, key_file, rsa_key):
    settings = dkim_settings(
        tmp_path, key_file, provider="outbox", dkim_domain="mail.ainippo.example"
    )
    provider = make_provider(settings)
    provider.send_batch(make_batch(2))
    files = sorted((settings.outbox_dir / "issue-42").glob("*.eml"))
    assert len(files) == 2
    lookup = dns_stub(rsa_key, domain="mail.ainippo.example")
    for path in files:
        assert dkim.verify(path.read_bytes(), dnsfunc=lookup)


def test_without_dkim_settings_nothing_is_signed(tmp_path):
    assert make_signer(provider_settings(tmp_path)) is None


def test_present_signed_headers_ignores_the_body():
    message = b"From: a@b.example\r\nSubject: x\r\n\r\nTo: not a header\r\nDate: no\r\n"
    assert present_signed_headers(message) == [b"From", b"Subject"]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"NEWSLETTER_DKIM_SELECTOR": SELECTOR}, "NEWSLETTER_DKIM_SELECTOR"),
        ({"NEWSLETTER_DKIM_PRIVATE_KEY": "KEY"}, "NEWSLETTER_DKIM_SELECTOR"),
        ({"NEWSLETTER_DKIM_DOMAIN": DOMAIN}, "NEWSLETTER_DKIM_DOMAIN"),
        (
            {
                "NEWSLETTER_DKIM_PRIVATE_KEY": "/nonexistent/dkim.pem",
                "NEWSLETTER_DKIM_SELECTOR": "s",
            },
            "NEWSLETTER_DKIM_PRIVATE_KEY",
        ),
        (
            {"NEWSLETTER_DKIM_PRIVATE_KEY": "NOTPEM", "NEWSLETTER_DKIM_SELECTOR": "s"},
            "NEWSLETTER_DKIM_PRIVATE_KEY",
        ),
        (
            {"NEWSLETTER_DKIM_PRIVATE_KEY": "KEY", "NEWSLETTER_DKIM_SELECTOR": "a.b"},
            "NEWSLETTER_DKIM_SELECTOR",
        ),
        (
            {
                "NEWSLETTER_DKIM_PRIVATE_KEY": "KEY",
                "NEWSLETTER_DKIM_SELECTOR": "s",
                "NEWSLETTER_DKIM_DOMAIN": "esp.example",
            },
            "NEWSLETTER_DKIM_DOMAIN",
        ),
    ],
)
def test_incomplete_or_unusable_dkim_settings_name_the_variable(tmp_path, key_file, env, named):
    from newsletter.config import load_settings

    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    env = {
        name: {"KEY": str(key_file), "NOTPEM": str(not_pem)}.get(value, value)
        for name, value in env.items()
    }
    env |= {
        "NEWSLETTER_FROM": "AI日報 <news@ainippo.example>",
        "NEWSLETTER_SECRET_KEY": "x" * 40,
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(named + ":")


@pytest.mark.parametrize(
    "body",
    [
        b"line\r\n",
        b"a  b\t\tc \r\n\r\n\r\n",
        b" lead\r\ntrail \t \r\nx\r\n",
        b"no final line break  ",
        b"\r\n\r\n",
        b"",
        "日本語　全角スペース\r\n  indent\r\n".encode(),
        b"=\r\n \r\n\t\r\nend\r\n \r\n",
    ],
)
def test_relaxed_body_is_dkimpys_canonicalisation(body):
    from dkim.canonicalization import Relaxed

    assert relaxed_body(body) == Relaxed.canonicalize_body(body)
