"""A subscriber unsubscribes from a real sent email in headless Chromium.

The issue is sent through the sending core to the outbox provider; the unsubscribe link is
read from the `.eml` it wrote (List-Unsubscribe header and the HTML footer must agree), opened
in Chromium against the app under uvicorn on 127.0.0.1, and confirmed with the button.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.clock import FixedClock
from newsletter.config import Secret, load_settings
from newsletter.db.models import Subscription
from newsletter.db.session import transaction
from newsletter.delivery.sending import send_issue
from newsletter.providers.factory import make_provider
from newsletter.runtime import Runtime
from subscribers.audience import eligible_recipients
from tests.fixtures.web import (
    PREVIEW_TOKEN,
    add_issue,
    add_list,
    add_subscriber,
    free_port,
    live_server,
)


@pytest.fixture
def sent_email(tmp_path: Path, sqlite_url: str, clock: FixedClock) -> tuple[Runtime, Path, int]:
    """One database is enough for this journey: SQLite."""
    port = free_port()
    live = load_settings(
        {},
        database_url=sqlite_url,
        outbox_dir=tmp_path / "outbox",
        var_dir=tmp_path / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
        base_url=f"http://127.0.0.1:{port}",
        provider="outbox",
        preview_token=Secret(PREVIEW_TOKEN),
    )
    runtime = Runtime.open(live, migrate=True, clock=clock)
    with transaction(runtime.sessions) as session:
        list_id = add_list(session, clock)
        add_subscriber(session, clock, "reader@example.jp", list_id)
        issue_id = add_issue(session, clock, list_id, status="built")
    provider = make_provider(live)
    try:
        report = send_issue(runtime, live, provider, issue_id, clock)
    finally:
        provider.close()
    assert report.status.total == 1  # type: ignore[union-attr]
    [eml] = sorted(live.outbox_dir.rglob("*.eml"))
    return runtime, eml, port


def _links(eml: Path) -> tuple[str, str]:
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    header = str(message["List-Unsubscribe"])
    from_header = re.search(r"<(https?://[^>]+)>", header)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    from_html = re.search(r'href="(https?://[^"]+/u/[^"]+)"', html)
    assert from_header and from_html
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return from_header.group(1), from_html.group(1)


@pytest.mark.browser
@pytest.mark.slow
def test_a_reader_unsubscribes_from_a_sent_email_in_a_browser(
    sent_email: tuple[Runtime, Path, int], chromium_browser: Any, tmp_path: Path
) -> None:
    runtime, eml, port = sent_email
    header_url, footer_url = _links(eml)
    assert header_url == footer_url.replace("&amp;", "&")
    with live_server(runtime, port):
        context = chromium_browser.new_context(
            viewport={"width": 375, "height": 800}, locale="ja-JP"
        )
        page = context.new_page()
        response = page.goto(footer_url)
        assert response is not None and response.status == 200
        assert "「AI日報」の配信を停止しますか？" in page.content()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        page.get_by_role("button", name="配信を停止する").click()
        page.wait_for_selector("text=配信を停止しました")
        page.screenshot(path=str(tmp_path / "unsubscribed.png"))
        context.close()
    with runtime.sessions() as session:
        assert session.scalars(select(Subscription.status)).one() == "unsubscribed"
        assert session.execute(eligible_recipients(1)).all() == []
    runtime.close()


def test_a_mail_client_one_click_post_to_the_header_link_unsubscribes(
    sent_email: tuple[Runtime, Path, int],
) -> None:
    """What Gmail or Apple Mail do with List-Unsubscribe-Post, over real HTTP."""
    import httpx

    runtime, eml, port = sent_email
    header_url, _ = _links(eml)
    with live_server(runtime, port):
        response = httpx.post(
            header_url, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False
        )
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    with runtime.sessions() as session:
        assert session.scalars(select(Subscription.status)).one() == "unsubscribed"
    runtime.close()


@pytest.mark.browser
def test_the_preview_frames_load_in_a_browser_at_both_widths(
    sent_email: tuple[Runtime, Path, int], chromium_browser: Any
) -> None:
    """The page's CSP (frame-src 'self') and the frames' SAMEORIGIN really let them render."""
    runtime, _, port = sent_email
    with live_server(runtime, port) as base:
        context = chromium_browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        response = page.goto(f"{base}/preview/1?token={PREVIEW_TOKEN}")
        assert response is not None and response.status == 200
        frames = page.locator("iframe")
        assert frames.count() == 8  # four variants at two widths
        widths = sorted(round(frames.nth(i).bounding_box()["width"]) for i in range(8))
        assert widths == [375] * 4 + [640] * 4
        for frame in page.frames[1:]:
            frame.wait_for_load_state()
            assert "2026-06-13" in frame.locator("h1").inner_text()
        context.close()
    runtime.close()
