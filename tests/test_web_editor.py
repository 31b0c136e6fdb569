"""Editor pages: preview of the four variants and per-issue statistics, never public."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from newsletter.runtime import Runtime
from tests.fixtures.web import PREVIEW_TOKEN, Seeded, WebhookKey, body_of, sendgrid_event

BEARER = {"Authorization": f"Bearer {PREVIEW_TOKEN}"}


@pytest.mark.parametrize("path", ["/preview/{id}", "/preview/{id}/ja", "/admin/issues/{id}"])
def test_editor_pages_are_401_without_the_token(
    web_client: TestClient, web_seed: Seeded, path: str
) -> None:
    url = path.format(id=web_seed.issue_id)
    assert web_client.get(url).status_code == 401
    assert web_client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = web_client.get(url + "?token=wrong")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "auth",
    [
        {"headers": BEARER},
        {"params": {"token": PREVIEW_TOKEN}},
        {
            "headers": {
                "Authorization": "Basic "
                + base64.b64encode(f"editor:{PREVIEW_TOKEN}".encode()).decode()
            }
        },
    ],
    ids=["bearer", "query", "basic"],
)
def test_the_preview_shows_four_variants_at_two_widths(
    web_client: TestClient, web_seed: Seeded, auth: dict
) -> None:
    page = web_client.get(f"/preview/{web_seed.issue_id}", **auth)
    assert page.status_code == 200
    assert page.text.count("<iframe") == 8
    assert page.text.count('class="phone"') == 4 and page.text.count('class="desktop"') == 4
    assert "frame-src 'self'" in page.headers["content-security-policy"]


def test_a_preview_frame_may_be_framed_by_us_only_and_has_sample_links(
    web_client: TestClient, web_seed: Seeded
) -> None:
    frame = web_client.get(f"/preview/{web_seed.issue_id}/both", headers=BEARER)
    assert frame.status_code == 200
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in frame.headers["content-security-policy"]
    assert "https://news.example.com/u/preview" in frame.text


def test_without_a_configured_token_the_editor_pages_are_closed(
    web_runtime: Runtime, web_seed: Seeded
) -> None:
    import dataclasses

    from newsletter.web import create_app

    settings = dataclasses.replace(web_runtime.settings, preview_token=None)
    with TestClient(create_app(dataclasses.replace(web_runtime, settings=settings))) as client:
        assert client.get(f"/preview/{web_seed.issue_id}?token=").status_code == 401


def test_statistics_count_recipients_from_the_events_and_draw_a_chart(
    web_client: TestClient, webhook_key: WebhookKey, clock, web_seed: Seeded
) -> None:
    at = clock.now()
    events = [
        sendgrid_event("delivered", web_seed, at),
        sendgrid_event("open", web_seed, at + timedelta(hours=1)),
        sendgrid_event("open", web_seed, at + timedelta(hours=2)),  # same reader: counts once
        sendgrid_event("click", web_seed, at + timedelta(hours=2)),
    ]
    body = body_of(events)
    web_client.post(
        "/webhooks/sendgrid",
        content=body,
        headers=webhook_key.headers(body, int(at.timestamp())),
    )
    page = web_client.get(
        f"/admin/issues/{web_seed.issue_id}", headers={**BEARER, "Accept-Language": "en"}
    )
    assert page.status_code == 200
    assert "<th>Delivered</th><td>1</td>" in page.text
    assert "<th>Opened</th><td>1</td>" in page.text
    assert "<th>Clicked</th><td>1</td>" in page.text
    assert "<th>Bounced</th><td>0</td>" in page.text
    assert "<svg" in page.text and page.text.count("<polyline") == 3
    assert "<script" not in page.text
    assert "<th>total</th><td>1</td>" in page.text  # the send ledger beside the events
    assert "<th>accepted</th><td>1</td>" in page.text


def test_unknown_issue_is_404(web_client: TestClient, web_seed: Seeded) -> None:
    assert web_client.get("/admin/issues/9999", headers=BEARER).status_code == 404


def test_the_preview_renders_an_issue_that_was_only_built(
    web_client: TestClient, web_runtime: Runtime, clock
) -> None:
    from newsletter.db.session import transaction
    from tests.fixtures.render import make_article, store_issue

    with transaction(web_runtime.sessions) as session:
        issue = store_issue(session, [make_article(1), make_article(2)], built_at=clock.now())
        issue_id = issue.id
    page = web_client.get(f"/preview/{issue_id}", headers=BEARER)
    assert page.status_code == 200 and page.text.count("<iframe") == 8
    frame = web_client.get(f"/preview/{issue_id}/ja", headers=BEARER)
    assert frame.status_code == 200
    assert "https://news.example.com/u/preview" in frame.text
    assert "-unsubscribe_url-" not in frame.text


def test_events_are_bucketed_per_hour_and_metric() -> None:
    from datetime import UTC, datetime

    from newsletter.webhooks.stats import bucket_events

    at = datetime(2026, 6, 13, 7, 5, tzinfo=UTC)
    pairs = [
        (at, "open"),
        (at + timedelta(minutes=50), "open"),
        (at + timedelta(minutes=56), "open"),
        (at, "bounce"),
        (at, "dropped"),
    ]
    assert bucket_events(pairs, timedelta(hours=1)) == [
        (datetime(2026, 6, 13, 7, tzinfo=UTC), "bounced", 2),
        (datetime(2026, 6, 13, 7, tzinfo=UTC), "opened", 2),
        (datetime(2026, 6, 13, 8, tzinfo=UTC), "opened", 1),
    ]
