"""The public archive: every sent issue, with personal slots replaced by neutral links."""

from __future__ import annotations

from datetime import date

from starlette.testclient import TestClient

from newsletter.runtime import Runtime
from newsletter.types import SLOT_NAME, SLOT_PREFERENCES_URL, SLOT_UNSUBSCRIBE_URL
from newsletter.web.archive import neutral_html
from tests.fixtures.web import Seeded, add_issue


def test_neutral_html_replaces_every_personal_slot() -> None:
    html = (
        f'<a href="{SLOT_UNSUBSCRIBE_URL}">x</a><a href="{SLOT_PREFERENCES_URL}">y</a>{SLOT_NAME}'
    )
    out = neutral_html(html, "https://news.example.com")
    assert out == (
        '<a href="https://news.example.com/subscribe">x</a>'
        '<a href="https://news.example.com/subscribe">y</a>'
    )


def test_the_email_as_sent_is_the_variant_without_personal_links(
    web_client: TestClient, web_seed: Seeded
) -> None:
    page = web_client.get("/issues/2026-06-13/email?lang=en")
    assert page.status_code == 200
    assert "<h1>en 2026-06-13</h1>" in page.text
    assert "/u/" not in page.text and "/p/" not in page.text
    for slot in (SLOT_NAME, SLOT_PREFERENCES_URL, SLOT_UNSUBSCRIBE_URL):
        assert slot not in page.text
    assert 'href="https://news.example.com/subscribe"' in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_an_issue_not_sent_yet_is_not_public(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded, clock
) -> None:
    with web_runtime.sessions.begin() as session:
        add_issue(session, clock, web_seed.list_id, issue_date=date(2026, 6, 14), status="built")
    assert web_client.get("/issues/2026-06-14/email?lang=ja").status_code == 404
    assert web_client.get("/issues/2026-06-14?lang=ja").status_code == 404


def test_unknown_dates_lists_and_languages_are_refused(
    web_client: TestClient, web_seed: Seeded
) -> None:
    assert web_client.get("/issues/2026-01-01/email?lang=ja").status_code == 404
    assert web_client.get("/issues/not-a-date/email").status_code == 404
    assert web_client.get("/issues/2026-06-13/email?lang=ja&list=weekly").status_code == 404
    assert web_client.get("/issues/2026-06-13/email?lang=fr").status_code == 400
    assert web_client.get("/issues/2026-01-01?lang=ja").status_code == 404
    assert web_client.get("/issues/not-a-date").status_code == 404
    assert web_client.get("/issues/2026-06-13?lang=ja&list=weekly").status_code == 404
    assert web_client.get("/issues/2026-06-13?lang=fr").status_code == 400
