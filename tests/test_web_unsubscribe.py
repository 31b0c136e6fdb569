"""Unsubscribe links: the confirmation page, RFC 8058 one-click POST, and tampered tokens."""

from __future__ import annotations

from sqlalchemy import select
from starlette.testclient import TestClient

from newsletter.db.models import ConsentRecord, Subscription
from newsletter.runtime import Runtime
from subscribers.audience import eligible_recipients
from subscribers.tokens import LinkSigner
from tests.fixtures.web import Seeded


def _path(runtime: Runtime, web_seed: Seeded) -> str:
    return f"/u/{LinkSigner(runtime.settings).token(web_seed.subscriber_id, web_seed.list_id)}"


def _status(runtime: Runtime, web_seed: Seeded) -> str:
    with runtime.sessions() as session:
        return session.scalar(
            select(Subscription.status).where(Subscription.subscriber_id == web_seed.subscriber_id)
        )


def test_the_page_names_the_list_and_shows_only_a_masked_address(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    page = web_client.get(_path(web_runtime, web_seed), headers={"Accept-Language": "ja"})
    assert page.status_code == 200
    assert "「AI日報」の配信を停止しますか？" in page.text
    assert "T***@example.jp" in page.text
    assert web_seed.email not in page.text
    assert _status(web_runtime, web_seed) == "active"  # a GET never unsubscribes


def test_the_page_switches_language_with_hl(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    page = web_client.get(_path(web_runtime, web_seed) + "?hl=en")
    assert "Stop receiving “AI日報”?" in page.text
    assert '<html lang="en">' in page.text


def test_one_click_post_unsubscribes_at_once_without_cookie_or_redirect(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    web_client.cookies.clear()
    response = web_client.post(
        _path(web_runtime, web_seed),
        data={"List-Unsubscribe": "One-Click"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert _status(web_runtime, web_seed) == "unsubscribed"
    with web_runtime.sessions() as session:
        assert session.execute(eligible_recipients(web_seed.list_id)).all() == []
        record = session.scalars(select(ConsentRecord)).one()
    assert (record.action, record.source) == ("unsubscribe", "web")


def test_one_click_post_accepts_multipart_bodies(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    response = web_client.post(
        _path(web_runtime, web_seed), files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert response.status_code == 200
    assert _status(web_runtime, web_seed) == "unsubscribed"


def test_one_click_post_accepts_a_body_without_a_form_content_type(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    response = web_client.post(
        _path(web_runtime, web_seed),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 200
    assert _status(web_runtime, web_seed) == "unsubscribed"


def test_one_click_post_is_idempotent(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    path = _path(web_runtime, web_seed)
    for _ in range(3):
        assert web_client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with web_runtime.sessions() as session:
        assert len(session.scalars(select(ConsentRecord)).all()) == 1


def test_a_post_without_the_one_click_body_is_refused(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    response = web_client.post(_path(web_runtime, web_seed), data={"something": "else"})
    assert response.status_code == 400
    assert _status(web_runtime, web_seed) == "active"


def test_a_tampered_token_gets_a_400_page_that_reveals_nothing(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    genuine = _path(web_runtime, web_seed)
    tampered = genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB")
    for method in ("get", "post"):
        response = getattr(web_client, method)(tampered, headers={"Accept-Language": "en"})
        assert response.status_code == 400
        assert "This link is not valid" in response.text
        assert "example.jp" not in response.text and "AI日報」" not in response.text
    assert _status(web_runtime, web_seed) == "active"


def test_a_token_for_an_unknown_list_gets_the_same_400_page(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    token = LinkSigner(web_runtime.settings).token(web_seed.subscriber_id, 999)
    response = web_client.get(f"/u/{token}", headers={"Accept-Language": "en"})
    assert response.status_code == 400
    assert "This link is not valid" in response.text
