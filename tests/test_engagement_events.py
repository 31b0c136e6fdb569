"""Tracked links and the open pixel over HTTP: where a click goes, what is recorded, what is
not; on SQLite and PostgreSQL.

The issue's links are written as the tracked rendering writes them (`issue_links`); tokens
are made with `TrackingSigner`, as the sender makes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from newsletter.clock import FixedClock
from newsletter.db.models import ClickEvent, Delivery, OpenEvent, Subscriber
from newsletter.db.session import transaction
from newsletter.engagement.tokens import TrackingSigner
from newsletter.runtime import Runtime
from newsletter.web import create_app
from newsletter.web.tracking_routes import PIXEL
from subscribers.erasure import erase
from tests.fixtures.events import ARTICLE_URL, SOURCE_URL, add_link, track
from tests.fixtures.web import Seeded, add_issue

SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
OTHER_ISSUE_LINK = 9


@pytest.fixture
def tracked(web_runtime: Runtime, web_seed: Seeded, clock: FixedClock) -> Seeded:
    """The seed's list tracks clicks and opens; its issue has three links, another issue one;
    the delivery (variant `both`) was accepted five minutes ago."""
    with transaction(web_runtime.sessions) as session:
        track(session, web_seed.list_id, clicks=True, opens=True)
        session.execute(
            update(Delivery)
            .where(Delivery.id == web_seed.delivery_id)
            .values(variant="both", tracked=True)
        )
        issue = web_seed.issue_id
        add_link(session, issue, 1, ARTICLE_URL, article_id=7, position=2, variant="both")
        add_link(session, issue, 2, SOURCE_URL, kind="source", article_id=7, position=2)
        add_link(session, issue, 3, "https://example.com/third", article_id=8, position=3)
        other = add_issue(session, clock, web_seed.list_id, issue_date=date(2026, 6, 12))
        add_link(session, other, OTHER_ISSUE_LINK, "https://elsewhere.example/x")
    clock.advance(minutes=5)
    return web_seed


def _click_path(runtime: Runtime, delivery_id: int, link_no: int) -> str:
    return f"/c/{TrackingSigner(runtime.settings).token(delivery_id)}/{link_no}"


def _pixel_path(runtime: Runtime, delivery_id: int) -> str:
    return f"/o/{TrackingSigner(runtime.settings).token(delivery_id)}.gif"


def _clicks(runtime: Runtime) -> list[ClickEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(ClickEvent).order_by(ClickEvent.id)))


def _opens(runtime: Runtime) -> list[OpenEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(OpenEvent).order_by(OpenEvent.id)))


def _get(client: TestClient, path: str, agent: str = SAFARI, **kw: object):  # type: ignore[no-untyped-def]
    return client.get(path, headers={"User-Agent": agent}, follow_redirects=False, **kw)


# --- the redirect -----------------------------------------------------------------------------


def test_a_click_redirects_to_exactly_the_stored_url_and_records_one_reader_click(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    response = _get(web_client, _click_path(web_runtime, tracked.delivery_id, 1))
    assert response.status_code == 302
    assert response.headers["location"] == ARTICLE_URL
    assert "no-store" in response.headers["cache-control"]
    assert response.headers["referrer-policy"] == "no-referrer"
    [click] = _clicks(web_runtime)
    assert (click.issue_id, click.subscriber_id, click.delivery_id) == (
        tracked.issue_id,
        tracked.subscriber_id,
        tracked.delivery_id,
    )
    assert (click.link_no, click.article_id, click.kind, click.position) == (1, 7, "article", 2)
    assert click.variant == "both"  # the delivery's variant
    assert (click.machine, click.reason) == (False, None)


def test_a_tampered_token_is_a_404_page_and_no_redirect(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    token = TrackingSigner(web_runtime.settings).token(tracked.delivery_id)
    value, _, signature = token.partition(".")
    forged = f"{int(value, 16) + 1:x}.{signature}"  # someone else's delivery, same signature
    for path in (f"/c/{forged}/1", f"/c/{value}.{'A' * len(signature)}/1", "/c/nonsense/1"):
        response = _get(web_client, path)
        assert response.status_code == 404
        assert "location" not in response.headers
        assert "ページが見つかりません" in response.text
    assert _clicks(web_runtime) == []


def test_the_404_page_speaks_the_readers_language(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    response = web_client.get(
        "/c/nonsense/1", headers={"Accept-Language": "en-GB,en;q=0.9"}, follow_redirects=False
    )
    assert response.status_code == 404
    assert "Page not found" in response.text


def test_a_link_number_of_another_issue_is_a_404_and_no_redirect(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    for link_no in (OTHER_ISSUE_LINK, 4, 99999999999999999999):
        response = _get(web_client, _click_path(web_runtime, tracked.delivery_id, link_no))
        assert response.status_code == 404
        assert "location" not in response.headers
    assert _clicks(web_runtime) == []


UNSAFE = (
    "javascript:alert(document.cookie)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "//evil.example/path",
    "https://example.com/a\r\nSet-Cookie: x=1",
    "https:///no-host",
)


def test_a_stored_url_that_is_not_an_absolute_web_address_is_never_redirected_to(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    with transaction(web_runtime.sessions) as session:
        for link_no, stored in enumerate(UNSAFE, 10):
            add_link(session, tracked.issue_id, link_no, stored)
    for link_no, _ in enumerate(UNSAFE, 10):
        response = _get(web_client, _click_path(web_runtime, tracked.delivery_id, link_no))
        assert response.status_code == 404
        assert "location" not in response.headers


# --- machine clicks ----------------------------------------------------------------------------


def test_a_head_request_redirects_and_is_stored_as_a_machine_click(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    response = web_client.head(
        _click_path(web_runtime, tracked.delivery_id, 1),
        headers={"User-Agent": SAFARI},
        follow_redirects=False,
    )
    assert response.status_code == 302
    assert response.headers["location"] == ARTICLE_URL
    [click] = _clicks(web_runtime)
    assert (click.machine, click.reason) == (True, "head")


def test_a_click_two_seconds_after_acceptance_is_a_machine_click(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded, clock: FixedClock
) -> None:
    with transaction(web_runtime.sessions) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == tracked.delivery_id)
            .values(accepted_at=clock.now() - timedelta(seconds=2))
        )
    response = _get(web_client, _click_path(web_runtime, tracked.delivery_id, 1))
    assert response.status_code == 302
    [click] = _clicks(web_runtime)
    assert (click.machine, click.reason) == (True, "early")


SCANNERS = (
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "",
)


def test_known_scanner_and_preview_agents_are_machine_clicks(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    for agent in SCANNERS:
        response = _get(web_client, _click_path(web_runtime, tracked.delivery_id, 1), agent=agent)
        assert response.status_code == 302
    assert {(c.machine, c.reason) for c in _clicks(web_runtime)} == {(True, "agent")}
    assert len(_clicks(web_runtime)) == len(SCANNERS)


def test_a_burst_of_different_links_marks_every_click_of_the_burst_as_machine(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded, clock: FixedClock
) -> None:
    for link_no in (1, 2, 3):
        assert _get(web_client, _click_path(web_runtime, tracked.delivery_id, link_no)).is_redirect
        clock.advance(seconds=0.5)
    assert [(c.link_no, c.machine, c.reason) for c in _clicks(web_runtime)] == [
        (1, True, "burst"),
        (2, True, "burst"),
        (3, True, "burst"),
    ]


def test_a_reader_opening_links_minutes_apart_stays_a_reader(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded, clock: FixedClock
) -> None:
    for link_no in (1, 2, 3):
        _get(web_client, _click_path(web_runtime, tracked.delivery_id, link_no))
        clock.advance(minutes=2)
    assert [c.machine for c in _clicks(web_runtime)] == [False, False, False]


# --- when nothing is recorded ------------------------------------------------------------------


def test_a_subscriber_who_switched_tracking_off_is_redirected_and_nothing_is_recorded(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    with transaction(web_runtime.sessions) as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == tracked.subscriber_id)
            .values(tracking_off=True)
        )
    response = _get(web_client, _click_path(web_runtime, tracked.delivery_id, 1))
    assert (response.status_code, response.headers["location"]) == (302, ARTICLE_URL)
    assert _get(web_client, _pixel_path(web_runtime, tracked.delivery_id)).content == PIXEL
    assert _clicks(web_runtime) == []
    assert _opens(web_runtime) == []


def test_a_list_that_switched_click_tracking_off_records_no_new_clicks(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    with transaction(web_runtime.sessions) as session:
        track(session, tracked.list_id, clicks=False, opens=True)
    response = _get(web_client, _click_path(web_runtime, tracked.delivery_id, 1))
    assert (response.status_code, response.headers["location"]) == (302, ARTICLE_URL)
    assert _clicks(web_runtime) == []


def test_an_erased_subscribers_old_link_still_redirects_and_records_nothing(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    with transaction(web_runtime.sessions) as session:
        erase(session, web_runtime.clock, email=tracked.email)
    response = _get(web_client, _click_path(web_runtime, tracked.delivery_id, 2))
    assert (response.status_code, response.headers["location"]) == (302, SOURCE_URL)
    assert _clicks(web_runtime) == []


@pytest.fixture
def refusing_click_events(web_runtime: Runtime) -> Iterator[None]:
    """The database refuses every new click row (a real error from the database)."""
    engine = web_runtime.sessions.kw["bind"]
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_click() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_click BEFORE INSERT ON click_events "
                "FOR EACH ROW EXECUTE FUNCTION refuse_click()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_click BEFORE INSERT ON click_events "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
    yield
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER refuse_click ON click_events" if postgres else "DROP TRIGGER refuse_click"
        )
        if postgres:
            conn.exec_driver_sql("DROP FUNCTION refuse_click()")


def test_a_database_error_while_recording_still_redirects_and_logs_no_token_or_address(
    web_client: TestClient,
    web_runtime: Runtime,
    tracked: Seeded,
    refusing_click_events: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = _click_path(web_runtime, tracked.delivery_id, 1)
    with caplog.at_level(logging.ERROR, logger="newsletter.web.tracking_routes"):
        response = _get(web_client, path)
    assert (response.status_code, response.headers["location"]) == (302, ARTICLE_URL)
    assert "engagement.click_not_recorded" in caplog.text
    token = path.split("/")[2]
    assert token not in caplog.text
    assert tracked.email.lower() not in caplog.text.lower()
    assert _clicks(web_runtime) == []


# --- the pixel ----------------------------------------------------------------------------------


def test_the_pixel_is_a_43_byte_transparent_gif_that_is_never_cached(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    response = _get(web_client, _pixel_path(web_runtime, tracked.delivery_id))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content == PIXEL and len(PIXEL) == 43 and PIXEL.startswith(b"GIF89a")
    assert {"no-store", "private"} <= {
        part.strip() for part in response.headers["cache-control"].split(",")
    }


def test_a_readers_pixel_fetch_is_recorded_as_a_reader_open(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    _get(web_client, _pixel_path(web_runtime, tracked.delivery_id))
    [opened] = _opens(web_runtime)
    assert (opened.issue_id, opened.subscriber_id, opened.delivery_id) == (
        tracked.issue_id,
        tracked.subscriber_id,
        tracked.delivery_id,
    )
    assert (opened.variant, opened.source) == ("both", "reader")


def test_a_fetch_from_apples_network_is_recorded_as_apple_privacy_protection(
    web_runtime: Runtime, tracked: Seeded
) -> None:
    with TestClient(
        create_app(web_runtime), base_url="https://news.example.com", client=("17.58.63.4", 443)
    ) as apple:
        assert _get(apple, _pixel_path(web_runtime, tracked.delivery_id)).content == PIXEL
    assert [o.source for o in _opens(web_runtime)] == ["apple_mpp"]


def test_a_gmail_image_proxy_fetch_is_recorded_as_a_proxy_open(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    agent = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    _get(web_client, _pixel_path(web_runtime, tracked.delivery_id), agent=agent)
    assert [o.source for o in _opens(web_runtime)] == ["proxy"]


def test_the_pixel_records_nothing_when_the_list_does_not_use_it(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    with transaction(web_runtime.sessions) as session:
        track(session, tracked.list_id, clicks=True, opens=False)
    assert _get(web_client, _pixel_path(web_runtime, tracked.delivery_id)).content == PIXEL
    assert _opens(web_runtime) == []


def test_a_pixel_with_a_forged_token_gets_the_same_gif_and_records_nothing(
    web_client: TestClient, web_runtime: Runtime, tracked: Seeded
) -> None:
    response = _get(web_client, "/o/1.AAAAAAAAAAAAAAAAAAAAAA.gif")
    assert (response.status_code, response.content) == (200, PIXEL)
    assert _opens(web_runtime) == []
