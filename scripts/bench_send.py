"""Benchmark the sending core end to end: database, links, payloads, HTTP/SMTP and the ledger.

    python scripts/bench_send.py --subscribers 1000000
    python scripts/bench_send.py --subscribers 1000000 --processes 1,2
    python scripts/bench_send.py --subscribers 100000 --provider smtp
    python scripts/bench_send.py --subscribers 100000 --fail-rate 0.2
    python scripts/bench_send.py --subscribers 200000 --workers 1,2,4 \
        --database-url postgresql://postgres@127.0.0.1/test
    python scripts/bench_send.py --subscribers 20000 --naive

Subscribers are generated inside the database (one INSERT ... SELECT), the issue and its three
variants are written directly, the local SendGrid-compatible server (or the SMTP sink) runs in
its own process. One JSON line per run; the last line is the last run:
provider, recipients, seconds (end to end, as `issue send` runs), recipients_per_s,
send_seconds / send_recipients_per_s (the sending loop alone: planning, start and finish are
outside it), outside_send_share (their share of the whole), cpu_us_per_recipient (the sending
processes' user + system CPU, planning included, over recipients), server_limit_per_s (SendGrid:
the same server's own rate in the same run, fed pre-built requests of the same payloads by
`--limit-clients` client processes) and ratio (send phase over that limit), requests,
peak_rss_mb (the send's own: the peak is reset before it; with `--processes`, the largest of
any one sending process), duplicates, missing, load_average (1 minute, at the start of the run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import bindparam, create_engine, delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.clock import SYSTEM_CLOCK  # noqa: E402
from newsletter.config import Secret, load_settings  # noqa: E402
from newsletter.db.migrate import upgrade  # noqa: E402
from newsletter.db.models import (  # noqa: E402
    Delivery,
    Issue,
    IssueVariant,
    MailingList,
    SendBatch,
    Subscriber,
    Subscription,
)
from newsletter.db.session import make_engine, session_factory  # noqa: E402
from newsletter.db.types import UTCDateTime  # noqa: E402
from newsletter.delivery.issue_state import recipient_counts  # noqa: E402
from newsletter.delivery.planning import enqueue_issue  # noqa: E402
from newsletter.delivery.sendconfig import SendConfig  # noqa: E402
from newsletter.delivery.sending import send_issue  # noqa: E402
from newsletter.providers.factory import make_provider  # noqa: E402
from newsletter.types import (  # noqa: E402
    SLOT_NAME,
    SLOT_PREFERENCES_URL,
    SLOT_UNSUBSCRIBE_URL,
    VARIANTS,
)

T0 = datetime(2026, 6, 12, 20, 0, tzinfo=UTC)
API_KEY = "test-key"
SECRET = "bench-secret-key-0123456789abcdef"
FROM = "AI日報 <news@example.com>"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (worker processes)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start this process's peak RSS afresh (Linux: `clear_refs` 5), so that the peak read
    after a send is the send's own, not seeding's or an earlier run's."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_since_reset_mb() -> float:
    """This process's peak RSS since `reset_peak_rss` (VmHWM), else over its whole life."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return rss_mb()
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return rss_mb()


class ChildPeakRss:
    """Peak RSS of this process's children other than `exclude` (the forked sending
    processes; the server is left out), read from /proc every 50 ms while they run."""

    def __init__(self, exclude: int) -> None:
        self.exclude = exclude
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.05):
            try:
                pids = Path(f"/proc/{me}/task/{me}/children").read_text().split()
            except OSError:
                continue
            for pid in pids:
                if int(pid) == self.exclude:
                    continue
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


# --- data -----------------------------------------------------------------------------------


