"""Measure the providers' fast paths against the local servers (run in their own processes).

    python scripts/bench_providers.py [--smtp-recipients 100000] [--threads 4]

1. SendGrid payload for 1000 recipients: the `sendgrid` package's Mail/Personalization helpers
   vs what the provider does (JSON text per plain recipient, dicts + orjson for the rest).
2. 20 requests of 1000 personalizations to the local SendGrid-compatible server: one pooled
   keep-alive httpx.Client vs a new connection per request (what python_http_client does).
3. Per-recipient MIME: compiled template vs building an EmailMessage per recipient.
4. SMTP throughput: N recipients through the pooled SmtpProvider to the aiosmtpd sink.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.config import Secret  # noqa: E402
from newsletter.providers.base import Batch, PreparedMessage, Recipient  # noqa: E402
from newsletter.providers.mime import build_message, slot_values, template_for  # noqa: E402
from newsletter.providers.sendgrid import SendGridProvider, build_payload  # noqa: E402
from newsletter.providers.smtp import SmtpProvider, parse_smtp_url  # noqa: E402
from newsletter.render.mime import build_mime  # noqa: E402
from newsletter.testing.sendgrid_server import SendGridServer, ServerProcess  # noqa: E402
from newsletter.testing.smtp_sink import (  # noqa: E402
    SinkProcess,
    self_signed_certificate,
    server_tls_context,
)

KEY = "bench-key"


def small_message() -> PreparedMessage:
    """A confirmation-sized message (~2 KB): shows the per-transaction ceiling."""
    return PreparedMessage(
        issue_id=None,
        variant="ja",
        subject="AI日報: 購読の確認",
        html='<p>こんにちは。</p><p><a href="-preferences_url-">設定</a></p>' * 10,
        text="こんにちは。設定: -preferences_url-\n" * 10,
        from_name="AI日報",
        from_email="news@ainippo.example",
        bulk=False,
    )


def message(variant: str = "ja") -> PreparedMessage:
    """A real rendered variant of an 8-article issue (the renderer's own sample articles)."""
    if variant == "small":
        return small_message()
    from newsletter.config import load_settings
    from newsletter.render.renderer import render_issue_variants
    from newsletter.render.view import issue_view_from_dicts
    from tests.fixtures.render import ISSUE_DATE, make_article

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            {},
            database_url=f"sqlite:///{tmp}/unused.db",
            var_dir=Path(tmp),
            secret_keys=(Secret("bench-secret-key-0123456789"),),
            base_url="https://news.example.com",
        )
        view = issue_view_from_dicts(1, ISSUE_DATE, [make_article(n) for n in range(1, 9)])
        rendered = render_issue_variants(view, settings)[variant]
    return PreparedMessage(
        issue_id=1,
        variant=variant,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        from_name="AI日報",
        from_email="news@ainippo.example",
        list_id="AI日報 <daily.ainippo.example>",
        categories=("newsletter", variant),
    )


def recipients(count: int, start: int = 0) -> list[Recipient]:
    return [
        Recipient(
            delivery_id=n,
            subscriber_id=n,
            email=f"reader{n}@example.com",
            name=f"読者{n}",
            unsubscribe_url=f"https://news.example.com/u/{'t' * 40}{n}",
            preferences_url=f"https://news.example.com/p/{'t' * 40}{n}",
            unsubscribe_mailto="mailto:unsubscribe@ainippo.example",
        )
        for n in range(start, start + count)
    ]


def best_of(runs: int, func: Callable[[], object]) -> float:
    """Best CPU time of `runs` calls: robust when other work shares the machine."""
    times = []
    for _ in range(runs):
        started = time.process_time()
        func()
        times.append(time.process_time() - started)
    return min(times)


def bench_payload() -> dict[str, float]:
    from sendgrid.helpers.mail import (
        Content,
        CustomArg,
        Email,
        Header,
        Mail,
        Personalization,
        Substitution,
        To,
    )

    msg = message()
    people = recipients(1000)
    batch = Batch(1, msg, people)

    def with_helpers() -> bytes:
        mail = Mail()
        mail.from_email = Email(msg.from_email, msg.from_name)
        mail.subject = msg.subject
        mail.add_content(Content("text/plain", msg.text))
        mail.add_content(Content("text/html", msg.html))
        for r in people:
            p = Personalization()
            p.add_to(To(r.email, r.name))
            for key, value in slot_values(r).items():
                p.add_substitution(Substitution(key, value))
            for key, value in (
                ("issue_id", "1"),
                ("batch_id", "1"),
                ("delivery_id", str(r.delivery_id)),
            ):
                p.add_custom_arg(CustomArg(key, value))
            p.add_header(Header("List-Unsubscribe", f"<{r.unsubscribe_url}>"))
            mail.add_personalization(p)
        return json.dumps(mail.get()).encode()

    def direct() -> bytes:
        return build_payload(batch, people, sandbox=False).data

    return {
        "sendgrid_helpers_cpu_ms": best_of(5, with_helpers) * 1000,
        "direct_dicts_orjson_cpu_ms": best_of(5, direct) * 1000,
        "request_bytes": len(direct()),
    }


