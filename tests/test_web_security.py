"""Security headers, language choice, CSRF tokens and the sign-up rate limiter."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from newsletter.config import Secret, load_settings
from newsletter.runtime import Runtime
from newsletter.web import create_app
from newsletter.web.i18n import MESSAGES, pick_language
from newsletter.web.security import CsrfSigner, SignupThrottle


@pytest.fixture
def web_database_url(sqlite_url: str, _web_sqlite_template: Path) -> str:
    """Headers and languages do not depend on the database: SQLite only."""
    shutil.copyfile(_web_sqlite_template, sqlite_url.removeprefix("sqlite:///"))
    return sqlite_url


def test_every_page_carries_the_security_headers(web_client: TestClient) -> None:
    response = web_client.get("/subscribe")
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp  # no script may run at all


def test_errors_carry_them_too(web_client: TestClient) -> None:
    response = web_client.get("/u/forged")
    assert response.status_code == 400
    assert response.headers["x-frame-options"] == "DENY"


def test_pages_work_on_a_phone_without_javascript(web_client: TestClient) -> None:
    html = web_client.get("/subscribe").text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "<script" not in html
    css = web_client.get("/static/web.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    ("accept", "preference", "override", "expected"),
    [
        ("en-US,en;q=0.9,ja;q=0.8", None, None, "en"),
        ("ja-JP,ja;q=0.9,en;q=0.8", None, None, "ja"),
        ("fr-FR,en;q=0.3,ja;q=0.5", None, None, "ja"),
        ("de-DE", None, None, "ja"),
        (None, None, None, "ja"),
        ("en", "ja", None, "ja"),  # the subscriber's own choice wins over the browser
        ("ja", "both", None, "ja"),  # "both" is no page language: the browser decides
        ("ja", "ja", "en", "en"),  # an explicit switch wins over everything
        ("en;q=0", None, None, "ja"),
    ],
)
def test_page_language(
    accept: str | None, preference: str | None, override: str | None, expected: str
) -> None:
    assert pick_language(accept, preference, override) == expected


def test_every_message_exists_in_both_languages() -> None:
    for key, texts in MESSAGES.items():
        assert set(texts) == {"ja", "en"}, key
        assert all(texts.values()), key


def _signer(*keys: str) -> CsrfSigner:
    settings = load_settings({}, secret_keys=tuple(Secret(k) for k in keys))
    return CsrfSigner(settings)


def test_csrf_tokens_verify_only_for_their_own_nonce() -> None:
    signer = _signer("k" * 32)
    token = signer.sign("nonce-a")
    assert signer.check(token, "nonce-a")
    assert not signer.check(token, "nonce-b")
    assert not signer.check(token, None)
    assert not _signer("z" * 32).check(token, "nonce-a")


def test_the_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = SignupThrottle(capacity=2, per_s=1.0, now=lambda: now[0])
    assert [limiter.allow("ip") for _ in range(3)] == [True, True, False]
    assert limiter.allow("other-ip")
    now[0] += 1.0
    assert limiter.allow("ip") and not limiter.allow("ip")


def test_the_rate_limiter_forgets_the_oldest_keys_beyond_its_bound() -> None:
    limiter = SignupThrottle(capacity=1, per_s=0.0, max_keys=2, now=lambda: 0.0)
    assert limiter.allow("a") and not limiter.allow("a")
    limiter.allow("b")
    limiter.allow("c")  # "a" is forgotten
    assert limiter.allow("a")


def test_an_unexpected_error_is_a_500_page_with_the_headers_and_no_detail(
    web_runtime: Runtime,
) -> None:
    def broken_sessions() -> Session:
        raise RuntimeError("database down")

    broken = dataclasses.replace(web_runtime, sessions=broken_sessions)
    with TestClient(create_app(broken), raise_server_exceptions=False) as client:
        response = client.get("/issues/", headers={"Accept-Language": "en"})
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "RuntimeError" not in response.text and "database down" not in response.text
    assert response.headers["x-frame-options"] == "DENY"
