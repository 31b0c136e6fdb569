"""The SMTP provider: a pool of persistent connections, one transaction per recipient.

`NEWSLETTER_SMTP_URL` names the server: `smtp://user:pass@host:587` (STARTTLS when offered),
`smtp://...?starttls=require` (refuse to send in clear), `smtp://...?starttls=never` (local
relays), `smtps://user:pass@host:465` (implicit TLS). Query options: `pool` (connections,
default NEWSLETTER_SEND_CONCURRENCY), `recycle` (messages per connection before it is renewed,
default 1000), `timeout` (seconds, default 30), `helo` (EHLO name, default the From domain),
`cafile` (PEM file of the CA that signed a private relay's certificate; certificates are
always verified).

Connections are kept open and reused across batches; a connection is dropped on any error
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


class _Connection:
    __slots__ = ("smtp", "sent")

    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp
        self.sent = 0

    @property
    def alive(self) -> bool:
        return self.smtp.sock is not None

    def close(self) -> None:
        try:
            if self.alive:
                self.smtp.quit()
        except (smtplib.SMTPException, OSError):
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
            try:
                if conn.alive and conn.smtp.noop()[0] == 250:
                    return conn
            except (smtplib.SMTPException, OSError):
                pass
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
        recipients = list(batch.recipients)
        with self.pool.slot() as holder:
            for position, recipient in enumerate(recipients):
                problem = address_problem(recipient.email)
                if problem:
                    result.failed[recipient.delivery_id] = problem
                    continue
                try:
                    conn = holder.get()
                except ProviderError as err:
                    # Before any outcome the batch as a whole failed; after, the outcomes so
                    # far stand and the rest is retried later.
                    if not result.accepted and not result.failed and not result.deferred:
                        raise
                    for rest in recipients[position:]:
                        result.deferred[rest.delivery_id] = str(err)
                    break
                result.requests += 1
                outcome, detail = self._send_one(conn, template, recipient)
                if outcome == "accepted":
                    result.accepted.append(recipient.delivery_id)
                elif outcome == "failed":
                    result.failed[recipient.delivery_id] = detail
                elif outcome == "in_doubt":
                    result.in_doubt[recipient.delivery_id] = detail
                else:
                    result.deferred[recipient.delivery_id] = detail
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

    def _send_one(
        self, conn: _Connection, template: MimeTemplate, recipient: Recipient
    ) -> tuple[str, str]:
        """One SMTP transaction -> (outcome, detail). Never raises."""
        smtp = conn.smtp
        options: list[str] = []
        eightbit = template.eightbit_ok and smtp.has_extn("8bitmime")
        if eightbit:
            options.append("BODY=8BITMIME")
        if not recipient.email.isascii():
            if not smtp.has_extn("smtputf8"):
                return "failed", "the address is not ASCII and the server lacks SMTPUTF8"
            options.append("SMTPUTF8")
        conn.sent += 1
        data = template.render(recipient, eightbit=eightbit)
        if self.signer is not None:
            try:
                data = self.signer.sign(data)
            except PermanentProviderError as err:
                return "failed", str(err)
        try:
            sender = recipient.return_path or template.message.from_email
            return transaction(smtp, sender, recipient, data, options)
        except (smtplib.SMTPException, OSError) as err:
            smtp.close()
            return "deferred", f"connection lost: {type(err).__name__}: {err}"


def transaction(
    smtp: smtplib.SMTP, sender: str, recipient: Recipient, data: bytes, options: list[str]
) -> tuple[str, str]:
    """MAIL, RCPT, DATA for one message through smtplib's `docmd`/`send`/`getreply`.

    What `smtplib.sendmail` does, minus two costs measured in docs/providers.md: our messages
    are strictly CRLF, so dot-stuffing is one `bytes.replace` instead of smtplib's multiline
    regex (~1.2 ms on a 117 KB newsletter), and validated addresses skip `parseaddr`.
    Socket errors propagate to the caller.
    """
    # Addresses passed `address_problem` (no spaces, brackets or line breaks): no quoting needed.
    code, reply = smtp.docmd("mail", f"FROM:<{sender}>" + "".join(" " + o for o in options))
    if code == 250:
        code, reply = smtp.docmd("rcpt", f"TO:<{transport_address(recipient.email)}>")
        if code in (250, 251):
            code, reply = smtp.docmd("data")
            if code == 354:
                stuffed = data.replace(b"\r\n.", b"\r\n..")
                if stuffed.startswith(b"."):
                    stuffed = b"." + stuffed
                if not stuffed.endswith(b"\r\n"):
                    stuffed += b"\r\n"
                smtp.send(stuffed + b".\r\n")
                try:
                    code, reply = smtp.getreply()
                except (smtplib.SMTPException, OSError) as err:
                    # The whole message went out; only the server's answer was lost.
                    smtp.close()
                    return "in_doubt", f"no answer after end of DATA: {type(err).__name__}"
                if code == 250:
                    return "accepted", ""
                if code == -1:
                    smtp.close()
                    return "in_doubt", "the connection closed after end of DATA"
                return _outcome(code, reply, recipient, smtp)
    if code not in (421, -1):
        try:
            smtp.rset()  # end the refused transaction; the connection stays usable
        except (smtplib.SMTPException, OSError):
            smtp.close()
    return _outcome(code, reply, recipient, smtp)


def _outcome(
    code: int, reply: bytes | str, recipient: Recipient, smtp: smtplib.SMTP
) -> tuple[str, str]:
    if code == 421 or code == -1:  # the server is closing (-1: smtplib saw no valid reply)
        smtp.close()
        return "deferred", f"{code} the server closed the connection"
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    text = text.replace(recipient.email, mask_email(recipient.email))
    return classify_smtp_code(code), f"{code} {text}".strip()
