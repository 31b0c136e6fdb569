"""What `newsletter serve` prints: the URLs it serves, and a warning for a foreign base URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from newsletter.cli.main import cli
from newsletter.config import Secret, load_settings
from newsletter.runtime import Runtime
from newsletter.web import create_app
from newsletter.web.serving import base_url_warning, served_urls


def test_the_app_announces_home_archive_and_webhook(web_runtime: Runtime) -> None:
    urls = served_urls(create_app(web_runtime), "127.0.0.1", 8000)
    assert urls[0] == ("home", "http://127.0.0.1:8000/")
    assert urls[1] == ("archive", "http://127.0.0.1:8000/issues/")
    assert urls[-1] == ("webhook", "http://127.0.0.1:8000/webhooks/sendgrid")


def test_the_desk_is_announced_only_when_the_app_has_it() -> None:
    async def page(request: object) -> PlainTextResponse:
        return PlainTextResponse("")

    without = Starlette(routes=[Route("/", page)])
    with_desk = Starlette(routes=[Route("/", page), Mount("/desk", routes=[Route("/", page)])])
    assert [label for label, _ in served_urls(without, "127.0.0.1", 8000)] == ["home"]
    assert served_urls(with_desk, "127.0.0.1", 8000)[-1] == ("desk", "http://127.0.0.1:8000/desk/")


@pytest.mark.parametrize(
    ("base_url", "host", "port"),
    [
        ("http://localhost:8000", "127.0.0.1", 8000),
        ("http://127.0.0.1:8000", "127.0.0.1", 8000),
        ("http://news.local:8080", "0.0.0.0", 8080),
        ("http://news.local", "news.local", 80),
    ],
)
def test_a_base_url_that_is_this_server_gets_no_warning(
    base_url: str, host: str, port: int
) -> None:
    assert base_url_warning(base_url, host, port) is None


@pytest.mark.parametrize(
    ("base_url", "host", "port"),
    [
        ("http://localhost:8000", "127.0.0.1", 9000),
        ("https://news.example.com", "127.0.0.1", 8000),
        ("http://news.example.com:8000", "127.0.0.1", 8000),
    ],
)
def test_a_base_url_elsewhere_is_named_in_the_warning(base_url: str, host: str, port: int) -> None:
    warning = base_url_warning(base_url, host, port)
    assert warning is not None and base_url in warning and f":{port}" in warning


def test_serve_prints_its_urls_and_the_warning_before_starting(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "test-secret-key-0123456789abcdef"
    settings = load_settings({}, database_url=sqlite_url, secret_keys=(Secret(secret),))
    Runtime.open(settings, migrate=True).close()
    started: list[dict[str, object]] = []
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: started.append(kwargs))
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": sqlite_url,
        "NEWSLETTER_SECRET_KEY": secret,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_CONFIG": "",
        "NEWSLETTER_BASE_URL": "https://news.example.com",
    }
    result = CliRunner().invoke(cli, ["serve", "--port", "8123"], env=env)
    assert result.exit_code == 0, result.output
    assert "home:     http://127.0.0.1:8123/\n" in result.stdout
    assert "archive:  http://127.0.0.1:8123/issues/\n" in result.stdout
    assert "webhook:  http://127.0.0.1:8123/webhooks/sendgrid\n" in result.stdout
    assert "warning: NEWSLETTER_BASE_URL is https://news.example.com" in result.stderr
    assert started and started[0]["port"] == 8123
