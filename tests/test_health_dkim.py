"""`newsletter health` compares the DKIM signing key with the key published in DNS, asked of a
real DNS server on 127.0.0.1 over UDP."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.clock import FixedClock
from newsletter.health import Level, check_health
from newsletter.providers.dkim_dns import public_key_value, record_tags
from newsletter.testing.dns_server import TxtDnsServer
from tests.test_provider_dkim import DOMAIN, SELECTOR, dkim_settings, key_file, rsa_key  # noqa: F401

NAME = f"{SELECTOR}._domainkey.{DOMAIN}"
CLOCK = FixedClock(datetime(2026, 6, 13, tzinfo=UTC))


def _record(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def _dkim_check(tmp_path: Path, key_path: Path, server: TxtDnsServer):
    settings = dkim_settings(tmp_path, key_path)
    report = check_health(settings, CLOCK, dns_resolver=server.resolver())
    return next(c for c in report.checks if c.name == "dkim")


def test_the_published_signing_key_is_ok(tmp_path, key_file, rsa_key) -> None:  # noqa: F811
    with TxtDnsServer({NAME: [_record(rsa_key)]}) as server:
        check = _dkim_check(tmp_path, key_file, server)
    assert check.level is Level.OK
    assert NAME in check.detail


def test_another_published_key_fails_and_shows_the_record_to_publish(
    tmp_path,
    key_file,  # noqa: F811
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with TxtDnsServer({NAME: [_record(other)]}) as server:
        check = _dkim_check(tmp_path, key_file, server)
    assert check.level is Level.FAILING
    assert "another key" in check.detail
    assert record_tags(check.data["publish"])["p"] == public_key_value(key_file.read_bytes())


def test_no_record_fails(tmp_path, key_file) -> None:  # noqa: F811
    with TxtDnsServer({}) as server:
        check = _dkim_check(tmp_path, key_file, server)
    assert check.level is Level.FAILING
    assert "no TXT record" in check.detail


def test_a_revoked_key_fails(tmp_path, key_file) -> None:  # noqa: F811
    with TxtDnsServer({NAME: ["v=DKIM1; k=rsa; p="]}) as server:
        check = _dkim_check(tmp_path, key_file, server)
    assert check.level is Level.FAILING
    assert "revoked" in check.detail


@pytest.mark.slow
def test_dns_that_does_not_answer_is_reported_as_unknown_not_as_a_failure(
    tmp_path,
    key_file,  # noqa: F811
) -> None:
    with TxtDnsServer({}, silent=True) as server:
        check = _dkim_check(tmp_path, key_file, server)
    assert check.level is Level.DEGRADED
    assert "could not ask DNS" in check.detail


def test_without_dkim_settings_there_is_no_dkim_check(tmp_path) -> None:
    from tests.fixtures.providers import provider_settings

    report = check_health(provider_settings(tmp_path), CLOCK)
    assert all(c.name != "dkim" for c in report.checks)
