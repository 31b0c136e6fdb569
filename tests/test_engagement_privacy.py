"""The subscriber's privacy: switching tracking off from the command line, the API and the
preferences page in a browser, and the pages that say what is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from starlette.testclient import TestClient

from newsletter.accounts import tokens
from newsletter.accounts.actors import cli_actor
from newsletter.cli.context import AppContext
from newsletter.cli.main import cli
from newsletter.clock import FixedClock
from newsletter.config import Secret, Settings, load_settings
from newsletter.db.models import ClickEvent, OpenEvent, Subscriber
from newsletter.db.session import transaction
from newsletter.runtime import Runtime
from newsletter.web import create_app
from subscribers.tokens import LinkSigner
from tests.fixtures.events import add_click, add_open, track
from tests.fixtures.web import (
    Seeded,
    add_delivery,
    add_issue,
    add_list,
    add_subscriber,
    free_port,
    live_server,
)


def _recorded(runtime: Runtime, seed: Seeded, clock: FixedClock) -> None:
    ids = (seed.issue_id, seed.subscriber_id, seed.delivery_id)
    with transaction(runtime.sessions) as session:
        add_click(session, *ids, clock.now())
        add_open(session, *ids, clock.now())


def _state(runtime: Runtime, subscriber_id: int) -> tuple[bool, int]:
    """(tracking_off, recorded events) of one subscriber."""
    with runtime.sessions() as session:
        off = session.scalar(select(Subscriber.tracking_off).where(Subscriber.id == subscriber_id))
        clicks = session.scalar(select(func.count()).select_from(ClickEvent))
        opens = session.scalar(select(func.count()).select_from(OpenEvent))
    return bool(off), int(clicks or 0) + int(opens or 0)


# --- the command line (SQLite: the command adds no SQL of its own) -----------------------------


@pytest.fixture
def cli_runtime(tmp_path: Path, sqlite_url: str, clock: FixedClock) -> Iterator[Runtime]:
    settings = load_settings(
        {},
        database_url=sqlite_url,
        var_dir=tmp_path / "var",
        outbox_dir=tmp_path / "outbox",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
    )
    runtime = Runtime.open(settings, migrate=True, clock=clock)
    yield runtime
    runtime.close()


def _seed(runtime: Runtime, clock: FixedClock, email: str = "Taro@example.jp") -> Seeded:
    with transaction(runtime.sessions) as session:
        list_id = add_list(session, clock)
        subscriber = add_subscriber(session, clock, email, list_id)
        issue_id = add_issue(session, clock, list_id, variants=False)
        delivery_id = add_delivery(session, clock, issue_id, subscriber.id)
        return Seeded(list_id, subscriber.id, subscriber.email, issue_id, delivery_id)


def _run(runtime: Runtime, *args: str) -> Result:
    app = AppContext()
    app._settings = runtime.settings
    app._runtime = runtime
    return CliRunner().invoke(cli, ["subscribers", *args], obj=app)


def test_the_update_command_switches_tracking_off_and_show_says_so(
    cli_runtime: Runtime, clock: FixedClock
) -> None:
    seed = _seed(cli_runtime, clock)
    _recorded(cli_runtime, seed, clock)
    result = _run(cli_runtime, "update", "taro@example.jp", "--tracking", "off")
    assert result.exit_code == 0, result.output
    assert "T***@example.jp: language=ja tracking=off" in result.output
    assert _state(cli_runtime, seed.subscriber_id) == (True, 2)  # nothing deleted unasked
    shown = json.loads(_run(cli_runtime, "show", "taro@example.jp", "--json").output)
    assert shown["tracking"] is False
    assert "tracking=off" in _run(cli_runtime, "show", "taro@example.jp").output


def test_the_update_command_deletes_recorded_events_when_asked(
    cli_runtime: Runtime, clock: FixedClock
) -> None:
    seed = _seed(cli_runtime, clock)
    _recorded(cli_runtime, seed, clock)
    result = _run(cli_runtime, "update", "taro@example.jp", "--tracking", "off", "--delete-events")
    assert result.exit_code == 0, result.output
    assert "recorded clicks and opens deleted" in result.output
    assert _state(cli_runtime, seed.subscriber_id) == (True, 0)


def test_the_update_command_with_nothing_to_change_is_a_usage_error(
    cli_runtime: Runtime, clock: FixedClock
) -> None:
    _seed(cli_runtime, clock)
    result = _run(cli_runtime, "update", "taro@example.jp")
    assert result.exit_code == 64
    assert "--tracking" in result.output


def test_the_update_command_refuses_a_tracking_value_other_than_on_or_off(
    cli_runtime: Runtime, clock: FixedClock
) -> None:
    _seed(cli_runtime, clock)
    result = _run(cli_runtime, "update", "taro@example.jp", "--tracking", "maybe")
    assert result.exit_code == 64
    assert "'maybe' is not one of 'on', 'off'" in result.output


# --- the HTTP API (SQLite and PostgreSQL) -----------------------------------------------------


@pytest.fixture
def admin_client(web_runtime: Runtime) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with transaction(web_runtime.sessions) as session:
        secret = tokens.create_token(
            session, web_runtime.clock, cli_actor(), name="admin-script", role="admin"
        ).secret
    with TestClient(create_app(web_runtime), base_url="https://news.example.com") as client:
        yield client, {"Authorization": f"Bearer {secret}"}


def test_the_api_switches_tracking_off_and_deletes_what_was_recorded(
    admin_client: tuple[TestClient, dict[str, str]],
    web_runtime: Runtime,
    web_seed: Seeded,
    clock: FixedClock,
) -> None:
    client, auth = admin_client
    _recorded(web_runtime, web_seed, clock)
    response = client.patch(
        "/api/v1/subscribers/taro.yamada@example.jp",
        json={"tracking": False, "delete_events": True},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["tracking"] is False
    assert _state(web_runtime, web_seed.subscriber_id) == (True, 0)


def test_the_api_refuses_a_tracking_value_that_is_not_a_boolean(
    admin_client: tuple[TestClient, dict[str, str]], web_runtime: Runtime, web_seed: Seeded
) -> None:
    client, auth = admin_client
    response = client.patch(
        "/api/v1/subscribers/taro.yamada@example.jp", json={"tracking": "perhaps"}, headers=auth
    )
    assert response.status_code == 422
    assert "tracking" in response.text
    assert _state(web_runtime, web_seed.subscriber_id) == (False, 0)


# --- what the pages say -------------------------------------------------------------------------


def test_the_sign_up_page_says_what_a_tracking_list_records(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    assert "記録します" not in web_client.get("/subscribe").text
    with transaction(web_runtime.sessions) as session:
        track(session, web_seed.list_id, clicks=True, opens=False)
    japanese = web_client.get("/subscribe").text
    assert "「AI日報」は、メール内のどのリンクがいつクリックされたかを記録します。" in japanese
    assert 'href="/privacy"' in japanese
    english = web_client.get("/subscribe?hl=en").text
    assert "“AI日報” records which links in its emails are clicked, and when." in english
    assert "opened" not in english


def test_the_sign_up_page_mentions_opens_only_when_the_list_uses_the_pixel(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    with transaction(web_runtime.sessions) as session:
        track(session, web_seed.list_id, clicks=True, opens=True)
    english = web_client.get("/subscribe?hl=en").text
    assert "are clicked and whether its emails are opened" in english


def test_the_privacy_page_says_what_is_recorded_for_how_long_and_by_which_list(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded, clock: FixedClock
) -> None:
    page = web_client.get("/privacy?hl=en")
    assert page.status_code == 200
    assert "At present no newsletter records clicks or opens." in page.text
    assert "kept for 90 days" in page.text
    assert "neither your IP address nor your browser" in page.text
    with transaction(web_runtime.sessions) as session:
        track(session, web_seed.list_id, clicks=True, opens=True)
        weekly = add_list(session, clock, "weekly", "AI週報")
        track(session, weekly, clicks=True, opens=False)
    japanese = web_client.get("/privacy").text
    assert "AI日報: クリックされたリンクとメールの開封" in japanese
    assert "AI週報: クリックされたリンク</li>" in japanese
    assert "90日間保存" in japanese


# --- the preferences page in a browser ---------------------------------------------------------


@pytest.mark.browser
def test_a_reader_switches_tracking_off_and_deletes_the_record_in_a_browser(
    chromium_browser: Any, tmp_path: Path, sqlite_url: str, clock: FixedClock
) -> None:
    port = free_port()
    settings: Settings = load_settings(
        {},
        database_url=sqlite_url,
        outbox_dir=tmp_path / "outbox",
        var_dir=tmp_path / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
        base_url=f"http://127.0.0.1:{port}",
    )
    runtime = Runtime.open(settings, migrate=True, clock=clock)
    seed = _seed(runtime, clock, "reader@example.jp")
    with transaction(runtime.sessions) as session:
        track(session, seed.list_id, clicks=True)
    _recorded(runtime, seed, clock)
    token = LinkSigner(settings).token(seed.subscriber_id, seed.list_id)
    try:
        with live_server(runtime, port) as base:
            context = chromium_browser.new_context(
                viewport={"width": 375, "height": 800}, locale="ja-JP"
            )
            page = context.new_page()
            response = page.goto(f"{base}/p/{token}")
            assert response is not None and response.status == 200
            choice = page.get_by_label("メール内のどのリンクをクリックしたか", exact=False)
            assert choice.is_checked()
            choice.uncheck()
            page.get_by_label("これまでに記録された内容も削除する").check()
            page.get_by_role("button", name="保存する").click()
            page.wait_for_selector("text=クリックと開封の記録を削除しました。")
            assert not page.get_by_label(
                "メール内のどのリンクをクリックしたか", exact=False
            ).is_checked()
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            context.close()
        assert _state(runtime, seed.subscriber_id) == (True, 0)
    finally:
        runtime.close()
