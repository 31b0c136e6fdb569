"""Load test of POST /webhooks/sendgrid on loopback: signed batches, stored exactly once.

Serves the app with uvicorn in a separate process on 127.0.0.1, seeds one sent issue with
deliveries, posts SendGrid-shaped signed batches (default 1000 events each, as SendGrid
sends) from a few client threads, bounded by a batch count and a time limit, redelivers one
batch, then checks that every event was stored exactly once. Prints one JSON document.

    python scripts/bench_webhooks.py [--batches 20] [--batch-size 1000] [--concurrency 2]
        [--max-seconds 60] [--database-url postgresql+psycopg://postgres@127.0.0.1/test]

The database must be empty (a fresh SQLite file is the default); for PostgreSQL give a fresh
schema, e.g. `...?options=-csearch_path%3Dbench` after `CREATE SCHEMA bench`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.clock import SYSTEM_CLOCK  # noqa: E402
from newsletter.config import Secret, load_settings  # noqa: E402
from newsletter.db.models import (  # noqa: E402
    Delivery,
    Event,
    Issue,
    MailingList,
    Subscriber,
    Subscription,
)
from newsletter.runtime import Runtime  # noqa: E402
from subscribers.hashing import EmailHasher  # noqa: E402

SECRET = "bench-secret-key-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(runtime: Runtime, recipients: int) -> tuple[int, list[tuple[int, int, str]]]:
    """A sent issue with `recipients` deliveries: (delivery id, subscriber id, email)."""
    now = SYSTEM_CLOCK.now()
    with runtime.sessions.begin() as session:
        mailing_list = MailingList(slug="daily", name="AI日報", created_at=now)
        session.add(mailing_list)
        session.flush()
        issue = Issue(
            list_id=mailing_list.id,
            issue_date=now.date(),
            status="sent",
            window_start=now,
            cutoff_at=now,
            created_at=now,
            built_at=now,
            sent_at=now,
        )
        session.add(issue)
        session.flush()
        hasher = EmailHasher.load(session)
        emails = [f"reader{n:06d}@example.com" for n in range(recipients)]
        session.execute(
            insert(Subscriber),
            [
                {
                    "email": e,
                    "email_key": e,
                    "email_hash": hasher(e),
                    "language": "ja",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for e in emails
            ],
        )
        ids = dict(
            (row[0], row[1]) for row in session.execute(select(Subscriber.email, Subscriber.id))
        )
        session.execute(
            insert(Subscription),
            [
                {
                    "subscriber_id": ids[e],
                    "list_id": mailing_list.id,
                    "status": "active",
                    "source": "import",
                    "created_at": now,
                    "updated_at": now,
                }
                for e in emails
            ],
        )
        session.execute(
            insert(Delivery),
            [
                {
                    "issue_id": issue.id,
                    "subscriber_id": ids[e],
                    "variant": "ja",
                    "status": "accepted",
                    "updated_at": now,
                }
                for e in emails
            ],
        )
        rows = session.execute(
            select(Delivery.id, Delivery.subscriber_id).where(Delivery.issue_id == issue.id)
        ).all()
        by_sub = {v: k for k, v in ids.items()}
        return issue.id, [(d, s, by_sub[s]) for d, s in rows]


def _batch(number: int, size: int, issue_id: int, recipients: list[tuple[int, int, str]]) -> bytes:
    kinds = ("processed", "delivered", "open", "click")
    ts = int(time.time())
    events = []
    for i in range(size):
        delivery_id, subscriber_id, email = recipients[(number * size + i) % len(recipients)]
        events.append(
            {
                "email": email,
                "timestamp": ts,
                "event": kinds[(number + i) % len(kinds)],
                "sg_event_id": f"bench-{number}-{i}",
                "sg_message_id": f"m{number}.filter",
                "issue_id": str(issue_id),
                "delivery_id": str(delivery_id),
                "subscriber_id": str(subscriber_id),
            }
        )
    return orjson.dumps(events)


def _sign(key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    signature = key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    database_url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    private = ec.generate_private_key(ec.SECP256R1())
    public_b64 = base64.b64encode(
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    settings = load_settings(
        {}, database_url=database_url, var_dir=tmp / "var", secret_keys=(Secret(SECRET),)
    )
    runtime = Runtime.open(settings, migrate=True)
    issue_id, recipients = _seed(runtime, args.recipients)

    port = _free_port()
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_VAR_DIR": str(tmp / "var"),
        "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": public_b64,
        "NEWSLETTER_LOG_FORMAT": "json",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "newsletter.web.asgi:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/webhooks/sendgrid"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)

        bodies = [_batch(n, args.batch_size, issue_id, recipients) for n in range(args.batches)]
        posted: list[int] = []
        failures: list[str] = []
        lock = threading.Lock()
        next_index = [0]
        stop_at = time.monotonic() + args.max_seconds

        def worker() -> None:
            with httpx.Client(timeout=60) as client:
                while time.monotonic() < stop_at:
                    with lock:
                        if next_index[0] >= len(bodies):
                            return
                        index = next_index[0]
                        next_index[0] += 1
                    body = bodies[index]
                    answer = client.post(url, content=body, headers=_sign(private, body))
                    with lock:
                        if answer.status_code == 200:
                            posted.append(answer.json()["stored"])
                        else:
                            failures.append(f"{answer.status_code} {answer.text[:200]}")

        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started

        with httpx.Client(timeout=60) as client:  # a redelivery must store nothing
            again = client.post(url, content=bodies[0], headers=_sign(private, bodies[0])).json()

        with runtime.sessions() as session:
            stored = session.scalar(select(func.count()).select_from(Event)) or 0
            distinct = session.scalar(select(func.count(func.distinct(Event.event_id)))) or 0
        events_posted = len(posted) * args.batch_size
        result = {
            "benchmark": "webhooks",
            "database": database_url.split(":", 1)[0],
            "machine": f"{os.cpu_count()}-core {platform.machine()}, Python "
            f"{platform.python_version()}",
            "batches": len(posted),
            "batch_size": args.batch_size,
            "concurrency": args.concurrency,
            "events_posted": events_posted,
            "events_stored": stored,
            "stored_exactly_once": stored == distinct == events_posted == sum(posted),
            "redelivery_stored": again["stored"],
            "failures": failures[:5],
            "seconds": round(elapsed, 3),
            "events_per_s": round(events_posted / elapsed, 1) if elapsed else None,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        print(json.dumps(result, indent=2))
        return 0 if result["stored_exactly_once"] and not failures else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        runtime.close()


if __name__ == "__main__":
    raise SystemExit(main())
