"""Whether a click or a pixel fetch was a person: pure decisions, no database, no request.

Mail security scanners, link-preview fetchers and image proxies request links and images
whether or not anyone reads the email. Counting them as readers would make every issue look
read; so each event is classified here, stored with its classification (never with the IP
address or the user agent it was decided from) and only `reader` events count as people.

The thresholds and the user-agent markers live here and nowhere else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Security gateways (Proofpoint, Mimecast, Barracuda, Microsoft's Safe Links) follow every link
# of a message while it is being delivered, before it reaches the inbox: a human needs longer
# than this to receive, open, read and click. 10 s keeps a very fast reader (notification,
# open, first headline) on the reader side while catching scanners, which act within 1-5 s.
EARLY_SECONDS = 10
# A scanner also follows all links of a message at once. Three different links of one
# delivery within two seconds is faster than anyone reads headlines; one reader opening
# two links in quick succession (middle-click into tabs) still counts.
BURST_SECONDS = 2
BURST_LINKS = 3

# Lower-case substrings of user agents that are never a person reading: HTTP libraries,
# security scanners, crawlers and link-preview fetchers. An empty user agent is one too.
MACHINE_AGENT_MARKERS: tuple[str, ...] = (
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww-perl",
    "httpclient",
    "barracuda",
    "proofpoint",
    "mimecast",
    "urlscan",
    "urldefense",
    "safelinks",
    "bot/",  # Googlebot/2.1, bingbot/2.0, Twitterbot/1.0, Discordbot/2.0, LinkedInBot/1.0, ...
    "+http",  # crawlers name their owner: "(compatible; Foo/1.0; +https://foo.example/bot)"
    "slackbot",
    "telegrambot",
    "applebot",
    "crawler",
    "spider",
    "slurp",
    "facebookexternalhit",
    "whatsapp",
    "skypeuripreview",
    "bingpreview",
    "embedly",
    "headlesschrome",
    "phantomjs",
    "preview",
    "scanner",
)

# Image proxies that fetch the pixel on the reader's behalf, at delivery (Yahoo) or at open
# (Gmail): the fetch says the mail was delivered, at best opened, never by whom.
PROXY_AGENT_MARKERS: tuple[str, ...] = ("googleimageproxy", "ggpht.com", "yahoomailproxy")

# Apple Mail Privacy Protection fetches every image through Apple's proxies (17.0.0.0/8) as the
# mail arrives, with a generic WebKit user agent that names no browser or version. Apple Mail
# without MPP sends that same agent from the reader's own address: the address decides first,
# and the bare agent alone is counted as Apple's proxy too (opens are under- rather than
# over-counted).
APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
APPLE_MPP_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)

# Why a click is a machine's (stored in click_events.reason).
HEAD = "head"
EARLY = "early"
BURST = "burst"
AGENT = "agent"

# Where a pixel fetch came from (stored in open_events.source).
READER = "reader"
APPLE_MPP = "apple_mpp"
PROXY = "proxy"
MACHINE = "machine"


@dataclass(frozen=True, slots=True)
class EarlierClick:
    """A click of the same delivery already stored: when, and on which link."""

    event_id: int
    at: datetime
    link_no: int


def is_machine_agent(user_agent: str | None) -> bool:
    agent = (user_agent or "").strip().lower()
    return not agent or any(marker in agent for marker in MACHINE_AGENT_MARKERS)


def is_early(at: datetime, accepted_at: datetime | None) -> bool:
    """Within EARLY_SECONDS of the provider accepting the message (or before: clock skew)."""
    return accepted_at is not None and at - accepted_at < timedelta(seconds=EARLY_SECONDS)


def burst_of(at: datetime, link_no: int, earlier: Sequence[EarlierClick]) -> list[EarlierClick]:
    """The earlier clicks that form a burst with this one (empty: no burst).

    A burst is BURST_LINKS different links within BURST_SECONDS; the earlier clicks in the
    window are returned so they can be marked as the machine's too.
    """
    window = [c for c in earlier if timedelta(0) <= at - c.at <= timedelta(seconds=BURST_SECONDS)]
    links = {c.link_no for c in window} | {link_no}
    return window if len(links) >= BURST_LINKS else []


def click_reason(
    *,
    method: str,
    user_agent: str | None,
    at: datetime,
    accepted_at: datetime | None,
    burst: bool,
) -> str | None:
    """Why this click is a machine's (head, agent, early, burst), or None for a reader."""
    if method.upper() == "HEAD":
        return HEAD
    if is_machine_agent(user_agent):
        return AGENT
    if is_early(at, accepted_at):
        return EARLY
    if burst:
        return BURST
    return None


def is_apple_address(ip: str | None) -> bool:
    try:
        return ipaddress.ip_address((ip or "").strip()) in APPLE_NETWORK
    except ValueError:
        return False


def open_source(
    *,
    method: str,
    ip: str | None,
    user_agent: str | None,
    at: datetime,
    accepted_at: datetime | None,
) -> str:
    """Where a pixel fetch came from: apple_mpp, proxy, machine or reader."""
    agent = (user_agent or "").strip()
    if is_apple_address(ip) or agent == APPLE_MPP_AGENT:
        return APPLE_MPP
    lowered = agent.lower()
    if any(marker in lowered for marker in PROXY_AGENT_MARKERS):
        return PROXY
    if method.upper() == "HEAD" or is_machine_agent(agent) or is_early(at, accepted_at):
        return MACHINE
    return READER
