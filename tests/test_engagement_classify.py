"""Whether a click or a pixel fetch was a person: the pure decisions of engagement.classify."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.engagement import classify
from newsletter.engagement.classify import EarlierClick, burst_of, click_reason, open_source

ACCEPTED = datetime(2026, 6, 12, 22, 0, tzinfo=UTC)
LATER = ACCEPTED + timedelta(minutes=30)
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
ANDROID_CUBOT = (
    "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)


def _reason(
    *, method: str = "GET", agent: str | None = SAFARI, at: datetime = LATER, burst: bool = False
) -> str | None:
    return click_reason(method=method, user_agent=agent, at=at, accepted_at=ACCEPTED, burst=burst)


def test_a_browser_click_long_after_delivery_is_a_reader() -> None:
    assert _reason() is None
    assert _reason(agent=CHROME) is None


def test_a_phone_whose_model_name_contains_bot_is_still_a_reader() -> None:
    assert _reason(agent=ANDROID_CUBOT) is None


def test_a_head_request_is_a_machine() -> None:
    assert _reason(method="HEAD") == "head"


@pytest.mark.parametrize(
    "agent",
    [
        "curl/8.5.0",
        "Wget/1.21.4",
        "python-requests/2.32.3",
        "Python-urllib/3.12",
        "Go-http-client/2.0",
        "okhttp/4.12.0",
        "Java/17.0.2",
        "Barracuda Sentinel (EE)",
        "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
        "Mimecast URL Protect",
        "urlscan.io",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Twitterbot/1.0",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "TelegramBot (like TwitterBot)",
        "WhatsApp/2.23.20.0",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/126.0.0.0",
        "",
        "   ",
    ],
)
def test_a_known_machine_agent_is_a_machine(agent: str) -> None:
    assert _reason(agent=agent) == "agent"


def test_no_agent_header_at_all_is_a_machine() -> None:
    assert _reason(agent=None) == "agent"


def test_a_click_within_ten_seconds_of_acceptance_is_a_machine() -> None:
    assert _reason(at=ACCEPTED + timedelta(seconds=2)) == "early"
    assert _reason(at=ACCEPTED + timedelta(seconds=classify.EARLY_SECONDS - 1)) == "early"
    assert _reason(at=ACCEPTED + timedelta(seconds=classify.EARLY_SECONDS)) is None


def test_a_click_before_acceptance_was_recorded_is_early_too() -> None:
    assert _reason(at=ACCEPTED - timedelta(seconds=1)) == "early"


def test_a_delivery_without_an_acceptance_time_is_never_early() -> None:
    reason = click_reason(method="GET", user_agent=SAFARI, at=LATER, accepted_at=None, burst=False)
    assert reason is None


def test_a_burst_is_a_machine() -> None:
    assert _reason(burst=True) == "burst"


def _earlier(*offsets_and_links: tuple[float, int]) -> list[EarlierClick]:
    return [
        EarlierClick(event_id=i, at=LATER - timedelta(seconds=offset), link_no=link)
        for i, (offset, link) in enumerate(offsets_and_links, 1)
    ]


def test_three_different_links_within_two_seconds_are_a_burst_including_the_earlier_ones() -> None:
    earlier = _earlier((1.5, 1), (0.7, 2))
    assert [c.event_id for c in burst_of(LATER, 3, earlier)] == [1, 2]


def test_two_different_links_in_quick_succession_are_not_a_burst() -> None:
    assert burst_of(LATER, 2, _earlier((0.5, 1))) == []


def test_the_same_link_clicked_again_and_again_is_not_a_burst() -> None:
    assert burst_of(LATER, 1, _earlier((1.0, 1), (0.5, 1))) == []


def test_clicks_further_apart_than_the_burst_window_are_not_a_burst() -> None:
    assert burst_of(LATER, 3, _earlier((5.0, 1), (3.0, 2))) == []


def _source(
    *, ip: str | None = "198.51.100.7", agent: str | None = SAFARI, at: datetime = LATER
) -> str:
    return open_source(method="GET", ip=ip, user_agent=agent, at=at, accepted_at=ACCEPTED)


def test_a_pixel_fetch_from_a_browser_later_on_is_a_reader() -> None:
    assert _source() == "reader"


def test_a_fetch_from_apples_network_is_apple_privacy_protection() -> None:
    assert _source(ip="17.58.101.3") == "apple_mpp"
    assert _source(ip="17.58.101.3", at=ACCEPTED + timedelta(seconds=1)) == "apple_mpp"


def test_apples_generic_agent_alone_is_apple_privacy_protection() -> None:
    assert _source(agent=classify.APPLE_MPP_AGENT) == "apple_mpp"


def test_an_address_outside_apples_network_or_not_an_address_is_not_apple() -> None:
    assert _source(ip="18.0.0.1") == "reader"
    assert _source(ip="testclient") == "reader"
    assert _source(ip="2001:db8::1") == "reader"


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
    ],
)
def test_a_known_image_proxy_is_a_proxy(agent: str) -> None:
    assert _source(agent=agent) == "proxy"


def test_a_fetch_within_seconds_of_delivery_or_by_a_machine_agent_is_a_machine() -> None:
    assert _source(at=ACCEPTED + timedelta(seconds=3)) == "machine"
    assert _source(agent="curl/8.5.0") == "machine"
    assert (
        open_source(method="HEAD", ip=None, user_agent=SAFARI, at=LATER, accepted_at=ACCEPTED)
        == "machine"
    )
