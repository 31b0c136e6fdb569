"""The preferences page: language and lists, behind the signed link and a signed form token."""

from __future__ import annotations

import re

from sqlalchemy import select
from starlette.testclient import TestClient

from newsletter.db.models import Subscriber, Subscription
from newsletter.runtime import Runtime
from subscribers.tokens import LinkSigner
from tests.fixtures.web import Seeded, add_list


def _path(runtime: Runtime, web_seed: Seeded) -> str:
    return f"/p/{LinkSigner(runtime.settings).token(web_seed.subscriber_id, web_seed.list_id)}"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _state(runtime: Runtime, web_seed: Seeded) -> tuple[str, dict[int, str]]:
    with runtime.sessions() as session:
        language = session.scalar(
            select(Subscriber.language).where(Subscriber.id == web_seed.subscriber_id)
        )
        rows = session.execute(
            select(Subscription.list_id, Subscription.status).where(
                Subscription.subscriber_id == web_seed.subscriber_id
            )
        ).all()
    return language, {list_id: status for list_id, status in rows}


def test_the_page_shows_the_current_language_and_lists(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    with web_runtime.sessions.begin() as session:
        add_list(session, clock, "weekly", "AI週報")
    page = web_client.get(_path(web_runtime, web_seed))
    assert page.status_code == 200
    assert 'value="ja" checked' in page.text
    assert f'value="{web_seed.list_id}" checked' in page.text
    assert "AI週報" in page.text


def test_saving_changes_language_and_lists(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    with web_runtime.sessions.begin() as session:
        weekly = add_list(session, clock, "weekly", "AI週報")
    path = _path(web_runtime, web_seed)
    token = _csrf(web_client.get(path).text)
    response = web_client.post(path, data={"csrf": token, "language": "both", "lists": [weekly]})
    assert response.status_code == 200
    assert "設定を保存しました。" in response.text
    assert _state(web_runtime, web_seed) == (
        "both",
        {web_seed.list_id: "unsubscribed", weekly: "active"},
    )


def test_a_post_without_a_valid_form_token_changes_nothing(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    path = _path(web_runtime, web_seed)
    response = web_client.post(path, data={"csrf": "forged", "language": "en"})
    assert response.status_code == 400
    assert _state(web_runtime, web_seed) == ("ja", {web_seed.list_id: "active"})


def test_a_form_token_from_another_link_is_refused(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    other = f"/p/{LinkSigner(web_runtime.settings).token(web_seed.subscriber_id + 1, 1)}"
    stolen = web_client.app.state.web.csrf.sign(web_client.app.state.web.csrf.bind(other[3:]))
    response = web_client.post(
        _path(web_runtime, web_seed), data={"csrf": stolen, "language": "en"}
    )
    assert response.status_code == 400
    assert _state(web_runtime, web_seed)[0] == "ja"


def test_an_invalid_language_is_a_400(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    path = _path(web_runtime, web_seed)
    token = _csrf(web_client.get(path).text)
    assert web_client.post(path, data={"csrf": token, "language": "fr"}).status_code == 400


def test_a_tampered_preferences_token_is_a_400(web_client: TestClient, web_seed: Seeded) -> None:
    assert web_client.get("/p/1.1.forged").status_code == 400
