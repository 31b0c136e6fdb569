"""A real SMTP server (aiosmtpd) that keeps or counts what it receives, with error injection.

In tests: `with SmtpSink() as sink: ... sink.url, sink.messages, sink.stats()`. Injected faults
(Mailman's `ConnectionCountingController` idea): `refuse={"addr": "550 5.1.1 no such user"}`
answers RCPT for that address with the given reply; `data_replies={3: "451 4.3.0 try later"}`
answers the 3rd DATA with it; `drop_at={5}` cuts the connection when the 5th message's data
arrives, without a reply (the whole message was sent: the client cannot know it was not kept);
`drop_at_rcpt={"addr"}` cuts the connection at that address's RCPT (nothing was sent).
Connections are counted so tests can check reuse. The sink announces PIPELINING (aiosmtpd reads
pipelined commands in order); `SmtpSink(pipelining=False)` does not, for clients that must then
wait for each answer.

As a process, for benchmarks: `python -m newsletter.testing.smtp_sink --port 0 --count-only`
prints its `smtp://127.0.0.1:PORT?starttls=never` URL on the first stdout line and, on
SIGTERM/SIGINT, one JSON line of stats. `--count-only` runs the lean counting server of
`smtp_counter.py` (PIPELINING, ~10× cheaper than aiosmtpd); `--aiosmtpd --fast-data` counts
with aiosmtpd instead.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from newsletter.testing.process import spawn_announcing


@dataclass(frozen=True)
class SinkMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int  # 1-based number of the connection that carried it


@dataclass
class _Faults:
    refuse: dict[str, str] = field(default_factory=dict)
    data_replies: dict[int, str] = field(default_factory=dict)
    drop_at: set[int] = field(default_factory=set)
    drop_at_rcpt: set[str] = field(default_factory=set)


class SinkHandler:
    """aiosmtpd handler: counts, optionally stores, and answers with the configured faults."""

    def __init__(self, *, store: bool = True, pipelining: bool = True) -> None:
        self.store = store
        self.pipelining = pipelining
        self.faults = _Faults()
        self._lock = threading.Lock()
        self.messages: list[SinkMessage] = []
        self.connections = 0
        self.data_commands = 0
        self.accepted_messages = 0
        self.accepted_recipients = 0
        self.refused_recipients = 0

    def new_connection(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """aiosmtpd reads pipelined commands correctly but does not say so: announce
        PIPELINING (RFC 2920) unless the sink was made without it."""
        session.host_name = hostname  # what aiosmtpd does itself when there is no hook
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.faults.drop_at_rcpt:
            transport = server.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            return "421 4.3.0 connection dropped by the test sink"
        reply = self.faults.refuse.get(address.lower())
        if reply:
            with self._lock:
                self.refused_recipients += 1
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.data_commands += 1
            number = self.data_commands
        if number in self.faults.drop_at:
            transport = server.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()  # no reply, like a crashed or overloaded server
            return "421 4.3.0 connection dropped by the test sink"
        reply = self.faults.data_replies.get(number)
        if reply:
            return reply
        with self._lock:
            self.accepted_messages += 1
            self.accepted_recipients += len(envelope.rcpt_tos)
            if self.store:
                self.messages.append(
                    SinkMessage(
                        mail_from=str(envelope.mail_from),
                        rcpt_tos=tuple(envelope.rcpt_tos),
                        data=bytes(envelope.original_content or b""),
                        connection=getattr(server, "connection_number", 0),
                    )
                )
        return "250 2.0.0 OK queued"

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "connections": self.connections,
                "messages": self.accepted_messages,
                "recipients": self.accepted_recipients,
                "refused_recipients": self.refused_recipients,
                "data_commands": self.data_commands,
            }

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.faults = _Faults()
            self.connections = self.data_commands = 0
            self.accepted_messages = self.accepted_recipients = self.refused_recipients = 0


class _FastDataSMTP(SMTP):
    """aiosmtpd's server with a DATA phase that reads the body in large chunks.

    aiosmtpd reads DATA one line at a time (~2 us a line in Python); a 100 KB newsletter in
    quoted-printable has ~1,700 lines, so the sink, not the sender, would set a benchmark's
    pace. This reads until the final `CRLF . CRLF` and undoes dot-stuffing with one replace,
    and splits plain `<address>` arguments without the RFC 5322 parser. Commands, replies and
    handler hooks are aiosmtpd's own. Used only with `fast_data=True`;
    tests use the standard line parser, which also enforces the 998-octet line limit.
    """

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """`<addr> rest` split by hand; aiosmtpd's RFC 5322 parser costs ~50 us a command.

        Plain `<local@domain>` forms only (what our sender writes); anything else goes to
        aiosmtpd's own parser.
        """
        stripped = arg.lstrip()
        end = stripped.find(">")
        if stripped.startswith("<") and end > 0 and '"' not in stripped[:end]:
            return stripped[1:end], stripped[end + 1 :]
        return super()._getaddr(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = bytearray()
        while True:
            chunk = await self._reader.read(1 << 18)
            if not chunk:
                return  # the client went away mid-message
            data += chunk
            if data.startswith(b".\r\n"):  # an empty message
                end = 0
                break
            found = data.find(b"\r\n.\r\n")
            if found >= 0:
                end = found + 2  # the message keeps its last CRLF
                break
        # A pipelining client's next commands may have come in the same read: give them back
        # to the reader (asyncio.StreamReader's buffer) for the command loop.
        self._reader._buffer[:0] = data[end + 3 :]  # type: ignore[attr-defined]
        body = bytes(data[:end]).replace(b"\r\n..", b"\r\n.")
        if body.startswith(b".."):
            body = body[1:]
        if self.data_size_limit and len(body) > self.data_size_limit:
            self._set_post_data_state()
            await self.push("552 Error: Too much mail data")
            return
        self.envelope.content = body
        self.envelope.original_content = body
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)


class _CountingController(Controller):
    """Counts connections (the start-up probe excluded) and supports port 0."""

    def __init__(self, handler: SinkHandler, *, fast_data: bool = False, **kwargs: Any) -> None:
        self.fast_data = fast_data
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        server_class = _FastDataSMTP if self.fast_data else SMTP
        smtp = server_class(self.handler, **self.SMTP_kwargs)
        smtp.connection_number = self.handler.new_connection()  # type: ignore[attr-defined]
        return smtp

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """The sink running in a background thread of this process."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        store: bool = True,
        fast_data: bool = False,
        login: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        pipelining: bool = True,
    ) -> None:
        self.handler = SinkHandler(store=store, pipelining=pipelining)
        self.login = login
        self.tls = tls
        self.implicit_tls = implicit_tls and tls is not None
        auth: dict[str, Any] = {}
        if tls is not None and self.implicit_tls:  # smtps://: TLS from the first byte
            auth["ssl_context"] = tls
        elif tls is not None:  # STARTTLS offered and required before MAIL
            auth.update(tls_context=tls, require_starttls=True)
        if login is not None:  # AUTH PLAIN/LOGIN, also without TLS: a local test server only
            auth.update(authenticator=self._authenticate, auth_require_tls=False)
        self.controller = _CountingController(
            self.handler,
            fast_data=fast_data,
            **auth,
            hostname=host,
            port=port,
            enable_SMTPUTF8=True,
            data_size_limit=50 * 1024 * 1024,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        expected = self.login
        ok = (
            expected is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == expected
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        self.controller.start()
        self.handler.reset()  # forget the controller's start-up probe
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return str(self.controller.hostname)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def url(self) -> str:
        """An `NEWSLETTER_SMTP_URL` for this sink (add `&cafile=` when it speaks TLS)."""
        if self.implicit_tls:
            return f"smtps://{self.host}:{self.port}?timeout=10"
        if self.tls is not None:
            return f"smtp://{self.host}:{self.port}?starttls=require"
        return f"smtp://{self.host}:{self.port}?starttls=never"

    @property
    def messages(self) -> list[SinkMessage]:
        return list(self.handler.messages)

    def stats(self) -> dict[str, int]:
        return self.handler.stats()

    def reset(self) -> None:
        self.handler.reset()

    def configure(
        self,
        *,
        refuse: dict[str, str] | None = None,
        data_replies: dict[int, str] | None = None,
        drop_at: Iterable[int] = (),
        drop_at_rcpt: Iterable[str] = (),
    ) -> None:
        """Set the faults (replacing earlier ones); message numbers count from the last reset."""
        self.handler.faults = _Faults(
            refuse={k.lower(): v for k, v in (refuse or {}).items()},
            data_replies=dict(data_replies or {}),
            drop_at=set(drop_at),
            drop_at_rcpt={a.lower() for a in drop_at_rcpt},
        )


def self_signed_certificate(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throw-away certificate and key for `host` (an IP address), valid for one hour."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class SinkProcess:
    """The sink in its own process, for benchmarks: `.url`; `.stop()` returns its counters.

    `SinkProcess.start("--count-only", "--fast-data")`.
    """

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.final_stats: dict[str, Any] | None = None

    @classmethod
    def start(cls, *args: str) -> SinkProcess:
        proc, url = spawn_announcing(__name__, list(args), "smtp", "SMTP sink")
        return cls(proc, url)

    def stop(self) -> dict[str, Any]:
        """Stop the sink and return its final counts (connections, messages, ...)."""
        if self.final_stats is None:
            self.proc.send_signal(signal.SIGTERM)
            out, _ = self.proc.communicate(timeout=30)
            lines = out.strip().splitlines()
            self.final_stats = json.loads(lines[-1]) if lines else {}
        return self.final_stats

    def __enter__(self) -> SinkProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count-only", action="store_true", help="count, do not keep messages")
    parser.add_argument(
        "--fast-data", action="store_true", help="read DATA in chunks, not lines (benchmarks)"
    )
    parser.add_argument(
        "--aiosmtpd",
        action="store_true",
        help="count with aiosmtpd instead of the lean counting server (smtp_counter.py)",
    )
    args = parser.parse_args(argv)
    if args.count_only and not args.aiosmtpd:
        from newsletter.testing.smtp_counter import serve_counting

        stats = serve_counting(args.host, args.port, lambda url: print(url, flush=True))
        print(json.dumps(stats), flush=True)
        return 0
    sink = SmtpSink(
        host=args.host, port=args.port, store=not args.count_only, fast_data=args.fast_data
    ).start()
    print(sink.url, flush=True)
    done = threading.Event()

    def stop(*_: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not done.wait(0.2):
        pass
    sink.stop()
    print(json.dumps({"cpu_seconds": time.process_time(), **sink.stats()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
