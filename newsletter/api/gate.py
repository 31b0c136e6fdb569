"""What every API request passes before a route: body cap, bearer token, rate limit and
`Idempotency-Key` replay. One ASGI middleware, so routes stay thin and none can forget a step.

Order: (1) a body announced or streaming past its cap is refused with 413; (2) the bearer
token is checked on every request (a revoked token fails at once: nothing is cached);
(3) the token's bucket is charged and `RateLimit` / `RateLimit-Policy` headers (IETF
httpapi-ratelimit-headers draft) go on every answer, 429 with `Retry-After` when empty;
(4) a POST with an `Idempotency-Key` is answered from `idempotency_keys` when it was seen
before with the same request, refused (422) when the key came with a different request, and
otherwise run once and its answer stored for 24 hours.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.accounts.actors import Actor
from newsletter.accounts.tokens import authenticate
from newsletter.db.models import IdempotencyKey
from newsletter.db.session import transaction
from newsletter.errors import AuthenticationError
from newsletter.runtime import Runtime

from .problems import problem

JSON_MAX_BYTES = 1024 * 1024  # every JSON body but the two bulk imports
PUBLIC_PATHS = frozenset({"/openapi.json"})
IDEMPOTENCY_TTL = timedelta(hours=24)
KEY_SHAPE = re.compile(r"[\x21-\x7e]{1,200}\Z")
POLICY = "token"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body larger than {limit} bytes", headers={"Connection": "close"}
        )


class RateLimiter:
    """Token bucket per principal: `per_minute` requests, refilled continuously.

    In-process: each server process keeps its own buckets (bounded, least recently seen
    forgotten first)."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_keys: int = 10_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(per_minute)
        self.per_s = per_minute / 60.0
        self._now = now
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds until the bucket is full again)."""
        with self._lock:
            now = self._now()
            tokens, last = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.per_s)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        reset = math.ceil((self.capacity - tokens) / self.per_s)
        return allowed, int(tokens), reset

    def headers(self, remaining: int, reset: int) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"{POLICY}";q={int(self.capacity)};w=60',
            "RateLimit": f'"{POLICY}";r={remaining};t={reset}',
        }


def body_limit(path: str, method: str, upload_max: int) -> int:
    if method == "POST" and path in ("/subscribers/import", "/articles"):
        return upload_max
    return JSON_MAX_BYTES


def _canonical(content_type: str, body: bytes) -> tuple[str, bytes]:
    """A multipart body with its random boundary taken out: a client that sends the same
    form again (with a new boundary) sends the same request."""
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "multipart/form-data":
        return content_type, body
    match = re.search(r'boundary="?([^";]+)"?', params)
    if match is None:
        return content_type, body
    return "multipart/form-data", body.replace(match.group(1).encode("latin-1"), b"BOUNDARY")


def request_hash(method: str, path: str, query: bytes, content_type: str, body: bytes) -> str:
    content_type, body = _canonical(content_type, body)
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, content_type.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class ApiGate:
    def __init__(self, app: ASGIApp, runtime: Runtime, limiter: RateLimiter) -> None:
        self.app = app
        self.runtime = runtime
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"]
        path = _route_path(scope)
        limit = body_limit(path, method, self.runtime.settings.api_upload_max_bytes)
        declared = headers.get("content-length", "").strip()
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            await problem(413, f"request body larger than {limit} bytes",
                          headers={"Connection": "close"})(scope, receive, send)  # fmt: skip
            return
        receive = _capped(receive, limit)
        if path in PUBLIC_PATHS and method in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return

        secret = _bearer(headers.get("authorization", ""))
        try:
            actor = await anyio.to_thread.run_sync(self._authenticate, secret)
        except AuthenticationError as err:
            client = scope.get("client") or ("unknown", 0)
            allowed, remaining, reset = self.limiter.take(f"ip:{client[0]}")
            extra = self.limiter.headers(remaining, reset)
            if not allowed:
                await self._too_many(scope, receive, send, extra, reset)
                return
            await problem(401, str(err), headers={
                **extra, "WWW-Authenticate": 'Bearer realm="newsletter api"'})(
                scope, receive, send)  # fmt: skip
            return
        allowed, remaining, reset = self.limiter.take(actor.name)
        extra = self.limiter.headers(remaining, reset)
        if not allowed:
            await self._too_many(scope, receive, send, extra, reset)
            return
        scope.setdefault("state", {})["actor"] = actor
        send = _with_headers(send, extra)

        key = headers.get("idempotency-key")
        if method == "POST" and key is not None and KEY_SHAPE.match(key):
            await self._idempotent(scope, receive, send, actor, key, path, headers)
            return
        await self.app(scope, receive, send)

    def _authenticate(self, secret: str | None) -> Actor:
        with transaction(self.runtime.sessions) as session:
            return authenticate(session, self.runtime.clock, secret)

    async def _too_many(
        self, scope: Scope, receive: Receive, send: Send, extra: dict[str, str], reset: int
    ) -> None:
        wait = max(1, math.ceil(1 / self.limiter.per_s))
        response = problem(
            429,
            f"more than {int(self.limiter.capacity)} requests a minute with this token; "
            f"try again in {wait} s",
            headers={**extra, "Retry-After": str(wait)},
        )
        await response(scope, receive, send)

    # --- Idempotency-Key ---------------------------------------------------------------------

    async def _idempotent(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        actor: Actor,
        key: str,
        path: str,
        headers: Headers,
    ) -> None:
        try:
            body = await _read_all(receive)
        except BodyTooLarge as err:
            await problem(413, str(err.detail), headers={"Connection": "close"})(
                scope, receive, send
            )
            return
        digest = request_hash(
            scope["method"], path, scope.get("query_string", b""),
            headers.get("content-type", ""), body,
        )  # fmt: skip
        claimed, stored = await anyio.to_thread.run_sync(
            self._claim, actor.name, key, scope["method"], path, digest
        )
        if not claimed:
            await self._answer_again(scope, receive, send, key, digest, stored)
            return
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": []}
        replay = _replay(body)

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))

        try:
            await self.app(scope, replay, capture)
        except BaseException:
            await anyio.to_thread.run_sync(self._forget, actor.name, key)
            raise
        status = captured["status"]
        content = b"".join(captured["body"])
        if status >= 500:
            await anyio.to_thread.run_sync(self._forget, actor.name, key)
        else:
            await anyio.to_thread.run_sync(self._store, actor.name, key, status, content)
        await send({"type": "http.response.start", "status": status,
                    "headers": captured["headers"]})  # fmt: skip
        await send({"type": "http.response.body", "body": content})

    def _claim(
        self, principal: str, key: str, method: str, path: str, digest: str
    ) -> tuple[bool, IdempotencyKey | None]:
        now = self.runtime.clock.now()
        sessions = self.runtime.sessions
        try:
            with transaction(sessions) as session:
                session.execute(
                    delete(IdempotencyKey).where(IdempotencyKey.created_at < now - IDEMPOTENCY_TTL)
                )
                session.add(
                    IdempotencyKey(principal=principal, key=key, method=method, path=path,
                                   request_hash=digest, created_at=now)
                )  # fmt: skip
                session.flush()
            return True, None
        except IntegrityError:
            with transaction(sessions) as session:
                row = session.scalar(
                    select(IdempotencyKey).where(
                        IdempotencyKey.principal == principal, IdempotencyKey.key == key
                    )
                )
                if row is not None:
                    session.expunge(row)
                return False, row

    def _store(self, principal: str, key: str, status: int, content: bytes) -> None:
        with transaction(self.runtime.sessions) as session:
            session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.principal == principal, IdempotencyKey.key == key)
                .values(status_code=status, response_body=content.decode("utf-8", "replace"))
            )

    def _forget(self, principal: str, key: str) -> None:
        with transaction(self.runtime.sessions) as session:
            session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.principal == principal, IdempotencyKey.key == key
                )
            )

    async def _answer_again(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: str,
        digest: str,
        stored: IdempotencyKey | None,
    ) -> None:
        if stored is None:  # deleted meanwhile (a failed first attempt): ask for a retry
            response = problem(409, f"Idempotency-Key {key!r}: the first request failed; "
                               "send it again", headers={"Retry-After": "1"})  # fmt: skip
        elif stored.request_hash != digest:
            response = problem(
                422,
                f"Idempotency-Key {key!r} was already used with a different request "
                f"({stored.method} {stored.path}); use a new key for a new request",
                errors=[{"field": "Idempotency-Key", "detail": "reused with a different request"}],
            )
        elif stored.status_code is None:
            response = problem(409, f"Idempotency-Key {key!r}: the first request with this key "
                               "is still running; try again shortly",
                               headers={"Retry-After": "1"})  # fmt: skip
        else:
            media = "application/problem+json" if stored.status_code >= 400 else "application/json"
            response = Response(
                (stored.response_body or "").encode("utf-8"),
                status_code=stored.status_code,
                media_type=media,
                headers={"Idempotent-Replayed": "true"},
            )
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path inside the API (after the /api/v1 mount)."""
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _capped(receive: Receive, limit: int) -> Receive:
    size = 0

    async def capped() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(limit)
        return message

    return capped


async def _read_all(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError  # unreachable

    return receive


def _with_headers(send: Send, extra: dict[str, str]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in extra.items():
                headers.setdefault(name, value)
        await send(message)

    return wrapped
