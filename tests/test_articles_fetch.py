"""Import URLs cannot reach inside the network, and cannot hold an import for ever.

Real local HTTP servers on 127.0.0.x. By default a loopback address is refused like any
private one, so the tests of refusal use the default policy; the tests of limits and normal
fetching opt in to private addresses as a trusted intranet deployment would. Where a test
needs a "public" host, 127.0.0.2 is declared public through `non_public`, and 127.0.0.1 stays
what it is.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from newsletter.articles import fetch as fetch_module
from newsletter.articles.feeds import MAX_ENTRY_CHARS
from newsletter.articles.fetch import FetchPolicy, fetch, non_public
from newsletter.articles.ingest import import_sources
from newsletter.cli.main import cli
from newsletter.clock import FixedClock
from newsletter.errors import ConfigError, ValidationError

JSON_ARTICLE = (
    b'{"id": "j1", "url": "https://example.org/j1", "published_at": "2026-06-13T06:00:00Z",'
    b' "content": {"en": {"title": "T", "summary": "S"}}}'
)
PRIVATE = FetchPolicy(timeout_s=10, allow_private=True)


class Server:
    """One HTTP server on `host`; `route` answers each request; `requests` records them."""

    def __init__(self, host: str, route: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                outer.requests.append((self.path, self.headers.get("Host", "")))
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    route(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://{host}:{self.port}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(route: Callable[[BaseHTTPRequestHandler], None], host: str = "127.0.0.1") -> Server:
        server = Server(host, route)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def answer(body: bytes, *, status: int = 200, length: bool = True) -> Callable[..., None]:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        if length:
            handler.send_header("Content-Length", str(len(body)))
        else:
            handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)

    return route


def redirect(location: str) -> Callable[..., None]:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


@pytest.fixture
def public_127_0_0_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.2 plays a public host; every other address keeps its real classification."""
    real = fetch_module.non_public
    fake = ipaddress.ip_address("127.0.0.2")
    monkeypatch.setattr(fetch_module, "non_public", lambda a: a != fake and real(a))


def error_of(url: str, policy: FetchPolicy) -> str:
    with pytest.raises(ValidationError) as caught:
        fetch(url, policy)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "0.0.0.0",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
        "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
    ],
)
def test_inside_addresses_are_not_public(address: str) -> None:
    assert non_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_internet_addresses_are_public(address: str) -> None:
    assert not non_public(ipaddress.ip_address(address))


# --- refusal (default policy) ---------------------------------------------------------------


def test_a_loopback_url_is_refused_without_being_requested(
    serve: Callable[..., Server],
) -> None:
    server = serve(answer(JSON_ARTICLE))
    message = error_of(f"{server.base}/a.json", FetchPolicy())
    assert message == (
        f"{server.base}/a.json: refused: private address: 127.0.0.1 (only public addresses "
        "are fetched; NEWSLETTER_FETCH_ALLOW_PRIVATE=1 allows a trusted intranet source)"
    )
    assert server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::1]:8080/",
        "http://10.0.0.1/feed.xml",
        "https://192.168.0.1/feed.xml",
        "http://0.0.0.0:9/",
    ],
)
def test_private_literal_addresses_are_refused_at_once(url: str) -> None:
    started = time.monotonic()
    assert "refused: private address" in error_of(url, FetchPolicy())
    assert time.monotonic() - started < 1  # nothing was attempted, nothing timed out


def test_a_name_is_checked_after_it_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "feeds.internal.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    message = error_of("https://feeds.internal.example/rss", FetchPolicy())
    assert message.startswith(
        "https://feeds.internal.example/rss: refused: private address: feeds.internal.example "
    )


def test_an_open_and_a_closed_internal_port_give_the_same_answer(
    serve: Callable[..., Server],
) -> None:
    server = serve(answer(JSON_ARTICLE))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    open_message = error_of(f"http://127.0.0.1:{server.port}/x", FetchPolicy())
    closed_message = error_of(f"http://127.0.0.1:{closed}/x", FetchPolicy())
    assert open_message.replace(str(server.port), "PORT") == closed_message.replace(
        str(closed), "PORT"
    )


