"""Exactly once as a user sees it: `newsletter issue send` against a SendGrid-compatible server
that answers some requests only after the client's timeout (taken, answered late) or drops some
without taking them, with `newsletter serve` receiving the server's signed events.

    python scripts/bench_in_doubt.py --subscribers 5000 --late-rate 0.3
    python scripts/bench_in_doubt.py --subscribers 5000 --drop-rate 0.1 --reconcile-after 10
    python scripts/bench_in_doubt.py --subscribers 5000 --late-rate 0.3 --no-events

Everything runs as separate processes, as in production: the stand-in server
(`newsletter.testing.sendgrid_server`), `newsletter serve` (the webhook) and `newsletter issue
send`, timed from start to exit. One JSON line: what the server received (messages, unique,
duplicates, late, dropped), what the ledger says (accepted, in doubt, failed), the issue's
status, the command's exit code and wall time.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_send import API_KEY, FROM, SECRET, seed  # noqa: E402

from newsletter.db.migrate import upgrade  # noqa: E402
from newsletter.db.session import make_engine, session_factory  # noqa: E402
from newsletter.delivery.status import send_status  # noqa: E402
from newsletter.testing.process import spawn_announcing  # noqa: E402

CLI = [sys.executable, "-c", "from newsletter.cli.main import main; main()"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.post(url, content=b"[]", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up") from None
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--late-rate", type=float, default=0.0)
    parser.add_argument("--late-after", type=float, default=3.0, help="seconds late")
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--timeout", type=int, default=2, help="NEWSLETTER_SENDGRID_TIMEOUT")
    parser.add_argument("--reconcile-after", type=int, default=30)
    parser.add_argument("--no-events", action="store_true", help="no webhook key, no events")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-in-doubt-"))
    url = args.database_url or f"sqlite:///{work / 'newsletter.db'}"
    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    issue_id = seed(sessions, args.subscribers)

    key = ec.generate_private_key(ec.SECP256R1())
    key_file = work / "events.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    (work / "none.toml").write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env.update(
        NEWSLETTER_DATABASE_URL=url,
        NEWSLETTER_PROVIDER="sendgrid",
        SENDGRID_API_KEY=API_KEY,
        NEWSLETTER_SECRET_KEY=SECRET,
        NEWSLETTER_BASE_URL="https://news.example.com",
        NEWSLETTER_FROM=FROM,
        NEWSLETTER_VAR_DIR=str(work / "var"),
        NEWSLETTER_CONFIG=str(work / "none.toml"),
        NEWSLETTER_SENDGRID_TIMEOUT=str(args.timeout),
        NEWSLETTER_RECONCILE_AFTER=str(args.reconcile_after),
        NEWSLETTER_SEND_BATCH_SIZE=str(args.batch_size),
    )
    if not args.no_events:
        env["NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY"] = public
    port = _free_port()
    webhook = f"http://127.0.0.1:{port}/webhooks/sendgrid"
    serve = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL
    )
    server_args = [
        "--api-key", API_KEY, "--late-rate", str(args.late_rate),
        "--late-after", str(args.late_after), "--drop-rate", str(args.drop_rate), "--seed", "7",
    ]  # fmt: skip
    if not args.no_events:
        server_args += ["--events-url", webhook, "--events-key-file", str(key_file)]
    server, server_url = spawn_announcing(
        "newsletter.testing.sendgrid_server", server_args, "http", "SendGrid-compatible server"
    )
    try:
        _wait_until_up(webhook)
        env["NEWSLETTER_SENDGRID_HOST"] = server_url
        started = time.monotonic()
        send = subprocess.run(
            [*CLI, "issue", "send", str(issue_id), "--json"],
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        stats = httpx.get(server_url + "/_stats", timeout=10).json()
        with sessions() as session:
            status = send_status(session, issue_id)
    finally:
        serve.terminate()
        server.terminate()
        serve.wait(10)
        server.wait(10)
        engine.dispose()
    print(
        json.dumps(
            {
                "subscribers": args.subscribers,
                "late_rate": args.late_rate,
                "drop_rate": args.drop_rate,
                "events": not args.no_events,
                "server_messages": stats["accepted_recipients"],
                "server_unique": stats["unique_recipients"],
                "duplicates": stats["duplicates"],
                "late": stats["late"],
                "dropped": stats["dropped"],
                "ledger_accepted": status.recipients["accepted"],
                "ledger_in_doubt": status.recipients["in_doubt"],
                "ledger_failed": status.recipients["failed"],
                "missing": args.subscribers - stats["unique_recipients"],
                "issue_status": status.issue_status,
                "exit_code": send.returncode,
                "stderr": send.stderr.strip()[-300:],
                "seconds": round(seconds, 1),
            },
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
