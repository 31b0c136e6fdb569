"""Sign-up with double opt-in: CSRF, consent wording, no enumeration, rate limit, confirmation."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from newsletter.db.models import ConsentRecord, Subscriber, Subscription
from newsletter.runtime import Runtime
from newsletter.web import create_app
from newsletter.web.i18n import CONSENT_WORDING_VERSION
from newsletter.web.security import SignupThrottle
from subscribers.tokens import ConfirmSigner


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _sign_up(client: TestClient, email: str, **extra: str):
    token = _csrf(client.get("/subscribe", headers={"Accept-Language": "en"}).text)
    data = {"csrf": token, "email": email, "language": "en", "consent": "yes", "list": "daily"}
    data.update(extra)
    return client.post("/subscribe", data=data, headers={"Accept-Language": "en"})


def _outbox_files(runtime: Runtime) -> list[str]:
    folder = runtime.settings.outbox_dir
    return sorted(p.name for p in folder.rglob("*.eml")) if folder.exists() else []


def test_the_form_is_bilingual_and_carries_the_consent_wording(web_client: TestClient) -> None:
    ja = web_client.get("/subscribe", headers={"Accept-Language": "ja,en;q=0.5"})
    en = web_client.get("/subscribe", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "ニュースレターの受信に同意します" in ja.text
    assert "I agree to receive this newsletter" in en.text
    assert "nl_csrf=" in ja.headers["set-cookie"]
    assert "samesite=strict" in ja.headers["set-cookie"].lower()


def test_signing_up_creates_a_pending_subscription_with_recorded_consent(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    response = _sign_up(web_client, "Hana.Sato@example.com", name="Hana")
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    with web_runtime.sessions() as session:
        subscription = session.scalars(select(Subscription)).one()
        record = session.scalars(select(ConsentRecord)).one()
    assert subscription.status == "pending"
    assert (record.action, record.wording_version) == ("subscribe", CONSENT_WORDING_VERSION)
    assert record.ip == "testclient"


def test_the_answer_is_the_same_for_a_known_address(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    first = _sign_up(web_client, "known@example.com")
    with web_runtime.sessions.begin() as session:
        session.execute(Subscription.__table__.update().values(status="active"))
    second = _sign_up(web_client, "known@example.com")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.text == second.text


def test_without_consent_nothing_is_stored(web_client: TestClient, web_runtime: Runtime) -> None:
    response = _sign_up(web_client, "a@example.com", consent="")
    assert response.status_code == 400
    assert "Please confirm that you agree" in response.text
    with web_runtime.sessions() as session:
        assert session.scalars(select(Subscriber)).all() == []


def test_a_post_without_the_csrf_cookie_is_refused(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    token = _csrf(web_client.get("/subscribe").text)
    web_client.cookies.clear()
    response = web_client.post(
        "/subscribe", data={"csrf": token, "email": "a@example.com", "consent": "yes"}
    )
    assert response.status_code == 403
    with web_runtime.sessions() as session:
        assert session.scalars(select(Subscriber)).all() == []


def test_an_invalid_address_is_a_400_form(web_client: TestClient) -> None:
    response = _sign_up(web_client, "not-an-address")
    assert response.status_code == 400
    assert "Please check the email address." in response.text


@pytest.fixture
def strict_client(web_runtime: Runtime) -> Iterator[TestClient]:
    limiter = SignupThrottle(capacity=2, per_s=0.0001)
    app = create_app(web_runtime, signup_limiter=limiter)
    with TestClient(app, base_url="https://news.example.com") as client:
        yield client


def test_too_many_sign_ups_from_one_ip_get_429(strict_client: TestClient) -> None:
    answers = [_sign_up(strict_client, f"user{i}@example.com").status_code for i in range(3)]
    assert answers == [200, 200, 429]


def test_the_confirmation_link_shows_a_button_then_confirms_on_post(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    _sign_up(web_client, "confirm.me@example.com")
    with web_runtime.sessions() as session:
        subscription = session.scalars(select(Subscription)).one()
    token = ConfirmSigner(web_runtime.settings).token(subscription.id)
    page = web_client.get(f"/confirm/{token}")
    assert page.status_code == 200 and 'method="post"' in page.text
    with web_runtime.sessions() as session:
        assert session.get(Subscription, subscription.id).status == "pending"
    done = web_client.post(f"/confirm/{token}", headers={"Accept-Language": "en"})
    assert done.status_code == 200 and "You are subscribed" in done.text
    with web_runtime.sessions() as session:
        assert session.get(Subscription, subscription.id).status == "active"


def test_a_forged_confirmation_link_is_a_400(web_client: TestClient) -> None:
    assert web_client.get("/confirm/forged.token").status_code == 400
    assert web_client.post("/confirm/forged.token").status_code == 400
