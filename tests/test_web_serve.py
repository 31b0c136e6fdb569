"""`newsletter serve`: uvicorn in its own process answers on 127.0.0.1; a bad setup is one line."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.config import Secret, load_settings
from newsletter.runtime import Runtime
from tests.fixtures.web import serve_process

SECRET = "test-secret-key-0123456789abcdef"


def _env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": sqlite_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_CONFIG": "",
    }


@pytest.mark.slow
def test_serve_answers_on_the_chosen_port(tmp_path: Path, sqlite_url: str) -> None:
    settings = load_settings({}, database_url=sqlite_url, secret_keys=(Secret(SECRET),))
    Runtime.open(settings, migrate=True).close()
    with serve_process(_env(tmp_path, sqlite_url), timeout=20) as (_server, base):
        response = httpx.get(f"{base}/subscribe", timeout=5)
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert "server" not in response.headers


def test_serve_refuses_an_uninitialised_database_in_one_line(
    tmp_path: Path, sqlite_url: str
) -> None:
    result = CliRunner().invoke(cli, ["serve"], env=_env(tmp_path, sqlite_url))
    assert result.exit_code == 69
    assert "newsletter init" in result.output


def test_serve_has_help() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "--workers" in result.output
