"""A lean SMTP server that only counts what it receives: the sink's `--count-only` mode.

aiosmtpd costs ~200 µs of CPU a message (a coroutine per command, a reply written per
command, its RFC 5322 address parser), so in a benchmark the sink, not the sender, set the
pace. This server is one `asyncio.Protocol` per connection: it parses every complete command
in what arrived, answers all of them in one write (it announces PIPELINING, RFC 2920), and
finds the end of a message with one search. It stays strict, as a receiving MTA would be:

- commands: HELO/EHLO first, MAIL FROM:<addr> [BODY=7BIT|8BITMIME] [SMTPUTF8] [SIZE=n], then
  RCPT TO:<addr>, then DATA without argument; RSET, NOOP, QUIT; anything else, a command out
  of sequence, an unknown parameter or a malformed path is refused (500, 501, 503, 555);
- a command line longer than 512 octets (CRLF included, RFC 5321 4.5.3.1.4) is refused, one
  with no line end within 512 octets closes the connection;
- a message with a line longer than 998 octets (RFC 5321 4.5.3.1.6) or over the announced
  SIZE is refused after its end (500 / 552), not counted (bare CR or LF are not looked for:
  counting them cost more than the rest of the sink);
- a message is counted (messages, recipients) only when its final `250` is written.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

COMMAND_MAX = 512  # octets, CRLF included
LINE_MAX = 1000  # octets of a text line, CRLF included
SIZE_MAX = 50 * 1024 * 1024
_PATH = re.compile(r"<([^<>\s\"]*)>")  # <> (null sender) or <local@domain>, no quoting
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


class Counts:
    """What every connection of one server received."""

    def __init__(self) -> None:
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.messages = 0
        self.recipients = 0
        self.data_commands = 0
        self.refused_commands = 0
        self.refused_messages = 0
        self.bytes = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "connections": self.connections,
            "max_open_connections": self.max_open,
            "messages": self.messages,
            "recipients": self.recipients,
            "refused_recipients": 0,
            "data_commands": self.data_commands,
            "refused_commands": self.refused_commands,
            "refused_messages": self.refused_messages,
            "message_bytes": self.bytes,
        }


class _Connection(asyncio.Protocol):
    __slots__ = (
        "counts", "hostname", "transport", "buf", "greeted", "sender", "rcpts", "data",
        "tail", "line", "size", "too_long",
    )  # fmt: skip

    def __init__(self, counts: Counts, hostname: str) -> None:
        self.counts = counts
        self.hostname = hostname
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()  # an incomplete command line
        self.greeted = False
        self.sender: str | None = None
        self.rcpts = 0
        self.data = False  # reading a message after 354
        # While reading a message (never kept, only looked at as it passes): its last 4 octets
        # so far (the end may straddle two reads), the length of its current line, its size.
        self.tail = b""
        self.line = 0
        self.size = 0
        self.too_long = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        counts = self.counts
        counts.connections += 1
        counts.open += 1
        counts.max_open = max(counts.max_open, counts.open)
        transport.write(f"220 {self.hostname} ESMTP counting sink\r\n".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.counts.open -= 1
        self.transport = None

    def data_received(self, chunk: bytes) -> None:
        replies: list[bytes] = []
        close = False
        while chunk and not close:
            if self.data:
                chunk = self._message_part(chunk, replies)
                continue
            buf = self.buf
            buf += chunk
            chunk = b""
            start = 0
            while True:
                eol = buf.find(b"\r\n", start, start + COMMAND_MAX)
                if eol < 0:
                    if len(buf) - start >= COMMAND_MAX:
                        replies.append(b"500 5.5.6 Error: command line too long\r\n")
                        close = True
                    break
                line = bytes(buf[start:eol])
                start = eol + 2
                reply = self._command(line)
                replies.append(reply)
                if reply.startswith(b"221"):
                    close = True
                    break
                if self.data:  # what follows DATA is the message
                    chunk = bytes(buf[start:])
                    start = len(buf)
                    break
            del buf[:start]
        transport = self.transport
        if transport is not None:
            if replies:
                transport.write(b"".join(replies))
            if close:
                transport.close()

    def _message_part(self, chunk: bytes, replies: list[bytes]) -> bytes:
        """Look at the next part of a message; what follows its end (pipelined commands) is
        returned, b"" while the message goes on."""
        tail = self.tail
        joint = (tail + chunk[:4]).find(b"\r\n.\r\n")
        if 0 <= joint < len(tail):  # the end straddles the previous read
            content, after = joint + 2 - len(tail), joint + 5 - len(tail)
        else:
            found = chunk.find(b"\r\n.\r\n")
            content, after = (found + 2, found + 5) if found >= 0 else (len(chunk), -1)
        content = max(content, 0)
        self._check_lines(chunk, content)
        self.size += content
        if after < 0:
            self.tail = (tail + chunk)[-4:] if len(chunk) < 4 else chunk[-4:]
            return b""
        replies.append(self._message_end())
        return chunk[after:]

    def _check_lines(self, chunk: bytes, end: int) -> None:
        """Every line ends within LINE_MAX octets: jump from a line start to the last LF in
        reach (about one search per 1,000 octets), carrying the open line to the next read."""
        pos, carry = 0, self.line
        while end - pos + carry > LINE_MAX:
            lf = chunk.rfind(b"\n", pos, pos + LINE_MAX - carry)
            if lf < 0:
                self.too_long = True
                lf = chunk.find(b"\n", pos, end)
                if lf < 0:
                    self.line = 0
                    return
            pos, carry = lf + 1, 0
        last = chunk.rfind(b"\n", pos, end)
        self.line = end - last - 1 if last >= 0 else carry + end - pos

    def _message_end(self) -> bytes:
        """The answer to a complete message; only an accepted one is counted."""
        counts = self.counts
        rcpts, size, too_long = self.rcpts, self.size, self.too_long
        self.data, self.rcpts, self.sender = False, 0, None
        self.tail, self.line, self.size, self.too_long = b"", 0, 0, False
        if size > SIZE_MAX:
            counts.refused_messages += 1
            return b"552 5.3.4 Error: message too big\r\n"
        if too_long:
            counts.refused_messages += 1
            return b"500 5.5.2 Error: line longer than 998 octets\r\n"
        counts.messages += 1
        counts.recipients += rcpts
        counts.bytes += size
        return b"250 2.0.0 OK counted\r\n"

    def _command(self, line: bytes) -> bytes:
        counts = self.counts
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            counts.refused_commands += 1
            return b"500 5.5.2 Error: not UTF-8\r\n"
        if "\r" in text or "\n" in text:
            counts.refused_commands += 1
            return b"500 5.5.2 Error: bare CR or LF\r\n"
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb == "MAIL":
            reply = self._mail(arg)
        elif verb == "RCPT":
            reply = self._rcpt(arg)
        elif verb == "DATA":
            reply = self._data_command(arg)
        elif verb in ("EHLO", "HELO"):
            if not arg.strip():
                reply = b"501 5.5.4 Syntax: " + verb.encode() + b" hostname\r\n"
            else:
                self.greeted, self.sender, self.rcpts = True, None, 0
                if verb == "HELO":
                    return f"250 {self.hostname}\r\n".encode()
                return (
                    f"250-{self.hostname}\r\n250-SIZE {SIZE_MAX}\r\n250-8BITMIME\r\n"
                    "250-SMTPUTF8\r\n250-PIPELINING\r\n250 HELP\r\n"
                ).encode()
        elif verb in ("RSET", "NOOP", "QUIT") and arg:
            reply = b"501 5.5.4 Syntax: " + verb.encode() + b"\r\n"
        elif verb == "RSET":
            self.sender, self.rcpts = None, 0
            return b"250 2.0.0 OK\r\n"
        elif verb == "NOOP":
            return b"250 2.0.0 OK\r\n"
        elif verb == "QUIT":
            return b"221 2.0.0 Bye\r\n"
        else:
            reply = b"500 5.5.1 Error: command not recognized\r\n"
        if not reply.startswith((b"250", b"354")):
            counts.refused_commands += 1
        return reply

    def _mail(self, arg: str) -> bytes:
        if not self.greeted:
            return b"503 5.5.1 Error: send HELO first\r\n"
        if self.sender is not None:
            return b"503 5.5.1 Error: nested MAIL command\r\n"
        if arg[:5].upper() != "FROM:":
            return b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
        path = _PATH.match(arg, 5)
        if path is None or (path.group(1) and not _ADDRESS.fullmatch(path.group(1))):
            return b"501 5.1.7 Error: malformed sender address\r\n"
        for param in arg[path.end() :].split():
            key, _, value = param.upper().partition("=")
            if key == "BODY" and value in ("7BIT", "8BITMIME"):
                continue
            if key == "SMTPUTF8" and not value:
                continue
            if key == "SIZE" and value.isdigit():
                if int(value) > SIZE_MAX:
                    return b"552 5.3.4 Error: message too big\r\n"
                continue
            return b"555 5.5.4 Error: unknown MAIL parameter\r\n"
        if not path.group(1).isascii() and "SMTPUTF8" not in arg.upper():
            return b"553 5.6.7 Error: non-ASCII address without SMTPUTF8\r\n"
        self.sender = path.group(1)
        return b"250 2.1.0 OK\r\n"

    def _rcpt(self, arg: str) -> bytes:
        if self.sender is None:
            return b"503 5.5.1 Error: need MAIL command\r\n"
        if arg[:3].upper() != "TO:":
            return b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"
        path = _PATH.match(arg, 3)
        if path is None or not _ADDRESS.fullmatch(path.group(1)):
            return b"501 5.1.3 Error: malformed recipient address\r\n"
        if arg[path.end() :].strip():
            return b"555 5.5.4 Error: unknown RCPT parameter\r\n"
        self.rcpts += 1
        return b"250 2.1.5 OK\r\n"

    def _data_command(self, arg: str) -> bytes:
        if arg:
            return b"501 5.5.4 Syntax: DATA\r\n"
        if self.sender is None:
            return b"503 5.5.1 Error: need MAIL command\r\n"
        if not self.rcpts:
            return b"503 5.5.1 Error: need RCPT command\r\n"
        self.counts.data_commands += 1
        self.data = True
        self.tail = b"\r\n"  # DATA's own line end: a message may be just `.` CRLF
        return b"354 End data with <CR><LF>.<CR><LF>\r\n"


class CountingServer:
    """`async with CountingServer(host, port) as server: server.port, server.counts`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.counts = Counts()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CountingServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self.counts, "sink.invalid"), self.host, self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}?starttls=never"


def serve_counting(host: str, port: int, announce: Any, stop: asyncio.Event | None = None) -> dict:
    """Run a counting server until SIGTERM/SIGINT; `announce(url)` once it listens. Returns its
    counts and the process's CPU seconds."""
    import signal

    async def run() -> dict:
        done = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        async with CountingServer(host, port) as server:
            announce(server.url)
            await done.wait()
            return {"cpu_seconds": time.process_time(), **server.counts.as_dict()}

    return asyncio.run(run())
