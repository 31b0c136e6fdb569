"""Sign-up answers take the same time for every address: the confirmation goes out afterwards.

Measured as the visitor sees it, against the app under a real uvicorn (Starlette's TestClient
runs background tasks before it returns, so it cannot show the difference).
"""

from __future__ import annotations

import re
import statistics
import time

import httpx
import pytest

from newsletter.clock import FixedClock
from newsletter.db.models import Suppression
from newsletter.db.session import transaction
from newsletter.runtime import Runtime
from newsletter.testing.memory_provider import MemoryProvider, accept
from newsletter.web import create_app
from newsletter.web.security import CsrfSigner, RateLimiter
from subscribers.hashing import EmailHasher
from tests.fixtures.web import add_list, add_subscriber, free_port, live_server

PROVIDER_LATENCY_S = 0.3
SIGNUPS = 20
ACTIVE = "active.reader@example.com"


def _sign_up(client: httpx.Client, email: str) -> tuple[float, httpx.Response]:
    """GET the form (not timed), then POST it; the seconds the POST took as the client saw."""
    form = client.get("/subscribe", headers={"Accept-Language": "en"})
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    nonce = re.search(rf"{CsrfSigner.COOKIE}=([^;]+)", form.headers["set-cookie"])
    assert csrf and nonce
    data = {"csrf": csrf.group(1), "email": email, "language": "en", "consent": "yes"}
    time.sleep(0.05)  # let the previous sign-up's background work get off the CPU
    started = time.perf_counter()
    response = client.post(
        "/subscribe",
        data=data,
        headers={"Accept-Language": "en", "Cookie": f"{CsrfSigner.COOKIE}={nonce.group(1)}"},
    )
    return time.perf_counter() - started, response


@pytest.mark.slow
def test_new_and_active_addresses_get_the_same_answer_in_the_same_time(
    web_runtime: Runtime, clock: FixedClock
) -> None:
    with transaction(web_runtime.sessions) as session:
        list_id = add_list(session, clock)
        add_subscriber(session, clock, ACTIVE, list_id)
        add_subscriber(session, clock, "pending.reader@example.com", list_id, status="pending")
        add_subscriber(session, clock, "bounced.reader@example.com", list_id)
        session.add(
            Suppression(
                email_hash=EmailHasher.load(session)("bounced.reader@example.com"),
                reason="bounced",
                source="webhook",
                created_at=clock.now(),
            )
        )
    provider = MemoryProvider(default=accept(latency_s=PROVIDER_LATENCY_S))
    app = create_app(web_runtime, signup_limiter=RateLimiter(capacity=1000, per_s=1000.0))
    app.state.web._provider = provider
    new_addresses = [f"new.reader{n}@example.com" for n in range(SIGNUPS)]
    with (
        live_server(web_runtime, free_port(), app) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        _sign_up(client, "warm.up@example.com")  # first-use costs (templates, pools)
        times: dict[str, list[float]] = {"active": [], "new": []}
        bodies: set[bytes] = set()
        for new in new_addresses:  # interleaved, so both see the same machine
            for kind, email in (("active", ACTIVE), ("new", new)):
                seconds, response = _sign_up(client, email)
                assert response.status_code == 200
                times[kind].append(seconds)
                bodies.add(response.content)
        for email in ("pending.reader@example.com", "bounced.reader@example.com"):
            bodies.add(_sign_up(client, email)[1].content)

        deadline = time.monotonic() + 30  # the confirmations still go out, afterwards
        while sum(provider.delivered.values()) < SIGNUPS + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    active, new = statistics.median(times["active"]), statistics.median(times["new"])
    print(f"sign-up answer, median: active {active * 1000:.1f} ms, new {new * 1000:.1f} ms")
    assert abs(new - active) / min(new, active) < 0.2
    assert len(bodies) == 1  # new, active, pending and suppressed: the same bytes
    # Mailed: every new address and the pending one, once each; never active or suppressed.
    assert set(provider.delivered) == {
        *new_addresses,
        "warm.up@example.com",
        "pending.reader@example.com",
    }
    assert provider.duplicates == 0
