"""`newsletter worker`: send the queued batches of every issue that is sending."""

from __future__ import annotations

import threading

import click

from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app
from newsletter.delivery.sendconfig import SendConfig
from newsletter.providers.factory import make_provider
from newsletter.worker import run_worker, stop_on_signals


@click.command("worker")
@click.option(
    "--concurrency",
    type=int,
    help="At most this many batches in flight (NEWSLETTER_SEND_CONCURRENCY).",
)
@click.option("--once", is_flag=True, help="Exit when no batch is left instead of waiting.")
@click.option("--issue", "issue_id", type=int, help="Only this issue (id); exit when it is done.")
@click.option("--lease", "lease_s", type=float, help="Seconds a claimed batch stays leased (120).")
@click.option("--json", "as_json", is_flag=True, help="Print the totals as JSON on exit.")
@pass_app
@handle_errors
def worker_cmd(
    app: AppContext,
    concurrency: int | None,
    once: bool,
    issue_id: int | None,
    lease_s: float | None,
    as_json: bool,
) -> None:
    """Send batches queued by `newsletter issue send --enqueue` (or the scheduler).

    Run as many as you like on PostgreSQL: they share the work through leases. SIGTERM or
    Ctrl-C finishes the batches in flight, records them and exits 0.
    """
    runtime = app.runtime()
    config = SendConfig.from_settings(app.settings, concurrency=concurrency, lease_s=lease_s)
    provider = make_provider(app.settings)
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            progress = run_worker(
                runtime, provider, config, issue_id=issue_id, once=once, stop=stop
            )
    finally:
        provider.close()
    totals = {
        "accepted": progress.accepted,
        "failed": progress.failed,
        "skipped": progress.skipped,
        "retried": progress.retried,
        "in_doubt": progress.in_doubt,
        "batches": progress.batches,
        "requests": progress.requests,
    }
    if as_json:
        emit_json(totals)
    else:
        click.echo("worker stopped: " + ", ".join(f"{k} {v}" for k, v in totals.items()))


COMMANDS: list[click.Command] = [worker_cmd]