def _post_all(client: httpx.Client, url: str, bodies: list[bytes], threads: int) -> float:
    """Seconds to post every body with `threads` threads sharing `client`."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def post(part: list[bytes]) -> None:
        for body in part:
            assert client.post(url, content=body, headers=headers).status_code == 202

    workers = [threading.Thread(target=post, args=(bodies[i::threads],)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def bench_http(requests: int = 40) -> dict[str, float]:
    """Pre-built 1000-personalization bodies, so only the connection handling differs."""
    server = ServerProcess.start(api_key=KEY)
    endpoint = server.url + "/v3/mail/send"
    try:
        msg = message()
        batches = [Batch(n, msg, recipients(1000, n * 1000)) for n in range(requests)]
        bodies = [build_payload(b, b.recipients, sandbox=False).data for b in batches]
        with httpx.Client() as client:
            keep_alive = _post_all(client, endpoint, bodies, 1)
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(limits=no_reuse) as client:
            new_connection = _post_all(client, endpoint, bodies, 1)
        with httpx.Client(limits=httpx.Limits(max_connections=4)) as client:
            parallel = _post_all(client, endpoint, bodies, 4)
        provider = SendGridProvider(Secret(KEY), server.url, max_connections=4)
        started = time.perf_counter()
        workers = [
            threading.Thread(target=lambda part=part: [provider.send_batch(b) for b in part])
            for part in (batches[0::4], batches[1::4], batches[2::4], batches[3::4])
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        end_to_end = time.perf_counter() - started
        provider.close()
        stats = server.stats()
    finally:
        server.stop()
    return {
        "request_bytes": len(bodies[0]),
        "keep_alive_ms_per_request": keep_alive / requests * 1000,
        "new_connection_ms_per_request": new_connection / requests * 1000,
        "server_requests_per_s_4_connections": requests / parallel,
        "provider_4_threads_requests_per_s": requests / end_to_end,
        "server_connections": stats["connections"],
    }


def bench_tls(requests: int = 40) -> dict[str, float]:
    """Small requests over HTTPS: what a TLS handshake per request (no keep-alive) costs."""
    import ssl

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed_certificate(Path(tmp))
        server_ctx = server_tls_context(cert, key)
        client_ctx = ssl.create_default_context(cafile=str(cert))
        msg = message()
        batch = Batch(1, msg, recipients(10))
        body = build_payload(batch, batch.recipients, sandbox=False).data
        with SendGridServer(api_key=KEY, keep_requests=False, ssl_context=server_ctx) as server:
            endpoint = server.url + "/v3/mail/send"
            bodies = [body] * requests
            with httpx.Client(verify=client_ctx) as client:
                keep_alive = _post_all(client, endpoint, bodies, 1)
            no_reuse = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(verify=client_ctx, limits=no_reuse) as client:
                new_connection = _post_all(client, endpoint, bodies, 1)
    return {
        "request_bytes": len(body),
        "tls_keep_alive_ms_per_request": keep_alive / requests * 1000,
        "tls_new_connection_ms_per_request": new_connection / requests * 1000,
    }


def bench_mime() -> dict[str, float]:
    msg = message()
    people = recipients(2000)
    sender = f"{msg.from_name} <{msg.from_email}>"
    compiled = best_of(3, lambda: [build_message(msg, r) for r in people]) / len(people)
    few = people[:200]
    per_message = best_of(
        3,
        lambda: [
            build_mime(msg, sender=sender, to=r.email, slots=slot_values(r)).as_bytes() for r in few
        ],
    ) / len(few)
    return {
        "compiled_template_cpu_us_per_message": compiled * 1e6,
        "emailmessage_per_recipient_cpu_us_per_message": per_message * 1e6,
        "message_bytes": len(build_message(msg, people[0])),
    }


def bench_smtp(total: int, threads: int, variant: str) -> dict[str, float]:
    sink_process = SinkProcess.start("--count-only", "--fast-data")
    url = sink_process.url
    try:
        provider = SmtpProvider(parse_smtp_url(f"{url}&pool={threads}"))
        msg = message(variant)
        batches = [Batch(n, msg, recipients(1000, n * 1000)) for n in range(total // 1000)]
        accepted = 0
        lock = threading.Lock()

        def worker(part: list[Batch]) -> None:
            nonlocal accepted
            for batch in part:
                count = len(provider.send_batch(batch).accepted)
                with lock:
                    accepted += count

        started = time.perf_counter()
        cpu_started = time.process_time()
        pool = [
            threading.Thread(target=worker, args=(batches[i::threads],)) for i in range(threads)
        ]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu_started
        provider.close()
    finally:
        sink = sink_process.stop()
    return {
        "recipients": total,
        "variant": variant,
        "message_bytes_8bitmime": len(template_for(msg).render(recipients(1)[0], eightbit=True)),
        "threads": threads,
        "accepted": accepted,
        "sink_messages": sink["messages"],
        "sink_connections": sink["connections"],
        "seconds": elapsed,
        "messages_per_s": accepted / elapsed,
        "client_cpu_us_per_message": client_cpu / accepted * 1e6,
        "sink_cpu_us_per_message_incl_startup": sink["cpu_seconds"] / accepted * 1e6,
        # one core each on an otherwise idle 2-core machine: the slower side sets the pace
        "cpu_bound_ceiling_messages_per_s": accepted / max(client_cpu, sink["cpu_seconds"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtp-recipients", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--variant", default="ja", choices=["ja", "en", "both", "small"])
    parser.add_argument("--only", choices=["payload", "http", "tls", "mime", "smtp"])
    args = parser.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    parts = {
        "payload": bench_payload,
        "http": bench_http,
        "tls": bench_tls,
        "mime": bench_mime,
        "smtp": lambda: bench_smtp(args.smtp_recipients, args.threads, args.variant),
    }
    for name, func in parts.items():
        if args.only and name != args.only:
            continue
        result = func()
        print(
            name,
            json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}),
        )


if __name__ == "__main__":
    main()
