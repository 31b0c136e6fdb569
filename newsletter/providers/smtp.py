"""The SMTP provider: a pool of persistent connections, one transaction per recipient.

`NEWSLETTER_SMTP_URL` names the server: `smtp://user:pass@host:587` (STARTTLS when offered),
`smtp://...?starttls=require` (refuse to send in clear), `smtp://...?starttls=never` (local
relays), `smtps://user:pass@host:465` (implicit TLS). Query options: `pool` (connections,
default NEWSLETTER_SEND_CONCURRENCY), `recycle` (messages per connection before it is renewed,
default 1000), `timeout` (seconds, default 30), `helo` (EHLO name, default the From domain),
`cafile` (PEM file of the CA that signed a private relay's certificate; certificates are
always verified).

smtplib opens each connection (greeting, EHLO, STARTTLS, AUTH); the transactions are our own
writes and reply reads on its socket, pipelined when the server announces PIPELINING (RFC 2920:
a message, its end of data and the next envelope in one write). Connections are kept open and
reused across batches; a connection is dropped on any error
and renewed after `recycle` messages (Mailman's `Connection` does the same). Outcomes follow
Mailman's rules: 2xx accepted; codes >= 500 except 552 are permanent (`failed`); 4xx and 552
are transient (`deferred`); a connection dropped before the end of DATA defers the message in
flight; one dropped after it (the whole message sent, the answer lost) leaves that message
`in_doubt`: the server may have queued it, so it is never sent again on a guess. The rest of
the batch continues on a fresh connection (or is deferred if none can be opened).
"""

from __future__ import annotations