def demo_variants(tmp: str) -> dict[str, tuple[str, str, str, str]]:
    """The variants `newsletter demo` renders from its sample articles: variant -> (subject,
    preheader, html, text), read from the demo's own database (run in `tmp`)."""
    import sqlite3

    folder = Path(tmp) / "demo"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_VAR_DIR=str(folder), NEWSLETTER_DATABASE_URL=f"sqlite:///{folder}/d.db")
    subprocess.run(
        [sys.executable, "-c", "from newsletter.cli.main import main; main()", "demo"],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    with sqlite3.connect(folder / "d.db") as db:
        rows = db.execute("SELECT variant, subject, preheader, html, text FROM issue_variants")
        return {variant: (subject, pre, html, text) for variant, subject, pre, html, text in rows}


def seed(sessions: sessionmaker[Session], count: int, demo: dict[str, Any] | None = None) -> int:
    """N active subscribers generated in SQL, a list, a built issue with three variants
    (synthetic, or `demo`'s)."""
    with sessions.begin() as session:
        dialect = session.get_bind().dialect.name
        the_list = MailingList(slug="daily", name="AI日報", created_at=T0)
        session.add(the_list)
        session.flush()
        if dialect == "sqlite":
            rows = (
                "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :n) "
                "SELECT 'reader' || n || '@example.com', 'reader' || n || '@example.com', "
                "printf('%064x', n), 'Reader ' || n, "
                "CASE n % 3 WHEN 0 THEN 'ja' WHEN 1 THEN 'en' ELSE 'both' END, '{}', :t, :t "
                "FROM seq"
            )
        else:
            rows = (
                "SELECT 'reader' || n || '@example.com', 'reader' || n || '@example.com', "
                "md5(n::text), 'Reader ' || n, "
                "CASE n % 3 WHEN 0 THEN 'ja' WHEN 1 THEN 'en' ELSE 'both' END, '{}', :t, :t "
                "FROM generate_series(1, :n) AS n"
            )
        now = bindparam("t", T0, type_=UTCDateTime())
        session.execute(
            text(
                "INSERT INTO subscribers (email, email_key, email_hash, name, language, "
                f"attributes, created_at, updated_at) {rows}"
            ).bindparams(now, n=count)
        )
        session.execute(
            text(
                "INSERT INTO subscriptions (subscriber_id, list_id, status, source, created_at, "
                "updated_at, confirmed_at) SELECT id, :list, 'active', 'import', :t, :t, :t "
                "FROM subscribers"
            ).bindparams(now, list=the_list.id)
        )
        issue = Issue(
            list_id=the_list.id,
            issue_date=date(2026, 6, 13),
            status="built",
            window_start=T0 - timedelta(days=1),
            cutoff_at=T0,
            created_at=T0,
            built_at=T0,
        )
        session.add(issue)
        session.flush()
        article = (
            "<tr><td><h2>見出し Headline {i}</h2><p>" + "本文 body text " * 60 + "</p></td></tr>"
        )
        body = "".join(article.format(i=i) for i in range(8))
        for variant in VARIANTS:  # every stored variant: the send renders nothing
            if demo:
                subject, preheader, html, text_part = demo[variant]
                session.add(
                    IssueVariant(
                        issue_id=issue.id, variant=variant, subject=subject,
                        preheader=preheader, html=html, text=text_part, trimmed=[],
                        rendered_at=T0 + timedelta(minutes=1),
                    )
                )  # fmt: skip
                continue
            session.add(
                IssueVariant(
                    issue_id=issue.id,
                    variant=variant,
                    subject=f"AI日報 {variant} 2026-06-13",
                    preheader="today",
                    html=(
                        f"<html><body><p>{SLOT_NAME}</p><table>{body}</table>"
                        f"<a href='{SLOT_UNSUBSCRIBE_URL}'>unsubscribe</a> "
                        f"<a href='{SLOT_PREFERENCES_URL}'>preferences</a></body></html>"
                    ),
                    text=f"{SLOT_NAME}\n{body}\n{SLOT_UNSUBSCRIBE_URL}\n{SLOT_PREFERENCES_URL}",
                    trimmed=[],
                    rendered_at=T0 + timedelta(minutes=1),
                )
            )
        return issue.id


def reset_ledger(sessions: sessionmaker[Session], issue_id: int) -> None:
    with sessions.begin() as session:
        session.execute(delete(Delivery))
        session.execute(delete(SendBatch))
        session.execute(
            update(Issue)
            .where(Issue.id == issue_id)
            .values(status="built", send_started_at=None, sent_at=None)
        )


def ledger_counts(sessions: sessionmaker[Session], issue_id: int) -> dict[str, int]:
    with sessions() as session:
        return {k: v for k, v in recipient_counts(session, issue_id).items() if v}


# --- servers --------------------------------------------------------------------------------


class Server:
    def __init__(
        self,
        provider: str,
        fail_rate: float,
        latency: float = 0.0,
        rate_limit: float = 0.0,
        sink: str = "counter",
    ) -> None:
        self.sink = sink
        if provider == "sendgrid":
            args = ["-m", "newsletter.testing.sendgrid_server", "--port", "0", "--api-key", API_KEY,
                    "--fail-rate", str(fail_rate), "--retry-after", "0.1",
                    "--latency", str(latency), "--rate-limit", str(rate_limit)]  # fmt: skip
        elif sink == "postfix":
            self._start_postfix_sink()
            return
        else:
            args = ["-m", "newsletter.testing.smtp_sink", "--port", "0", "--count-only"]
            if sink == "aiosmtpd":
                args += ["--aiosmtpd", "--fast-data"]
        self.provider = provider
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def _start_postfix_sink(self) -> None:
        """Postfix's `smtp-sink` (C, one process, PIPELINING and 8BITMIME): a receiver that
        costs far less than the sender, so the sender's own limit shows. It counts messages
        (`-c`: `mesg=N` after every end of data); one recipient a message here."""
        import shutil
        import socket

        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not Path(binary).exists():
            raise SystemExit("--sink postfix needs Postfix's smtp-sink (Debian's postfix package)")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.provider, self.sink = "smtp", "postfix"
        # Its counters go to a file: a pipe nobody reads would fill and stop the sink.
        self._counters = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [binary, "-c", *user, "-m", "1024", f"127.0.0.1:{port}", "1024"],
            stdout=self._counters,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        self.url = f"smtp://127.0.0.1:{port}?starttls=never"

    def cpu_s(self) -> float:
        """CPU seconds the server process used so far (user + system), from /proc."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stats(self) -> dict[str, Any]:
        if self.provider == "sendgrid":
            return httpx.get(self.url + "/_stats", timeout=10).json()
        return {}

    def close(self) -> dict[str, Any]:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        if self.sink == "postfix":
            self._counters.seek(0)
            counters = self._counters.read().decode().replace("\r", "\n").split()
            self._counters.close()
            messages = [int(c[5:]) for c in counters if c.startswith("mesg=")]
            return {"messages": messages[-1] if messages else 0,
                    "recipients": messages[-1] if messages else 0}  # fmt: skip
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}


def _blast(url: str, body: bytes, seconds: float, threads: int, out: Any) -> None:
    """One client process: `threads` keep-alive connections posting `body` for `seconds`."""
    done = [0] * threads
    until = time.monotonic() + seconds

    def post(n: int) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}",
                                   "Content-Type": "application/json"}) as client:  # fmt: skip
            while time.monotonic() < until:
                if client.post(url + "/v3/mail/send", content=body).status_code == 202:
                    done[n] += 1

    workers = [threading.Thread(target=post, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(sum(done))


def server_limit(
    args: argparse.Namespace, sessions: sessionmaker[Session], settings: Any, server: Server
) -> float:
    """Recipients per second the server takes when nothing else limits it: the issue's own
    payloads (1,000 recipients, signed links), built and serialised before the clock starts,
    posted by `--limit-clients` processes of 2 connections each for `--limit-seconds`."""

    from newsletter.delivery.messages import prepare_messages
    from newsletter.providers.base import Batch, Recipient
    from newsletter.providers.sendgrid import build_payload
    from subscribers.tokens import LinkSigner

    signer = LinkSigner(settings)
    with sessions() as session:
        messages = prepare_messages(session, settings, args.issue_id)
        rows = session.execute(
            select(Subscriber.id, Subscriber.email, Subscriber.name).order_by(Subscriber.id)
            .limit(args.batch_size)
        ).all()  # fmt: skip
    links = signer.links_for_list(1)
    recipients = [Recipient(n, sid, email, name or "", *links(sid))
                  for n, (sid, email, name) in enumerate(rows, 1)]  # fmt: skip
    payload = build_payload(Batch(1, messages["ja", False], recipients), recipients, sandbox=False)
    body = payload.data
    queue: Any = multiprocessing.get_context("fork").Queue()
    procs = [
        multiprocessing.get_context("fork").Process(
            target=_blast, args=(server.url, body, args.limit_seconds, 2, queue)
        )
        for _ in range(args.limit_clients)
    ]
    started = time.monotonic()
    for proc in procs:
        proc.start()
    requests = sum(queue.get() for _ in procs)
    for proc in procs:
        proc.join()
    return requests * len(recipients) / (time.monotonic() - started)


def _replay(url: str, messages: list[tuple[bytes, bytes]], seconds: float, conns: int,
            out: Any) -> None:  # fmt: skip
    """One client process: `conns` pipelined connections replaying pre-built messages (one
    write and one wait a message: the message, its end of data and the next envelope)."""
    import socket

    host, port = url.split("://")[1].split("?")[0].rsplit(":", 1)
    done = [0] * conns
    cpu = time.process_time()
    until = time.monotonic() + seconds

    def answers(sock: socket.socket, count: int) -> list[bytes]:
        buf = b""
        while buf.count(b"\r\n") < count:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("sink closed")
            buf += chunk
        return [line[:3] for line in buf.split(b"\r\n")[:count]]

    def run(n: int) -> None:
        with socket.create_connection((host, int(port))) as sock:
            answers(sock, 1)
            sock.sendall(b"EHLO bench.example\r\n")
            buf = b""
            while b"\r\n250 " not in b"\r\n" + buf:
                buf += sock.recv(65536)
            i = n
            sock.sendall(messages[i % len(messages)][0])
            assert answers(sock, 3) == [b"250", b"250", b"354"]
            while time.monotonic() < until:
                envelope, data = (
                    messages[(i + 1) % len(messages)][0],
                    messages[i % len(messages)][1],
                )
                sock.sendmsg([data, b".\r\n", envelope])
                final, *rest = answers(sock, 4)
                assert rest == [b"250", b"250", b"354"], rest
                done[n] += final == b"250"
                i += 1

    workers = [threading.Thread(target=run, args=(n,)) for n in range(conns)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put((sum(done), time.process_time() - cpu))


def smtp_sink_limit(
    args: argparse.Namespace, sessions: sessionmaker[Session], settings: Any, connections: int
) -> dict[str, Any]:
    """Messages per second a fresh sink (the same kind, its own process) takes when nothing
    else limits it: 300 of the issue's real messages (signed links, every variant, 8BITMIME as
    the sink announces), rendered and dot-stuffed before the clock starts, replayed for
    `--limit-seconds` over `connections` pipelined connections by `--limit-clients` processes."""
    from newsletter.delivery.messages import prepare_messages
    from newsletter.providers.base import Recipient
    from newsletter.providers.mime import template_for
    from subscribers.tokens import LinkSigner

    signer = LinkSigner(settings)
    with sessions() as session:
        prepared = prepare_messages(session, settings, args.issue_id)
        rows = session.execute(
            select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.language)
            .order_by(Subscriber.id).limit(300)
        ).all()  # fmt: skip
    links = signer.links_for_list(1)
    messages = []
    for n, (sid, email, name, language) in enumerate(rows, 1):
        message = prepared[language, False]
        data = template_for(message).render(
            Recipient(n, sid, email, name or "", *links(sid)), eightbit=True
        )
        data = data.replace(b"\r\n.", b"\r\n..")
        envelope = (
            f"MAIL FROM:<{message.from_email}> BODY=8BITMIME\r\nRCPT TO:<{email}>\r\nDATA\r\n"
        )
        messages.append((envelope.encode(), data))
    sink = Server("smtp", 0.0, sink=args.sink)
    context = multiprocessing.get_context("fork")
    queue: Any = context.Queue()
    clients = max(1, min(args.limit_clients, connections))
    shares = [connections // clients + (k < connections % clients) for k in range(clients)]
    procs = [
        context.Process(target=_replay, args=(sink.url, messages, args.limit_seconds, share, queue))
        for share in shares
    ]
    started = time.monotonic()
    cpu_before = sink.cpu_s()
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.monotonic() - started
    sink_cpu = sink.cpu_s() - cpu_before
    counts = sink.close()
    sent = sum(done for done, _ in results)
    return {
        "limit_per_s": sent / elapsed,
        "connections": connections,
        "messages": sent,
        "sink_counted": counts.get("messages"),
        "sink_cpu_us_per_message": round(sink_cpu / max(sent, 1) * 1e6, 1),
        "client_cpu_us_per_message": round(sum(c for _, c in results) / max(sent, 1) * 1e6, 1),
        "mean_message_bytes": round(sum(len(d) for _, d in messages) / len(messages)),
    }


# --- runs -----------------------------------------------------------------------------------


def dkim_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """With --dkim: a fresh RSA-2048 key, so SMTP messages are DKIM-signed as in production."""
    if not args.dkim:
        return {}
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = Path(args.tmp) / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"dkim_private_key": path, "dkim_selector": "bench"}


def run_core(
    args: argparse.Namespace, url: str, server: Server, workers: int, processes: int = 1
) -> dict[str, Any]:
    settings = load_settings(
        {"NEWSLETTER_FROM": FROM},
        database_url=url,
        provider=args.provider,
        sendgrid_api_key=Secret(API_KEY),
        sendgrid_host=server.url if args.provider == "sendgrid" else "https://api.sendgrid.com",
        smtp_url=Secret(server.url) if args.provider == "smtp" else None,
        secret_keys=(Secret(SECRET),),
        base_url="https://news.example.com",
        send_batch_size=args.batch_size,
        var_dir=Path(args.tmp),
        **({"send_concurrency": args.concurrency} if args.concurrency else {}),
        **dkim_overrides(args),
    )
    config = SendConfig.from_settings(
        settings, backoff_base_s=0.05, backoff_max_s=0.5, poll_s=0.05, adaptive=not args.fixed
    )
    engine = make_engine(url)
    sessions = session_factory(engine)
    issue_id = args.issue_id
    reset_ledger(sessions, issue_id)
    load = os.getloadavg()[0]
    started = time.monotonic()
    plan_seconds = None
    loop_seconds = None
    cpu_before = _cpu_s()
    server_cpu_before = server.cpu_s()
    requests = 0
    if workers <= 1:
        provider = make_provider(settings)
        helpers_rss = ChildPeakRss(exclude=server.proc.pid) if processes > 1 else None
        reset_peak_rss()
        try:
            report = send_issue(
                sessions, settings, provider, issue_id, SYSTEM_CLOCK, worker_id="bench",
                config=config, processes=processes,
                provider_factory=partial(make_provider, settings),
            )  # fmt: skip
        finally:
            provider.close()
        requests = report.requests
        plan_seconds = report.plan_seconds
        loop_seconds = report.loop_seconds
        own = peak_rss_since_reset_mb()
        peak = max(own, helpers_rss.stop() if helpers_rss else 0.0)  # of any one process
    else:
        with sessions.begin() as session:
            issue = session.get_one(Issue, issue_id)
            enqueue_issue(session, issue, settings, SYSTEM_CLOCK, batch_size=config.batch_size)
        plan_seconds = time.monotonic() - started
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env.update(
            NEWSLETTER_DATABASE_URL=url,
            NEWSLETTER_PROVIDER=args.provider,
            SENDGRID_API_KEY=API_KEY,
            NEWSLETTER_SENDGRID_HOST=server.url,
            NEWSLETTER_SMTP_URL=server.url,
            NEWSLETTER_SECRET_KEY=SECRET,
            NEWSLETTER_BASE_URL="https://news.example.com",
            NEWSLETTER_VAR_DIR=args.tmp,
            **({"NEWSLETTER_SEND_CONCURRENCY": str(args.concurrency)} if args.concurrency else {}),
            NEWSLETTER_FROM=FROM,
        )
        command = [sys.executable, "-c", "from newsletter.cli.main import main; main()",
                   "worker", "--issue", str(issue_id), "--json"]  # fmt: skip
        procs = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(workers)
        ]
        for proc in procs:
            out, _ = proc.communicate()
            requests += json.loads(out)["requests"]
        peak = rss_mb(children=True)
    seconds = time.monotonic() - started
    sender_cpu = _cpu_s() - cpu_before
    server_cpu = server.cpu_s() - server_cpu_before
    counts = ledger_counts(sessions, issue_id)
    stats = server.stats()
    limit = None
    if args.provider == "sendgrid" and args.limit_seconds > 0:
        limit = server_limit(args, sessions, settings, server)
    engine.dispose()
    accepted = counts.get("accepted", 0)
    # The send phase: the sending loop itself when the report gives it (start and finish, like
    # planning, are outside it); with workers, everything after planning.
    send_seconds = loop_seconds or seconds - (plan_seconds or 0.0)
    rate_limited = None
    if args.provider == "sendgrid" and args.rate_limit > 0:
        rate_limited = {
            "limit_requests_per_s": args.rate_limit,
            "achieved_share": round(stats["accepted_requests"] / send_seconds / args.rate_limit, 3),
            "share_429": round(stats["statuses"].get("429", 0) / max(stats["requests"], 1), 4),
            "answered_429": stats["statuses"].get("429", 0),
        }
    if args.provider == "sendgrid":
        duplicates = stats["duplicates"]
        received = stats["unique_recipients"]
    else:
        received = accepted
        duplicates = 0
    return {
        "provider": args.provider,
        "database": url.split(":", 1)[0],
        "workers": workers,
        "processes": processes,
        "fail_rate": args.fail_rate,
        "recipients": accepted,
        "seconds": round(seconds, 2),
        "recipients_per_s": round(accepted / seconds),
        "plan_seconds": None if plan_seconds is None else round(plan_seconds, 2),
        "send_seconds": round(send_seconds, 2),
        "outside_send_share": round(1 - send_seconds / seconds, 3),
        "send_recipients_per_s": round(accepted / send_seconds),
        "cpu_us_per_recipient": round(sender_cpu / max(accepted, 1) * 1e6, 1),
        "server_limit_per_s": None if limit is None else round(limit),
        "ratio": None if limit is None else round(accepted / send_seconds / limit, 2),
        "ratio_end_to_end": None if limit is None else round(accepted / seconds / limit, 2),
        "requests": requests,
        "peak_rss_mb": round(peak, 1),
        "duplicates": duplicates,
        "missing": args.subscribers - received,
        "ledger": counts,
        "sender_cpu_s": round(sender_cpu, 2),
        "server_cpu_s": round(server_cpu, 2),
        "load_average": round(load, 2),
        **({"rate_limited": rate_limited} if rate_limited else {}),
    }


def smtp_sink_limit_for(args: argparse.Namespace, url: str, connections: int) -> dict[str, Any]:
    settings = load_settings(
        {"NEWSLETTER_FROM": FROM},
        database_url=url,
        secret_keys=(Secret(SECRET),),
        base_url="https://news.example.com",
        var_dir=Path(args.tmp),
    )
    engine = make_engine(url)
    try:
        return smtp_sink_limit(args, session_factory(engine), settings, connections)
    finally:
        engine.dispose()


def run_naive(args: argparse.Namespace, url: str, server: Server, limit: int) -> dict[str, Any]:
    """The obvious approach: ORM rows, sendgrid's Mail helper and client, one mail per row."""
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Mail

    from subscribers.tokens import LinkSigner

    settings = load_settings({}, secret_keys=(Secret(SECRET),), base_url="https://news.example.com",
                             var_dir=Path(args.tmp))  # fmt: skip
    signer = LinkSigner(settings)
    client = SendGridAPIClient(api_key=API_KEY, host=server.url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    reset_ledger(sessions, args.issue_id)
    started = time.monotonic()
    sent = 0
    with sessions() as session:
        variants = {
            v.variant: v
            for v in session.scalars(
                select(IssueVariant).where(IssueVariant.issue_id == args.issue_id)
            )
        }
        query = select(Subscriber).join(Subscription).order_by(Subscriber.id).limit(limit)
        for subscriber in session.scalars(query):
            variant = variants[subscriber.language]
            unsubscribe, preferences = signer.links(subscriber.id, 1)
            html = (
                variant.html.replace(SLOT_UNSUBSCRIBE_URL, unsubscribe)
                .replace(SLOT_PREFERENCES_URL, preferences)
                .replace(SLOT_NAME, subscriber.name or "")
            )
            mail = Mail(
                from_email="news@example.com",
                to_emails=subscriber.email,
                subject=variant.subject,
                html_content=html,
            )
            client.send(mail)
            session.add(
                Delivery(
                    issue_id=args.issue_id,
                    subscriber_id=subscriber.id,
                    variant=subscriber.language,
                    status="accepted",
                    accepted_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                )
            )
            session.commit()
            sent += 1
    seconds = time.monotonic() - started
    engine.dispose()
    return {
        "provider": "sendgrid-naive",
        "recipients": sent,
        "seconds": round(seconds, 2),
        "recipients_per_s": round(sent / seconds),
        "requests": server.stats().get("requests"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a fresh SQLite file)")
    parser.add_argument("--provider", choices=("sendgrid", "smtp"), default="sendgrid")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument(
        "--workers", default="1", help="`newsletter worker` processes, comma-separated: 1,2,4"
    )
    parser.add_argument(
        "--processes",
        default="1",
        help="sending processes of one `send_issue` (forked after planning), e.g. 1,2",
    )
    parser.add_argument(
        "--concurrency", type=int, help="cap on batches in flight (default: the setting's, 16)"
    )
    parser.add_argument(
        "--fixed", action="store_true", help="a fixed --concurrency instead of the adaptive one"
    )
    parser.add_argument(
        "--limit-seconds", type=float, default=5.0,
        help="measure the server's (SendGrid) or a fresh sink's (SMTP) own limit this long "
        "after each run (0: skip)",
    )  # fmt: skip
    parser.add_argument("--limit-clients", type=int, default=3, help="client processes for it")
    parser.add_argument("--latency", type=float, default=0.0, help="SendGrid: seconds per answer")
    parser.add_argument(
        "--rate-limit", type=float, default=0.0,
        help="SendGrid: requests/s the server takes (429 + Retry-After above); the run then "
        "reports the share of that rate achieved and the share of requests answered 429",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--message", choices=("synthetic", "demo"), default="synthetic",
        help="the issue's variants: synthetic (~12 KB of HTML, the name in the first line) or "
        "the ones `newsletter demo` renders from its sample articles",
    )  # fmt: skip
    parser.add_argument(
        "--sink", choices=("counter", "aiosmtpd", "postfix"), default="counter",
        help="SMTP: the lean counting sink, aiosmtpd (--fast-data), or Postfix's smtp-sink "
        "(C; installed with Debian's postfix package)",
    )  # fmt: skip
    parser.add_argument("--dkim", action="store_true", help="DKIM-sign (RSA-2048), SMTP only")
    parser.add_argument("--naive", action="store_true", help="also run the obvious approach")
    parser.add_argument("--naive-limit", type=int, default=3000, help="recipients for --naive")
    args = parser.parse_args()
    args.tmp = tempfile.mkdtemp(prefix="bench-send-")
    schema = None
    if args.database_url:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.database_url.replace("postgresql://", "postgresql+psycopg://"))
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        base = admin.url.render_as_string(hide_password=False)
        sep = "&" if "?" in base else "?"
        url = f"{base}{sep}options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{args.tmp}/bench.db"
    engine = make_engine(url)
    upgrade(engine)
    started = time.monotonic()
    demo = demo_variants(args.tmp) if args.message == "demo" else None
    args.issue_id = seed(session_factory(engine), args.subscribers, demo)
    engine.dispose()
    log(f"seeded {args.subscribers} subscribers in {time.monotonic() - started:.1f}s")
    results: list[dict[str, Any]] = []
    try:
        runs: list[tuple[int, int]] = []
        for w in (int(w) for w in args.workers.split(",")):
            runs += [(1, int(p)) for p in args.processes.split(",")] if w <= 1 else [(w, 1)]
        for workers, processes in runs:
            server = Server(args.provider, args.fail_rate, args.latency, args.rate_limit, args.sink)
            try:
                result = run_core(args, url, server, workers, processes)
            finally:
                sink = server.close()
            if args.provider == "smtp" and sink:
                # The sink counts messages received; more than the ledger accepted = duplicates.
                result["duplicates"] = max(0, sink["recipients"] - result["recipients"])
                result["missing"] = max(0, args.subscribers - sink["recipients"])
                result["sink_cpu_us_per_message"] = round(
                    result["server_cpu_s"] / max(result["recipients"], 1) * 1e6, 1
                )
                result["sink_connections"] = sink.get("connections")
                if args.limit_seconds > 0:
                    limit = smtp_sink_limit_for(args, url, sink.get("max_open_connections") or 4)
                    result["server_limit_per_s"] = round(limit["limit_per_s"])
                    result["ratio"] = round(
                        result["send_recipients_per_s"] / limit["limit_per_s"], 2
                    )
                    result["ratio_end_to_end"] = round(
                        result["recipients_per_s"] / limit["limit_per_s"], 2
                    )
                    result["sink_limit"] = limit
            results.append(result)
            print(json.dumps(result), flush=True)
        if args.naive:
            server = Server(args.provider, 0.0)
            try:
                naive = run_naive(args, url, server, min(args.naive_limit, args.subscribers))
            finally:
                server.close()
            naive["speedup"] = round(results[0]["recipients_per_s"] / naive["recipients_per_s"], 1)
            print(json.dumps(naive), flush=True)
            print(json.dumps(results[0]), flush=True)  # the last line is the core's figures
    finally:
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
