"""`newsletter serve`: uvicorn in its own process answers on 127.0.0.1; a bad setup is one line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.config import Secret, load_settings
from newsletter.runtime import Runtime
from tests.fixtures.web import free_port

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
    port = free_port()
    command = [sys.executable, "-c", "from newsletter.cli.main import main; main()"]
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        env=_env(tmp_path, sqlite_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.headers["x-frame-options"] == "DENY"
        assert "server" not in response.headers
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_serve_refuses_an_uninitialised_database_in_one_line(
    tmp_path: Path, sqlite_url: str
) -> None:
    result = CliRunner().invoke(cli, ["serve"], env=_env(tmp_path, sqlite_url))
    assert result.exit_code == 69
    assert "newsletter init" in result.output


def test_serve_has_help() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "--workers" in result.output
