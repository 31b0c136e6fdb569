"""Request bodies are capped while they stream in: 413 before any parsing, whatever the headers."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from newsletter.config import Secret, load_settings
from newsletter.runtime import Runtime
from newsletter.web.bodies import FORM_MAX_BYTES
from subscribers.tokens import LinkSigner
from tests.fixtures.web import Seeded, make_webhook_key, serve_process

SECRET = "test-secret-key-0123456789abcdef"
MB = 1024 * 1024


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body produced lazily, so the client never holds it: sent chunked, no Content-Length."""
    block = b"[" + b" " * (size - 1)
    for _ in range(total // size):
        yield block


def _paths(web_client: TestClient, web_seed: Seeded) -> list[str]:
    token = LinkSigner(web_client.app.state.web.settings).token(  # type: ignore[attr-defined]
        web_seed.subscriber_id, web_seed.list_id
    )
    return ["/subscribe", f"/p/{token}", f"/u/{token}"]


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_every_form_endpoint_refuses_an_announced_oversized_body(
    web_client: TestClient, web_seed: Seeded
) -> None:
    body = b"List-Unsubscribe=One-Click&x=" + b"a" * FORM_MAX_BYTES
    for path in _paths(web_client, web_seed):
        response = web_client.post(path, content=body, headers=FORM)
        assert response.status_code == 413, path


def test_every_form_endpoint_refuses_an_oversized_chunked_body(
    web_client: TestClient, web_seed: Seeded
) -> None:
    for path in _paths(web_client, web_seed):
        response = web_client.post(path, content=_chunks(4 * MB), headers=FORM)
        assert response.status_code == 413, path
        assert response.headers["connection"] == "close"


def test_the_webhook_refuses_an_announced_oversized_body_before_checking_anything(
    web_client: TestClient,
) -> None:
    limit = web_client.app.state.web.settings.webhook_max_bytes  # type: ignore[attr-defined]
    response = web_client.post(
        "/webhooks/sendgrid", content=b"[" + b" " * limit + b"]", headers={"X-Any": "unsigned"}
    )
    assert response.status_code == 413
    assert response.json() == {"error": f"request body larger than {limit} bytes"}


def test_no_route_reads_a_body_except_through_the_capped_reader() -> None:
    web = Path(__file__).resolve().parents[1] / "newsletter" / "web"
    offenders = [
        f"{path.name}: {match.group(0)}"
        for path in sorted(web.glob("*.py"))
        if path.name != "bodies.py"
        for match in re.finditer(
            r"request\.(body|form|json|stream)\(", path.read_text(encoding="utf-8")
        )
    ]
    assert offenders == []


def _memory_kb(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_500_mb_chunked_webhook_body_is_refused_without_the_server_growing(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = load_settings({}, database_url=sqlite_url, secret_keys=(Secret(SECRET),))
    Runtime.open(settings, migrate=True).close()
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": sqlite_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": make_webhook_key().public_b64,
        "NEWSLETTER_CONFIG": "",
    }
    with serve_process(env, cwd=tmp_path, timeout=20) as (server, url):
        # Warm up the webhook route, then reset the peak RSS so only this request counts.
        assert httpx.post(f"{url}/webhooks/sendgrid", content=b"[]").status_code == 403
        Path(f"/proc/{server.pid}/clear_refs").write_text("5", encoding="ascii")
        before = _memory_kb(server.pid, "VmRSS")

        started = time.monotonic()
        response = httpx.post(
            f"{url}/webhooks/sendgrid",
            content=_chunks(500 * MB, 1 * MB),
            headers={"Content-Type": "application/json"},
            timeout=20,
        )
        elapsed = time.monotonic() - started
        peak = _memory_kb(server.pid, "VmHWM")
        assert response.status_code == 413
        assert response.request.headers.get("transfer-encoding") == "chunked"
        growth_mb = (peak - before) / 1024
        print(f"500 MB chunked body: 413 after {elapsed:.2f} s, peak RSS +{growth_mb:.1f} MB")
        assert growth_mb < 20
        assert elapsed < 20
        assert server.poll() is None  # still serving
        assert httpx.get(f"{url}/healthz", timeout=5).text == "ok"
