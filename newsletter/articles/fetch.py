"""Downloading an article source (`articles import URL`) without letting the URL reach inside.

An import URL comes from outside (a feed list, an editor's paste), so by default only public
http(s) addresses are fetched. The check runs on the address actually connected to: the
network backend under httpx resolves the host itself, refuses any private, loopback,
link-local, CGNAT, multicast, reserved or unspecified address (IPv4-mapped, 6to4, Teredo and
NAT64 forms included, so 169.254.169.254 cannot hide), and connects to the vetted IP, while
TLS and the Host header keep the name. A DNS answer that changes between check and connect
(rebinding) therefore changes nothing. Redirects are followed by hand, at most five, and every
hop goes through the same check; a refused host is never connected to, so the error is the
same whether anything listens there or not.

One deadline covers the whole fetch (DNS, connect, TLS, every read, every redirect), not each
read, so a server that drips a byte at a time is abandoned on time; the body is counted while
it streams and refused once it passes the byte limit. `NEWSLETTER_FETCH_ALLOW_PRIVATE=1` opts
in to private addresses for a trusted intranet feed.
"""

from __future__ import annotations

import io
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import certifi
import httpcore
import httpx

from newsletter.config import _bool, _int_range, _read_toml
from newsletter.errors import ValidationError

TIMEOUT_ENV = "NEWSLETTER_FETCH_TIMEOUT"
MAX_BYTES_ENV = "NEWSLETTER_FETCH_MAX_BYTES"
ALLOW_PRIVATE_ENV = "NEWSLETTER_FETCH_ALLOW_PRIVATE"
DEFAULT_TIMEOUT_S = 60
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
MAX_REDIRECTS = 5
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_USER_AGENT = "ainippo-newsletter (article import)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """How far an import URL may reach: overall deadline, body size, private addresses."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    max_bytes: int = DEFAULT_MAX_BYTES
    allow_private: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FetchPolicy:
        """Read like every other setting: environment first, then the TOML file."""
        environ = dict(os.environ if env is None else env)
        merged = {**_read_toml(environ), **environ}

        def value(name: str) -> str | None:
            raw = merged.get(name)
            return raw if raw not in (None, "") else None

        timeout = value(TIMEOUT_ENV)
        size = value(MAX_BYTES_ENV)
        private = value(ALLOW_PRIVATE_ENV)
        return cls(
            timeout_s=_int_range(1, 3600)(timeout, TIMEOUT_ENV) if timeout else DEFAULT_TIMEOUT_S,
            max_bytes=_int_range(1, 2**40)(size, MAX_BYTES_ENV) if size else DEFAULT_MAX_BYTES,
            allow_private=_bool(private, ALLOW_PRIVATE_ENV) if private else False,
        )


class RefusedAddress(Exception):
    """The host resolves to an address an import may not reach; nothing was connected."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.host = host


def non_public(address: IPAddress) -> bool:
    """True for every address that is not plainly on the public internet."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and non_public(embedded):
            return True
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


class _Deadline:
    """The time left for the whole fetch; every network wait is cut to it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return self._end - time.monotonic()

    def clamp(self, timeout: float | None, error: type[Exception]) -> float:
        left = self.left()
        if left <= 0:
            raise error(f"no complete answer within {self.seconds:g} s")
        return left if timeout is None else min(timeout, left)


def _resolve(host: str, port: int, deadline: _Deadline) -> list[IPAddress]:
    """The host's addresses, within the deadline (getaddrinfo itself cannot be interrupted)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    result: list[Any] = []

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as err:
            result.append(err)

    worker = threading.Thread(target=lookup, name="fetch-dns", daemon=True)
    worker.start()
    worker.join(deadline.clamp(None, httpcore.ConnectTimeout))
    if not result:
        raise httpcore.ConnectTimeout(f"no DNS answer within {deadline.seconds:g} s")
    if isinstance(result[0], OSError):
        raise httpcore.ConnectError(f"cannot resolve {host}: {result[0]}")
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in result[0]:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the fetch has left."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, wait), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _VettedBackend(httpcore.NetworkBackend):
    """Resolves, vets and connects to the vetted IP itself, so the check is the connection."""

    def __init__(self, deadline: _Deadline, *, allow_private: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port, self._deadline)
        if not self._allow_private and any(non_public(a) for a in addresses):
            raise RefusedAddress(host)
        error: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=self._deadline.clamp(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as err:
                error = err
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("import URLs never use Unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _VettedTransport(httpx.HTTPTransport):
    """httpx's own transport (request mapping, error mapping) over the vetting backend."""

    def __init__(self, deadline: _Deadline, *, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl.create_default_context(cafile=certifi.where()),
            max_connections=1,
            network_backend=_VettedBackend(deadline, allow_private=allow_private),
        )


def fetch(url: str, policy: FetchPolicy, *, transport: httpx.BaseTransport | None = None) -> bytes:
    """The body at `url` under `policy`; ValidationError (one line naming the URL) otherwise.

    `transport` replaces the network for tests (no address vetting then).
    """
    deadline = _Deadline(policy.timeout_s)
    if transport is None:
        transport = _VettedTransport(deadline, allow_private=policy.allow_private)
    current = httpx.URL(url)
    try:
        with httpx.Client(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=policy.timeout_s,
            headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
        ) as client:
            for _hop in range(MAX_REDIRECTS + 1):
                if current.scheme not in ("http", "https"):
                    raise ValidationError(
                        f"{url}: refused: redirected to a non-http(s) URL ({current.scheme}:)"
                    )
                with client.stream("GET", current) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = current.join(response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise ValidationError(f"{url}: cannot fetch: HTTP {response.status_code}")
                    return _read_limited(response, url, policy.max_bytes)
            raise ValidationError(f"{url}: cannot fetch: more than {MAX_REDIRECTS} redirects")
    except RefusedAddress as err:
        raise ValidationError(
            f"{url}: refused: private address: {err.host} (only public addresses are "
            f"fetched; {ALLOW_PRIVATE_ENV}=1 allows a trusted intranet source)"
        ) from None
    except httpx.TimeoutException:
        raise ValidationError(
            f"{url}: cannot fetch: no complete answer within {policy.timeout_s:g} s ({TIMEOUT_ENV})"
        ) from None
    except httpx.HTTPError as err:
        detail = " ".join(str(err).split()) or type(err).__name__
        raise ValidationError(f"{url}: cannot fetch: {detail}") from None


def _read_limited(response: httpx.Response, url: str, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (announced or streamed)."""
    too_large = ValidationError(f"{url}: refused: larger than {limit} bytes ({MAX_BYTES_ENV})")
    announced = response.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise too_large
    body = io.BytesIO()
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise too_large
        body.write(chunk)
    return body.getvalue()  # BytesIO hands over its buffer: no second copy of the body
