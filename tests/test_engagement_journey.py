"""A reader clicks a link in the email they received, in headless Chromium, and the editor's
count goes up by exactly one for the right article, variant and position; a security scanner
that fetches the link as the mail arrives, and a HEAD request, are kept apart.

Over the outbox and over SMTP (an aiosmtpd sink): the email is read from what the provider
delivered, opened in Chromium, and its first article link clicked. The app runs under uvicorn;
the article site is a small local HTTP server, so the redirect ends on a real page.
"""

from __future__ import annotations

import email
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from newsletter.clock import FixedClock
from newsletter.config import Secret, load_settings
from newsletter.db.models import ClickEvent, Delivery, IssueLink, MailingList
from newsletter.db.session import transaction
from newsletter.delivery.sending import send_issue
from newsletter.providers.outbox import OutboxProvider
from newsletter.providers.smtp import SmtpProvider, parse_smtp_url
from newsletter.runtime import Runtime
from tests.fixtures.render import make_article, store_issue
from tests.fixtures.web import add_subscriber, free_port, live_server

SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel)"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"


class _Story(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = f"<html><head><title>story</title></head><body>{self.path}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def article_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Story)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _received_html(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    raise AssertionError("no HTML part")


def _deliver(provider_name: str, runtime: Runtime, issue_id: int, tmp_path: Path) -> Message:
    """Send the issue through the named provider; the one email the reader received."""
    settings, clock = runtime.settings, runtime.clock
    if provider_name == "outbox":
        provider: Any = OutboxProvider(tmp_path / "outbox")
        send_issue(runtime, settings, provider, issue_id, clock)
        [eml] = sorted((tmp_path / "outbox").rglob("*.eml"))
        return email.message_from_bytes(eml.read_bytes())
    from newsletter.testing.smtp_sink import SmtpSink

    with SmtpSink() as sink:
        provider = SmtpProvider(parse_smtp_url(sink.url, default_pool=1))
        try:
            send_issue(runtime, settings, provider, issue_id, clock)
        finally:
            provider.close()
        [received] = sink.messages
        return email.message_from_bytes(received.data)


@pytest.mark.browser
@pytest.mark.parametrize("provider_name", ["outbox", "smtp"])
def test_a_readers_click_in_a_browser_counts_once_and_scanners_do_not(
    provider_name: str,
    tmp_path: Path,
    sqlite_url: str,
    clock: FixedClock,
    article_site: str,
    chromium_browser: Any,
) -> None:
    port = free_port()
    settings = load_settings(
        {},
        database_url=sqlite_url,
        outbox_dir=tmp_path / "outbox",
        var_dir=tmp_path / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
        base_url=f"http://127.0.0.1:{port}",
        provider="outbox",
    )
    runtime = Runtime.open(settings, migrate=True, clock=clock)
    articles = [make_article(n, url=f"{article_site}/story/{n}") for n in (1, 2)]
    with transaction(runtime.sessions) as session:
        issue = store_issue(session, articles, built_at=clock.now())
        session.execute(
            update(MailingList)
            .where(MailingList.id == issue.list_id)
            .values(click_tracking=True, utm_params="")
        )
        add_subscriber(session, clock, "reader@example.jp", issue.list_id, language="en")
        issue_id = issue.id
    received = _deliver(provider_name, runtime, issue_id, tmp_path)
    html = _received_html(received)
    with runtime.sessions() as session:
        story = session.scalars(
            select(IssueLink).where(
                IssueLink.issue_id == issue_id,
                IssueLink.variant == "en",
                IssueLink.kind == "article",
                IssueLink.position == 2,
            )
        ).first()
    assert story is not None and story.url == f"{article_site}/story/2"
    assert "/c/" in html and story.url not in html

    with live_server(runtime, port) as base:
        link = next(
            href for href in _hrefs(html) if href.startswith(f"{base}/c/")
            and href.endswith(f"/{story.link_no}")
        )  # fmt: skip
        # As the mail arrives: a gateway's HEAD, its scanner's GET, and a link checker that
        # passes itself off as a browser. Each is redirected like anyone else.
        assert httpx.head(link, headers={"User-Agent": BROWSER}).status_code == 302
        for agent in (SCANNER, BROWSER):
            scan = httpx.get(link, headers={"User-Agent": agent}, follow_redirects=False)
            assert scan.status_code == 302 and scan.headers["location"] == story.url
        # Minutes later the reader opens the email and clicks the second article's headline.
        clock.advance(minutes=5)
        # Headless Chromium names itself HeadlessChrome, as scanners' browsers do; a reader's
        # Chromium does not.
        context = chromium_browser.new_context(
            viewport={"width": 375, "height": 800}, user_agent=BROWSER
        )
        page = context.new_page()
        page.set_content(html)
        with page.expect_navigation(url=f"{story.url}*"):
            page.locator(f'a[href="{link}"]').first.click()
        assert page.url == story.url
        context.close()

    with runtime.sessions() as session:
        delivery = session.scalars(select(Delivery).where(Delivery.issue_id == issue_id)).one()
        clicks = session.scalars(select(ClickEvent).order_by(ClickEvent.id)).all()
    readers = [c for c in clicks if not c.machine]
    assert [(c.article_id, c.variant, c.position, c.kind) for c in readers] == [
        (story.article_id, "en", 2, "article")
    ]
    assert readers[0].delivery_id == delivery.id
    assert sorted(c.reason or "" for c in clicks if c.machine) == ["agent", "early", "head"]
    runtime.close()


def _hrefs(html: str) -> list[str]:
    import re
    from html import unescape

    return [unescape(h) for h in re.findall(r'href="([^"]*)"', html)]