import smtplib
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.config import Secret, Settings
from newsletter.errors import (
    ConfigError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from newsletter.providers.base import Batch, BatchResult, Recipient
from newsletter.providers.dkim_sign import DkimSigner, make_signer
from newsletter.providers.mime import (
    MimeTemplate,
    address_problem,
    template_for,
    transport_address,
)
from newsletter.providers.redact import mask_email

_ENV = "NEWSLETTER_SMTP_URL"
_STARTTLS_MODES = ("auto", "require", "never")


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to connect; parsed once from the URL. The password never prints."""

    host: str
    port: int
    username: str | None = None
    password: Secret | None = None
    implicit_tls: bool = False
    starttls: str = "auto"
    pool_size: int = 4
    recycle_after: int = 1000
    timeout: float = 30.0
    helo: str | None = None
    cafile: str | None = None

    def tls_context(self) -> ssl.SSLContext:
        """Verifying context: the system's CAs, or `cafile` for a private relay."""
        return ssl.create_default_context(cafile=self.cafile)

    def describe(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{self.host}:{self.port}"


def parse_smtp_url(
    url: str, *, default_pool: int = 4, default_helo: str | None = None
) -> SmtpTarget:
    """Read `smtp[s]://[user:pass@]host[:port][?pool=&recycle=&timeout=&starttls=&helo=&cafile=]`."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(f"{_ENV}: expected smtp://[user:pass@]host[:port] or smtps://...")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"pool", "recycle", "timeout", "starttls", "helo", "cafile"}
    if unknown:
        raise ConfigError(f"{_ENV}: unknown option(s) {', '.join(sorted(unknown))}")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
        pool = int(query.get("pool", default_pool))
        recycle = int(query.get("recycle", 1000))
        timeout = float(query.get("timeout", 30))
    except ValueError as err:
        raise ConfigError(
            f"{_ENV}: port, pool, recycle and timeout must be numbers ({err})"
        ) from None
    if not 1 <= pool <= 64 or recycle < 1 or timeout <= 0:
        raise ConfigError(f"{_ENV}: expected pool 1-64, recycle >= 1, timeout > 0")
    starttls = query.get("starttls", "auto").lower()
    if starttls not in _STARTTLS_MODES:
        raise ConfigError(f"{_ENV}: starttls must be one of {', '.join(_STARTTLS_MODES)}")
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=Secret(unquote(parts.password)) if parts.password else None,
        implicit_tls=parts.scheme == "smtps",
        starttls=starttls,
        pool_size=pool,
        recycle_after=recycle,
        timeout=timeout,
        helo=query.get("helo") or default_helo,
        cafile=query.get("cafile") or None,
    )


def classify_smtp_code(code: int) -> str:
    """`accepted`, `failed` (permanent) or `deferred` (transient), by Mailman's rules."""
    if 200 <= code < 300:
        return "accepted"
    if code >= 500 and code != 552:
        return "failed"
    return "deferred"


_REPLY_LINE_MAX = 8192  # octets of one reply line we read before calling the reply malformed


class _Lost(Exception):
    """The connection failed: closed, reset, timed out, or a reply we cannot read."""


class _WriteFailed(_Lost):
    def __init__(self, written: int, err: BaseException) -> None:
        super().__init__(f"{type(err).__name__}: {err}")
        self.written = written  # octets handed to the kernel before the error


class _Connection:
    """One SMTP connection: smtplib did the greeting, EHLO, STARTTLS and AUTH; transactions
    are our own writes and reply reads on its socket (smtplib's NOOP/QUIT share the reader)."""

    __slots__ = ("smtp", "sent", "_sock", "_file", "_plain", "pipelining", "eightbit", "utf8")

    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp
        self.sent = 0
        self._sock = smtp.sock
        if smtp.file is None:
            smtp.file = smtp.sock.makefile("rb")
        self._file = smtp.file
        # sendmsg writes the message and the commands after it without joining them;
        # an SSL socket has no sendmsg.
        self._plain = not isinstance(smtp.sock, ssl.SSLSocket)
        self.pipelining = smtp.has_extn("pipelining")
        self.eightbit = smtp.has_extn("8bitmime")
        self.utf8 = smtp.has_extn("smtputf8")

    @property
    def alive(self) -> bool:
        return self.smtp.sock is not None

    def write(self, pieces: list[bytes]) -> None:
        """Write every piece in order; `_WriteFailed` says how many octets went out first."""
        sock = self._sock
        written = 0
        try:
            if self._plain:
                while pieces:
                    count = sock.sendmsg(pieces)
                    written += count
                    while pieces and count >= len(pieces[0]):
                        count -= len(pieces[0])
                        pieces = pieces[1:]
                    if count:
                        pieces = [memoryview(pieces[0])[count:], *pieces[1:]]
            else:
                view = memoryview(b"".join(pieces))
                while written < len(view):
                    written += sock.send(view[written:])
        except (OSError, AttributeError) as err:  # AttributeError: the socket was closed
            raise _WriteFailed(written, err) from None

    def reply(self) -> tuple[int, str]:
        """One reply (all lines of a multi-line one): (code, text)."""
        lines: list[bytes] = []
        try:
            while True:
                line = self._file.readline(_REPLY_LINE_MAX + 1)
                if not line:
                    raise _Lost("the server closed the connection")
                if len(line) > _REPLY_LINE_MAX or not line[:3].isdigit():
                    raise _Lost(f"malformed reply {line[:40]!r}")
                more = line[3:4] == b"-"
                if not more and line[3:4] not in (b" ", b"\r", b"\n", b""):
                    raise _Lost(f"malformed reply {line[:40]!r}")
                lines.append(line[4:].strip())
                if not more:
                    text = b" ".join(lines).decode("utf-8", "replace")
                    return int(line[:3]), text
        except (OSError, ValueError, AttributeError) as err:
            raise _Lost(f"{type(err).__name__}: {err}") from None

    def noop_ok(self) -> bool:
        try:
            self.write([b"NOOP\r\n"])
            return self.reply()[0] == 250
        except _Lost:
            return False

    def close(self) -> None:
        try:
            if self.alive:
                self.smtp.quit()
        except (smtplib.SMTPException, OSError, ValueError):
            pass
        finally:
            self.smtp.close()


class SmtpPool:
    """At most `pool_size` open connections, shared by threads; idle ones are reused."""

    def __init__(self, target: SmtpTarget) -> None:
        self.target = target
        self._slots = threading.BoundedSemaphore(target.pool_size)
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
        self._closed = False
        self.opened = 0  # connections opened so far (for tests and metrics)

    def connect(self) -> _Connection:
        """A new connection, TLS and login done. Raises ProviderError subclasses only."""
        target = self.target
        where = target.describe()
        try:
            if target.implicit_tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    target.host,
                    target.port,
                    local_hostname=target.helo,
                    timeout=target.timeout,
                    context=target.tls_context(),
                )
            else:
                smtp = smtplib.SMTP(
                    target.host, target.port, local_hostname=target.helo, timeout=target.timeout
                )
            smtp.ehlo()
            if not target.implicit_tls and target.starttls != "never":
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=target.tls_context())
                    smtp.ehlo()
                elif target.starttls == "require":
                    smtp.close()
                    raise PermanentProviderError(
                        f"SMTP {where} does not offer STARTTLS and {_ENV} says starttls=require"
                    )
            if target.username and target.password:
                smtp.login(target.username, target.password.reveal())
        except smtplib.SMTPAuthenticationError as err:
            raise PermanentProviderError(
                f"SMTP {where}: login refused ({err.smtp_code})", status=err.smtp_code
            ) from None
        except ssl.SSLCertVerificationError as err:  # retrying will not make it trusted
            raise PermanentProviderError(
                f"SMTP {where}: certificate not trusted ({err.verify_message}); "
                f"set cafile= in {_ENV} for a private CA"
            ) from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as err:
            raise TransientProviderError(f"SMTP {where}: cannot connect: {err}") from None
        with self._lock:
            self.opened += 1
        return _Connection(smtp)

    @contextmanager
    def slot(self) -> Iterator[_ConnectionHolder]:
        """Hold one of the pool's slots; the holder opens/reuses a connection on demand."""
        self._slots.acquire()
        holder = _ConnectionHolder(self)
        try:
            yield holder
        finally:
            holder.release()
            self._slots.release()

    def take_idle(self) -> _Connection | None:
        """An idle connection that still answers NOOP (servers close idle ones), or None."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if conn.alive and conn.noop_ok():
                return conn
            conn.close()

    def give_back(self, conn: _Connection) -> None:
        if conn.alive and conn.sent < self.target.recycle_after:
            with self._lock:
                if not self._closed:
                    self._idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _ConnectionHolder:
    """One thread's connection for one batch: reused, or replaced when it breaks."""

    def __init__(self, pool: SmtpPool) -> None:
        self._pool = pool
        self.conn: _Connection | None = None

    def get(self) -> _Connection:
        if self.conn is None or not self.conn.alive:
            self.conn = self._pool.take_idle() or self._pool.connect()
        elif self.conn.sent >= self._pool.target.recycle_after:
            self.conn.close()
            self.conn = self._pool.connect()
        return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def release(self) -> None:
        if self.conn is not None:
            self._pool.give_back(self.conn)
            self.conn = None


