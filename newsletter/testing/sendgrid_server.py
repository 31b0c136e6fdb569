"""A local HTTP server that behaves like SendGrid v3 `POST /v3/mail/send`, for tests and benchmarks.

It checks the bearer key and validates each request against SendGrid's documented limits
(1..1000 personalizations, at most 1000 recipients, body under 30 MB, `substitutions` and
`custom_args` under 10,000 bytes per personalization, no address twice in one request, the
required fields), then answers like SendGrid: 202 with `X-Message-Id` (200 in sandbox mode),
400 with `{"errors": [{"message", "field", "help"}]}`, 401, and 413 with an HTML body.

A rate limit can be set like a provider's: a token bucket of `rate_limit` requests per second
holding at most `rate_burst` (default: a fifth of a second's worth, at least 1); a request
finding it empty is answered 429 at once, before any `latency`, with `Retry-After` the seconds
until the next token, as an API gateway in front of the service would.

Faults can be injected: a seeded random `fail_rate` of 429 (with `Retry-After`) / 500 / 503,
a `script` of statuses for the next requests, `latency` before each answer, addresses the
server declares invalid (`reject_addresses`), a `late_rate` of requests taken and answered only
after `late_after` seconds (past the client's timeout: the client cannot know they were sent),
and a `drop_rate` of requests read and then dropped with the connection, never taken.

Like SendGrid's Event Webhook, it can post signed `processed` events for every recipient it
took (`events_url`, signed with `events_key`, an ECDSA P-256 private key, after
`events_delay` seconds), carrying the request's `custom_args` at the top level of each event.
`GET /v3/scopes` answers the key's scopes (401 for a wrong key).

Across requests it counts unique recipients and duplicates by (custom_args.issue_id, address),
so a benchmark can prove nobody got mail twice.

`GET /_stats` returns the counters as JSON, `POST /_reset` clears them and the faults.

In-process: `with SendGridServer(api_key="k") as server: server.url, server.stats()`.
In a process of its own: `with ServerProcess.start("--fail-rate", "0.2") as server: ...`.
As a process: `python -m newsletter.testing.sendgrid_server --port 0 --fail-rate 0.2` prints
its URL on the first stdout line (the API key is `--api-key`, default `test-key`).
"""

from __future__ import annotations

import argparse
import random
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from newsletter.testing.process import spawn_announcing
from newsletter.testing.sendgrid_events import post_events_later
from newsletter.testing.sendgrid_validation import (
    MAX_REQUEST_BYTES,
    TOO_LARGE_HTML,
    error,
    validate_mail_send,
)


@dataclass
class Faults:
    """What the server does wrong, on purpose. Replaced as a whole by `configure`."""

    fail_rate: float = 0.0
    fail_statuses: tuple[int, ...] = (429, 500, 503)
    retry_after: float = 1.0
    latency: float = 0.0
    script: list[int] = field(default_factory=list)  # statuses for the next requests, in order
    reject_addresses: frozenset[str] = frozenset()
    max_request_bytes: int = MAX_REQUEST_BYTES
    seed: int = 0
    late_rate: float = 0.0  # taken, then answered after `late_after` seconds
    late_after: float = 0.0
    drop_rate: float = 0.0  # read, then the connection is closed: never taken
    events_url: str | None = None
    events_key: Any = None  # cryptography EllipticCurvePrivateKey
    events_delay: float = 0.0
    scopes: tuple[str, ...] = ("mail.send",)
    rate_limit: float = 0.0  # requests per second; 0 = none
    rate_burst: float | None = None  # bucket size; None = max(1, rate_limit / 5)