def test_a_redirect_to_loopback_is_refused(
    serve: Callable[..., Server], public_127_0_0_2: None
) -> None:
    inside = serve(answer(JSON_ARTICLE))
    outside = serve(redirect(f"{inside.base}/secret.json"), host="127.0.0.2")
    message = error_of(f"{outside.base}/feed.json", FetchPolicy())
    assert message.startswith(f"{outside.base}/feed.json: refused: private address: 127.0.0.1 ")
    assert [path for path, _ in outside.requests] == ["/feed.json"]
    assert inside.requests == []


def test_a_redirect_to_a_name_for_loopback_is_refused(
    serve: Callable[..., Server], public_127_0_0_2: None
) -> None:
    inside = serve(answer(JSON_ARTICLE))
    outside = serve(redirect(f"http://localhost:{inside.port}/x"), host="127.0.0.2")
    assert "refused: private address: localhost " in error_of(f"{outside.base}/", FetchPolicy())
    assert inside.requests == []


def test_the_vetted_address_is_the_one_connected_to_and_the_host_name_is_kept(
    serve: Callable[..., Server], public_127_0_0_2: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name is resolved once, vetted, and that very address is used (no second lookup to
    rebind); the request still carries the name in its Host header."""
    server = serve(answer(JSON_ARTICLE), host="127.0.0.2")
    lookups: list[str] = []
    real = socket.getaddrinfo

    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host[0].isdigit():  # an address literal resolves to itself
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        answer_ip = "127.0.0.2" if len(lookups) == 1 else "127.0.0.1"  # rebinding attempt
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer_ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    body = fetch(f"http://news.example:{server.port}/a.json", FetchPolicy())
    assert body == JSON_ARTICLE
    assert lookups == ["news.example"]
    assert server.requests == [("/a.json", f"news.example:{server.port}")]


def test_more_than_five_redirects_are_refused(serve: Callable[..., Server]) -> None:
    def loop(handler: BaseHTTPRequestHandler) -> None:
        redirect(f"/hop{len(server.requests)}")(handler)

    server = serve(loop)
    message = error_of(f"{server.base}/start", PRIVATE)
    assert message == f"{server.base}/start: cannot fetch: more than 5 redirects"
    assert len(server.requests) == 6


def test_a_redirect_to_another_scheme_is_refused(serve: Callable[..., Server]) -> None:
    server = serve(redirect("file:///etc/passwd"))
    assert "refused: redirected to a non-http(s) URL (file:)" in error_of(server.base, PRIVATE)


# --- limits (private addresses allowed: the test servers are local) -------------------------


def test_a_dripping_server_is_abandoned_at_the_deadline(serve: Callable[..., Server]) -> None:
    stop = threading.Event()

    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.flush()
        while not stop.is_set():
            handler.wfile.write(b"[")
            handler.wfile.flush()
            stop.wait(10)

    server = serve(drip)
    started = time.monotonic()
    try:
        message = error_of(f"{server.base}/feed.json", FetchPolicy(timeout_s=2, allow_private=True))
    finally:
        stop.set()
    elapsed = time.monotonic() - started
    assert message == (
        f"{server.base}/feed.json: cannot fetch: no complete answer within 2 s "
        "(NEWSLETTER_FETCH_TIMEOUT)"
    )
    assert 1.5 < elapsed < 4


def test_the_deadline_covers_every_read_not_each_one(serve: Callable[..., Server]) -> None:
    """A byte every 0.5 s would satisfy a per-read timeout for ever."""
    stop = threading.Event()

    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        while not stop.is_set():
            handler.wfile.write(b" ")
            handler.wfile.flush()
            stop.wait(0.5)

    server = serve(trickle)
    started = time.monotonic()
    try:
        message = error_of(server.base, FetchPolicy(timeout_s=2, allow_private=True))
    finally:
        stop.set()
    assert "no complete answer within 2 s" in message
    assert time.monotonic() - started < 4


@pytest.mark.parametrize("length", [True, False], ids=["announced", "streamed"])
def test_a_body_over_the_byte_limit_is_refused(serve: Callable[..., Server], length: bool) -> None:
    server = serve(answer(b"x" * 5000, length=length))
    message = error_of(f"{server.base}/big.json", FetchPolicy(max_bytes=4096, allow_private=True))
    assert message == (
        f"{server.base}/big.json: refused: larger than 4096 bytes (NEWSLETTER_FETCH_MAX_BYTES)"
    )


def test_a_body_within_the_limit_is_fetched(serve: Callable[..., Server]) -> None:
    server = serve(answer(JSON_ARTICLE))
    policy = FetchPolicy(max_bytes=len(JSON_ARTICLE), allow_private=True)
    assert fetch(f"{server.base}/a.json", policy) == JSON_ARTICLE


def test_redirects_within_the_allowed_network_are_followed(serve: Callable[..., Server]) -> None:
    target = serve(answer(JSON_ARTICLE))
    start = serve(redirect(f"{target.base}/a.json"))
    assert fetch(f"{start.base}/old.json", PRIVATE) == JSON_ARTICLE


# --- settings and the import path ------------------------------------------------------------


def test_the_policy_is_read_from_the_settings_environment() -> None:
    policy = FetchPolicy.from_env(
        {
            "NEWSLETTER_FETCH_TIMEOUT": "7",
            "NEWSLETTER_FETCH_MAX_BYTES": "1000",
            "NEWSLETTER_FETCH_ALLOW_PRIVATE": "1",
        }
    )
    assert policy == FetchPolicy(timeout_s=7, max_bytes=1000, allow_private=True)
    assert FetchPolicy.from_env({}) == FetchPolicy(
        timeout_s=60, max_bytes=50 * 1024 * 1024, allow_private=False
    )
    with pytest.raises(ConfigError, match="^NEWSLETTER_FETCH_TIMEOUT: expected a whole number"):
        FetchPolicy.from_env({"NEWSLETTER_FETCH_TIMEOUT": "soon"})


def test_import_refuses_a_private_url_and_imports_the_other_sources(
    sqlite_sessions: sessionmaker[Session],
    clock: FixedClock,
    serve: Callable[..., Server],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NEWSLETTER_FETCH_ALLOW_PRIVATE", raising=False)
    server = serve(answer(JSON_ARTICLE))
    local = tmp_path / "a.json"
    local.write_bytes(JSON_ARTICLE.replace(b'"j1"', b'"file-1"'))
    report = import_sources(sqlite_sessions, [f"{server.base}/a.json", str(local)], clock)
    assert report.imported == 1
    assert [m.split(" (")[0] for m in report.messages()] == [
        f"{server.base}/a.json: refused: private address: 127.0.0.1"
    ]
    assert server.requests == []


def test_the_cli_refuses_a_private_url_in_one_line_with_exit_65(
    tmp_path: Path, serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEWSLETTER_FETCH_ALLOW_PRIVATE", raising=False)
    server = serve(answer(JSON_ARTICLE))
    env = {
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}",
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_CONFIG": "",
    }
    assert CliRunner().invoke(cli, ["init"], env=env).exit_code == 0
    result = CliRunner().invoke(cli, ["articles", "import", f"{server.base}/a.json"], env=env)
    assert result.exit_code == 65
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {server.base}/a.json: refused: private address: ")
    allowed = CliRunner().invoke(
        cli,
        ["articles", "import", f"{server.base}/a.json"],
        env={**env, "NEWSLETTER_FETCH_ALLOW_PRIVATE": "1"},
    )
    assert allowed.exit_code == 0, allowed.output


def test_an_oversized_feed_entry_is_rejected_alone(
    sqlite_sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    def item(ident: str, summary: str) -> str:
        return (
            f"<item><title>{ident}</title><link>https://example.org/{ident}</link>"
            f"<guid>{ident}</guid><description>{summary}</description>"
            "<pubDate>Sat, 13 Jun 2026 06:00:00 +0900</pubDate></item>"
        )

    feed = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
        "<link>https://example.org/</link><description>d</description><language>en</language>"
        + item("small-1", "fine")
        + item("huge", "x" * (MAX_ENTRY_CHARS + 1))
        + item("small-2", "fine too")
        + "</channel></rss>"
    )
    path = tmp_path / "feed.xml"
    path.write_text(feed, encoding="utf-8")
    report = import_sources(sqlite_sessions, [str(path)], clock)
    assert (report.imported, report.rejected) == (2, 1)
    assert report.messages() == [
        f"{path}: article huge: (entry): too large: {MAX_ENTRY_CHARS + 5} characters of text, "
        f"the limit is {MAX_ENTRY_CHARS}"
    ]