class SmtpProvider:
    """Sends each recipient their own message over pooled connections. Thread-safe."""

    name = "smtp"
    max_batch_size = 1000
    confirms_by_events = False  # SMTP reports nothing after the fact: the operator decides

    def __init__(self, target: SmtpTarget, signer: DkimSigner | None = None) -> None:
        self.target = target
        self.pool = SmtpPool(target)
        self.signer = signer  # DKIM: one signature per recipient message

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpProvider:
        if settings.smtp_url is None:
            raise ConfigError(f"{_ENV}: required when NEWSLETTER_PROVIDER=smtp")
        target = parse_smtp_url(
            settings.smtp_url.reveal(),
            default_pool=settings.send_concurrency,
            default_helo=settings.from_address.domain or None,
        )
        return cls(target, make_signer(settings))

    def send_batch(self, batch: Batch) -> BatchResult:
        template = template_for(batch.message)
        result = BatchResult(requests=0)
        queue = deque(batch.recipients)
        with self.pool.slot() as holder:
            while queue:
                try:
                    conn = holder.get()
                except ProviderError as err:
                    # Before any outcome the batch as a whole failed; after, the outcomes so
                    # far stand and the rest is retried later.
                    if not result.accepted and not result.failed and not result.deferred:
                        raise
                    for rest in queue:
                        result.deferred[rest.delivery_id] = str(err)
                    break
                _Transfer(self, conn, template, queue, result).run()
                if not conn.alive:
                    holder.drop()
        return result

    def preflight(self) -> None:
        """Open one connection (TLS and login as configured) and hand it to the pool: a login
        the server refuses stops the send before anything is planned."""
        try:
            with self.pool.slot() as holder:
                holder.get()
        except PermanentProviderError as err:
            raise ConfigError(f"{_ENV}: {err}") from None

    def close(self) -> None:
        """Say QUIT on every idle connection. Idempotent."""
        self.pool.close()

    def _prepare(
        self, conn: _Connection, template: MimeTemplate, recipient: Recipient
    ) -> _Message | str:
        """The envelope commands and the dot-stuffed message for one recipient, or why it
        cannot be sent (a permanent failure of that recipient)."""
        problem = address_problem(recipient.email)
        if problem:
            return problem
        options = ""
        eightbit = template.eightbit_ok and conn.eightbit
        if eightbit:
            options = " BODY=8BITMIME"
        if not recipient.email.isascii():
            if not conn.utf8:
                return "the address is not ASCII and the server lacks SMTPUTF8"
            options += " SMTPUTF8"
        pieces = template.render_pieces(recipient, eightbit=eightbit)
        if self.signer is not None:
            try:
                pieces = [self.signer.sign(b"".join(pieces))]
            except PermanentProviderError as err:
                return str(err)
        # Our messages are strictly CRLF and end with one: dot-stuffing is a replace per
        # piece, the shared pieces stuffed once per variant; nothing is joined (one sendmsg).
        data = template.dot_stuffed(pieces)
        sender = recipient.return_path or template.message.from_email
        # Addresses passed `address_problem` (no spaces, brackets or line breaks): no quoting.
        envelope = (
            f"MAIL FROM:<{sender}>{options}\r\n"
            f"RCPT TO:<{transport_address(recipient.email)}>\r\nDATA\r\n"
        ).encode()
        return _Message(recipient, envelope, data)