class _Bucket:
    """The server's request rate limit: a token bucket on the monotonic clock."""

    def __init__(self, rate: float, burst: float | None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 5)
        self.tokens = self.burst
        self.last = time.monotonic()

    def take(self) -> float | None:
        """None when a token was taken; else the seconds until one is there (caller's lock)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


class _State:
    """Counters and recorded requests, shared by the handler threads under one lock."""

    def __init__(self, api_key: str, keep_requests: bool) -> None:
        self.api_key = api_key
        self.keep_requests = keep_requests
        self.lock = threading.Lock()
        self.faults = Faults()
        self.random = random.Random(0)
        self.bucket: _Bucket | None = None
        self.reset()

    def reset(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: Counter[int] = Counter()
        self.accepted_requests = 0
        self.accepted_recipients = 0
        self.sandbox_recipients = 0
        self.duplicates = 0
        self.seen: set[tuple[str, str]] = set()
        self.connections = 0
        self.late = 0
        self.dropped = 0
        self.events_posted = 0
        self.events_failed = 0
        self.rate_limited = 0

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": sum(self.statuses.values()),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "accepted_requests": self.accepted_requests,
                "accepted_recipients": self.accepted_recipients,
                "unique_recipients": len(self.seen),
                "duplicates": self.duplicates,
                "sandbox_recipients": self.sandbox_recipients,
                "connections": self.connections,
                "late": self.late,
                "dropped": self.dropped,
                "events_posted": self.events_posted,
                "events_failed": self.events_failed,
                "rate_limited": self.rate_limited,
            }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: requests carry addresses."""

    def setup(self) -> None:
        super().setup()
        with self.server.state.lock:
            self.server.state.connections += 1

    def _answer(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _errors(self, status: int, errors: list[dict]) -> None:
        self._answer(status, orjson.dumps({"errors": errors}))

    def do_GET(self) -> None:
        state = self.server.state
        if self.path == "/_stats":
            self._answer(200, orjson.dumps(state.stats()))
        elif self.path == "/v3/scopes":
            if self.headers.get("Authorization") != f"Bearer {state.api_key}":
                self._errors(401, [error("authorization required")])
            else:
                self._answer(200, orjson.dumps({"scopes": list(state.faults.scopes)}))
        else:
            self._errors(404, [error("Not found")])

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        if self.path == "/_reset":
            self.rfile.read(length)
            with state.lock:
                state.reset()
                state.bucket = None
                state.faults = Faults()
            self._answer(200, b"{}")
            return
        if self.path != "/v3/mail/send":
            self.rfile.read(length)
            self._errors(404, [error("Not found")])
            return
        faults = state.faults
        body = self.rfile.read(length)
        if state.bucket is not None:
            with state.lock:
                wait = state.bucket.take()
                if wait is not None:
                    state.rate_limited += 1
            if wait is not None:
                self._count(429)
                self._rate_limited(wait)
                return
        if faults.latency:
            time.sleep(faults.latency)
        timing = self._choose_timing(state, faults)
        if timing == "drop":
            with state.lock:
                state.dropped += 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status = self._choose_fault(state, faults)
        if status is None and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            status = 401
        if status is None and length >= faults.max_request_bytes:
            status = 413
        if status is not None:
            self._fault(state, status, faults)
            return
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            self._count(400)
            self._errors(400, [error("Invalid JSON", None)])
            return
        errors = validate_mail_send(payload, faults.reject_addresses)
        if errors:
            self._count(400)
            self._errors(400, errors)
            return
        sandbox = bool(
            ((payload.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable")
        )
        message_id = secrets.token_urlsafe(16)
        self._record(state, payload, sandbox)
        if not sandbox and faults.events_url and faults.events_key is not None:
            post_events_later(state, faults, payload, message_id)
        if timing == "late":
            with state.lock:
                state.late += 1
            time.sleep(faults.late_after)  # the client gave up long ago; it was sent all the same
        self._answer(200 if sandbox else 202, b"", headers={"X-Message-Id": message_id})

    def _choose_timing(self, state: _State, faults: Faults) -> str | None:
        with state.lock:
            if faults.drop_rate and state.random.random() < faults.drop_rate:
                return "drop"
            if faults.late_rate and state.random.random() < faults.late_rate:
                return "late"
        return None

    def _choose_fault(self, state: _State, faults: Faults) -> int | None:
        with state.lock:
            if faults.script:
                return faults.script.pop(0) or None  # 0 in a script means "answer normally"
            if faults.fail_rate and state.random.random() < faults.fail_rate:
                return state.random.choice(faults.fail_statuses)
        return None

    def _fault(self, state: _State, status: int, faults: Faults) -> None:
        self._count(status)
        if status == 413:
            self._answer(413, TOO_LARGE_HTML, content_type="text/html")
        elif status == 400:
            self._errors(400, [error("scripted rejection", "personalizations")])
        elif status == 401:
            self._errors(
                401, [error("The provided authorization grant is invalid, expired, or revoked")]
            )
        elif status == 429:
            reset = str(int(time.time() + faults.retry_after))
            self._answer(
                429,
                orjson.dumps({"errors": [error("too many requests")]}),
                headers={"Retry-After": f"{faults.retry_after:g}", "X-RateLimit-Reset": reset},
            )
        else:
            self._errors(
                status, [error("Internal server error" if status < 503 else "Service unavailable")]
            )

    def _rate_limited(self, wait: float) -> None:
        reset = str(int(time.time() + wait) + 1)
        self._answer(
            429,
            orjson.dumps({"errors": [error("too many requests")]}),
            headers={"Retry-After": f"{wait:.3f}", "X-RateLimit-Reset": reset},
        )

    def _count(self, status: int) -> None:
        with self.server.state.lock:
            self.server.state.statuses[status] += 1

    def _record(self, state: _State, payload: dict, sandbox: bool) -> None:
        with state.lock:
            state.statuses[200 if sandbox else 202] += 1
            if state.keep_requests:
                state.requests.append(payload)
            count = len(payload["personalizations"])
            if sandbox:
                state.sandbox_recipients += count
                return
            state.accepted_requests += 1
            state.accepted_recipients += count
            for item in payload["personalizations"]:
                issue = str((item.get("custom_args") or {}).get("issue_id", ""))
                for person in item["to"]:
                    key = (issue, person["email"].lower())
                    if key in state.seen:
                        state.duplicates += 1
                    else:
                        state.seen.add(key)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        self.state = state
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (after its own timeout), or a connection this server dropped on
        purpose (the drop fault), is normal here, not an error."""
        if isinstance(sys.exc_info()[1], OSError):  # ConnectionError and ENOTCONN alike
            return
        super().handle_error(request, client_address)


class SendGridServer:
    """The server in a background thread: `.url`, `.stats()`, `.requests`, `.configure(...)`."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        host: str = "127.0.0.1",
        port: int = 0,
        keep_requests: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.api_key = api_key
        self._state = _State(api_key, keep_requests)
        self._server = _Server((host, port), self._state)
        self._scheme = "http"
        if ssl_context is not None:  # HTTPS, e.g. to measure what TLS handshakes cost
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"{self._scheme}://{host}:{port}"

    def start(self) -> SendGridServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SendGridServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        return self._state.stats()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every accepted request body, parsed (when `keep_requests`)."""
        with self._state.lock:
            return list(self._state.requests)

    def reset(self) -> None:
        with self._state.lock:
            self._state.reset()
            self._state.faults = Faults()
            self._state.bucket = None

    def configure(
        self,
        *,
        fail_rate: float = 0.0,
        fail_statuses: Iterable[int] = (429, 500, 503),
        retry_after: float = 1.0,
        latency: float = 0.0,
        script: Iterable[int] = (),
        reject_addresses: Iterable[str] = (),
        max_request_bytes: int = MAX_REQUEST_BYTES,
        seed: int = 0,
        late_rate: float = 0.0,
        late_after: float = 0.0,
        drop_rate: float = 0.0,
        events_url: str | None = None,
        events_key: Any = None,
        events_delay: float = 0.0,
        scopes: Iterable[str] = ("mail.send",),
        rate_limit: float = 0.0,
        rate_burst: float | None = None,
    ) -> None:
        """Replace the faults. `script` statuses answer the next requests (0 = answer normally);
        `rate_limit` requests per second (0: none), `rate_burst` the bucket's size."""
        faults = Faults(
            fail_rate=fail_rate,
            fail_statuses=tuple(fail_statuses),
            retry_after=retry_after,
            latency=latency,
            script=list(script),
            reject_addresses=frozenset(a.lower() for a in reject_addresses),
            max_request_bytes=max_request_bytes,
            seed=seed,
            late_rate=late_rate,
            late_after=late_after,
            drop_rate=drop_rate,
            events_url=events_url,
            events_key=events_key,
            events_delay=events_delay,
            scopes=tuple(scopes),
            rate_limit=rate_limit,
            rate_burst=rate_burst,
        )
        with self._state.lock:
            self._state.faults = faults
            self._state.random = random.Random(seed)
            self._state.bucket = _Bucket(rate_limit, rate_burst) if rate_limit > 0 else None


class ServerProcess:
    """The server in its own process (so a benchmark's client and server do not share a GIL).

    `ServerProcess.start("--fail-rate", "0.2")` -> `.url`, `.stats()`, `.stop()`.
    """

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    @classmethod
    def start(cls, *args: str, api_key: str = "test-key") -> ServerProcess:
        proc, url = spawn_announcing(
            __name__, ["--api-key", api_key, *args], "http", "SendGrid-compatible server"
        )
        return cls(proc, url)

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_stats", timeout=10) as response:
            return orjson.loads(response.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--fail-statuses", default="429,500,503", help="comma-separated")
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-requests", action="store_true", help="keep bodies in memory")
    parser.add_argument("--late-rate", type=float, default=0.0, help="taken, answered late")
    parser.add_argument("--late-after", type=float, default=0.0, help="seconds of lateness")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="dropped, never taken")
    parser.add_argument("--events-url", help="post signed `processed` events here")
    parser.add_argument("--events-key-file", help="PEM ECDSA P-256 private key for events")
    parser.add_argument("--events-delay", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=0.0, help="requests/s; 429 above")
    parser.add_argument("--rate-burst", type=float, help="token bucket size (default rate/5)")
    args = parser.parse_args(argv)
    events_key = None
    if args.events_key_file:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        with open(args.events_key_file, "rb") as handle:
            events_key = load_pem_private_key(handle.read(), password=None)
    server = SendGridServer(
        api_key=args.api_key, host=args.host, port=args.port, keep_requests=args.keep_requests
    )
    server.configure(
        fail_rate=args.fail_rate,
        fail_statuses=[int(s) for s in args.fail_statuses.split(",") if s.strip()],
        retry_after=args.retry_after,
        latency=args.latency,
        seed=args.seed,
        late_rate=args.late_rate,
        late_after=args.late_after,
        drop_rate=args.drop_rate,
        events_url=args.events_url,
        events_key=events_key,
        events_delay=args.events_delay,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
    )
    print(server.url, flush=True)
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=server._server.shutdown).start()
    )
    try:
        server._server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
