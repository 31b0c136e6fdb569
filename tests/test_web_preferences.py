"""The preferences page: language and lists, behind the signed link and a signed form token."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from starlette.testclient import TestClient

from newsletter.db.models import ClickEvent, OpenEvent, Subscriber, Subscription
from newsletter.runtime import Runtime
from subscribers.tokens import LinkSigner
from tests.fixtures.events import add_click, add_open, track
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


# --- engagement tracking: the subscriber's choice ---------------------------------------------


def _tracking_off(runtime: Runtime, web_seed: Seeded) -> bool:
    with runtime.sessions() as session:
        return bool(
            session.scalar(
                select(Subscriber.tracking_off).where(Subscriber.id == web_seed.subscriber_id)
            )
        )


def _events(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        clicks = session.scalar(select(func.count()).select_from(ClickEvent))
        opens = session.scalar(select(func.count()).select_from(OpenEvent))
    return int(clicks or 0) + int(opens or 0)


def _recorded(runtime: Runtime, web_seed: Seeded, clock) -> None:  # type: ignore[no-untyped-def]
    ids = (web_seed.issue_id, web_seed.subscriber_id, web_seed.delivery_id)
    with runtime.sessions.begin() as session:
        add_click(session, *ids, clock.now())
        add_open(session, *ids, clock.now())


def test_the_page_offers_the_tracking_choice_allowed_by_default_and_says_who_records(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    page = web_client.get(_path(web_runtime, web_seed))
    assert 'name="tracking" value="on" checked' in page.text
    assert "現在、クリックや開封を記録しているニュースレターはありません。" in page.text
    with web_runtime.sessions.begin() as session:
        track(session, web_seed.list_id, clicks=True)
    english = web_client.get(_path(web_runtime, web_seed) + "?hl=en")
    assert "Record which links I click in the emails" in english.text
    assert "Recorded at present by: AI日報" in english.text


def test_switching_tracking_off_sets_the_flag_and_keeps_what_was_recorded(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    _recorded(web_runtime, web_seed, clock)
    path = _path(web_runtime, web_seed)
    token = _csrf(web_client.get(path).text)
    form = {"csrf": token, "language": "ja", "lists": [web_seed.list_id], "tracking_shown": "1"}
    response = web_client.post(path, data=form)
    assert response.status_code == 200
    assert 'name="tracking" value="on" checked' not in response.text
    assert _tracking_off(web_runtime, web_seed) is True
    assert _events(web_runtime) == 2


def test_switching_tracking_off_and_asking_to_delete_removes_what_was_recorded(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    _recorded(web_runtime, web_seed, clock)
    path = _path(web_runtime, web_seed)
    token = _csrf(web_client.get(path).text)
    response = web_client.post(
        path,
        data={
            "csrf": token,
            "language": "ja",
            "lists": [web_seed.list_id],
            "tracking_shown": "1",
            "forget_events": "yes",
        },
    )
    assert "クリックと開封の記録を削除しました。" in response.text
    assert _tracking_off(web_runtime, web_seed) is True
    assert _events(web_runtime) == 0


def test_switching_tracking_back_on_clears_the_flag(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    with web_runtime.sessions.begin() as session:
        session.get_one(Subscriber, web_seed.subscriber_id).tracking_off = True
    path = _path(web_runtime, web_seed)
    token = _csrf(web_client.get(path).text)
    form = {"csrf": token, "language": "ja", "lists": [web_seed.list_id]}
    web_client.post(path, data={**form, "tracking_shown": "1", "tracking": "on"})
    assert _tracking_off(web_runtime, web_seed) is False


def test_a_form_without_the_tracking_choice_leaves_it_as_it_was(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    path = _path(web_runtime, web_seed)
    token = _csrf(web_client.get(path).text)
    web_client.post(path, data={"csrf": token, "language": "en", "lists": [web_seed.list_id]})
    assert _tracking_off(web_runtime, web_seed) is False