class _Message:
    __slots__ = ("recipient", "envelope", "data", "size")

    def __init__(self, recipient: Recipient, envelope: bytes, data: list[bytes]) -> None:
        self.recipient = recipient
        self.envelope = envelope  # MAIL, RCPT and DATA, each with its CRLF
        self.data = data  # the message's pieces, dot-stuffed, ending CRLF; `.` CRLF ends it
        self.size = sum(map(len, data)) + len(_END)  # octets up to the end of data


_END = b".\r\n"


class _Transfer:
    """Messages from the front of `queue` over one connection, until the queue is empty, the
    connection's message allowance (`recycle`) is used, or the connection is lost.

    With PIPELINING (RFC 2920) every message costs one write and one wait: the message, its
    end of data and the next message's MAIL, RCPT and DATA go out together, and the answers
    come back together (the end of data's, then the next envelope's three). Without it each
    command waits for its answer. Outcomes:

    - the final answer to the end of data: 2xx accepted, else by `classify_smtp_code`; lost
      (closed, reset, timed out, unreadable) or a write that failed after the end of data went
      out: **in doubt** (the server may have queued it; never sent again on a guess);
    - MAIL, RCPT or DATA refused: that recipient's outcome by the code, the transaction reset
      (RSET) and the next one goes on; 421, or the connection lost before the end of data:
      that message is **deferred** (nothing of it was taken);
    - a message whose envelope only rode along behind a message that was lost goes back to
      the front of the queue and is sent on a fresh connection in this same batch.
    """

    def __init__(
        self,
        provider: SmtpProvider,
        conn: _Connection,
        template: MimeTemplate,
        queue: deque[Recipient],
        result: BatchResult,
    ) -> None:
        self.provider = provider
        self.conn = conn
        self.template = template
        self.queue = queue
        self.result = result
        self.allowance = provider.target.recycle_after

    def take(self) -> _Message | None:
        """The next sendable message from the queue (refused addresses are failed on the
        way), or None when the queue is empty or this connection has sent its allowance."""
        queue, result = self.queue, self.result
        while queue and self.conn.sent < self.allowance:
            recipient = queue.popleft()
            prepared = self.provider._prepare(self.conn, self.template, recipient)
            if isinstance(prepared, str):
                result.failed[recipient.delivery_id] = prepared
                continue
            result.requests += 1
            self.conn.sent += 1
            return prepared
        return None

    def run(self) -> None:
        if self.conn.pipelining:
            self._pipelined()
        else:
            current = self.take()
            while current is not None and self._lockstep(current):
                current = self.take()

    def _lost(self, message: _Message | None, outcome: str, detail: str) -> None:
        """The connection is gone: `message` gets `outcome`; the connection is closed."""
        if message is not None:
            getattr(self.result, outcome)[message.recipient.delivery_id] = detail
        self.conn.smtp.close()

    def _requeue(self, message: _Message | None) -> None:
        if message is not None:
            self.queue.appendleft(message.recipient)
            self.result.requests -= 1

    def _refused(self, message: _Message, code: int, text: str) -> bool:
        """Record a refused MAIL, RCPT or DATA (or final answer); False when the server is
        closing the connection (421)."""
        recipient = message.recipient
        if code == 421:
            self._lost(message, "deferred", f"{code} the server closed the connection")
            return False
        detail = f"{code} {text.replace(recipient.email, mask_email(recipient.email))}".strip()
        getattr(self.result, classify_smtp_code(code))[recipient.delivery_id] = detail
        return True

    def _envelope_answers(self, message: _Message) -> tuple[int, str] | None:
        """Read MAIL's, RCPT's and DATA's answers: None when DATA said 354 after MAIL and RCPT
        were taken, else the first refusal. Raises `_Lost`."""
        answers = [self.conn.reply() for _ in range(3)]
        (mail, mail_text), (rcpt, rcpt_text), (data, data_text) = answers
        if data == 354 and (mail != 250 or rcpt not in (250, 251)):
            # DATA taken although MAIL or RCPT was refused: the server now reads a message.
            raise _Lost(f"DATA answered 354 after {mail} / {rcpt}")
        if mail != 250:
            return mail, mail_text
        if rcpt not in (250, 251):
            return rcpt, rcpt_text
        if data != 354:
            return data, data_text
        return None

    def _pipelined(self) -> None:
        conn = self.conn
        current = self.take()
        if current is None:
            return
        out = [current.envelope]
        pending: _Message | None = None  # its end of data is in `out`; its answer comes first
        reset = False  # an RSET is in `out`, before `current`'s envelope
        while True:
            end_of_data = pending.size if pending is not None else 0
            try:
                conn.write(out)
            except _WriteFailed as err:
                if pending is None:  # nothing of `current` but (part of) its envelope went out
                    self._lost(current, "deferred", f"connection lost: {err}")
                    return
                sent_whole = err.written >= end_of_data
                outcome = "in_doubt" if sent_whole else "deferred"
                self._lost(pending, outcome, f"connection lost: {err}")
                self._requeue(current)
                return
            if pending is not None:
                try:
                    code, text = conn.reply()
                except _Lost as err:
                    self._lost(pending, "in_doubt", f"no answer after end of DATA: {err}")
                    self._requeue(current)
                    return
                if code == 250:
                    self.result.accepted.append(pending.recipient.delivery_id)
                elif not self._refused(pending, code, text):
                    self._requeue(current)
                    return
                pending = None
            if current is None:
                return
            try:
                if reset:
                    code, text = conn.reply()
                    if code != 250:
                        raise _Lost(f"RSET answered {code} {text}")
                    reset = False
                refusal = self._envelope_answers(current)
            except _Lost as err:
                self._lost(current, "deferred", f"connection lost: {err}")
                return
            if refusal is None:
                following = self.take()
                out = [*current.data, _END]
                if following is not None:
                    out.append(following.envelope)
                pending, current = current, following
                continue
            code, text = refusal
            if not self._refused(current, code, text):
                return
            current = self.take()
            if current is None:
                out = [b"RSET\r\n"]
                try:
                    conn.write(out)
                    conn.reply()
                except _Lost:
                    conn.smtp.close()
                return
            out = [b"RSET\r\n", current.envelope]
            reset = True

    def _lockstep(self, message: _Message) -> bool:
        """One transaction with a server without PIPELINING; False when the connection is
        gone (the message's outcome is recorded either way)."""
        conn = self.conn
        envelope = message.envelope.split(b"\r\n")[:3]
        try:
            for command, ok in zip(envelope, ((250,), (250, 251), (354,)), strict=True):
                conn.write([command, b"\r\n"])
                code, text = conn.reply()
                if code not in ok:
                    if not self._refused(message, code, text):
                        return False
                    conn.write([b"RSET\r\n"])
                    conn.reply()
                    return True
        except _Lost as err:
            self._lost(message, "deferred", f"connection lost: {err}")
            return False
        try:
            conn.write([*message.data, _END])
        except _WriteFailed as err:
            outcome = "in_doubt" if err.written >= message.size else "deferred"
            self._lost(message, outcome, f"connection lost: {err}")
            return False
        try:
            code, text = conn.reply()
        except _Lost as err:
            self._lost(message, "in_doubt", f"no answer after end of DATA: {err}")
            return False
        if code == 250:
            self.result.accepted.append(message.recipient.delivery_id)
            return True
        return self._refused(message, code, text)
