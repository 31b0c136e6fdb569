"""`newsletter issue send|status|pause|resume|cancel|resolve`: thin wrappers over the ledger."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import click

from newsletter.accounts.actors import cli_actor
from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app, plural
from newsletter.db.session import transaction
from newsletter.delivery import issue_state, ledger, operations
from newsletter.delivery.preflight import preflight
from newsletter.delivery.progress import Progress
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sending import SendReport, send_issue
from newsletter.delivery.status import (
    SendStatus,
    outcome_error,
    recipient_status,
    send_status,
)
from newsletter.engagement.subject_tests import status_line
from newsletter.issues.assembly import get_issue
from newsletter.providers.factory import make_provider
from newsletter.types import IssueStatus
from newsletter.worker import stop_on_signals

ISSUE = click.argument("issue_ref", metavar="ISSUE")
JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def _issue_id(app: AppContext, ref: str) -> int:
    with transaction(app.runtime().sessions) as session:
        return get_issue(session, ref).id


def _progress_bar(total: int, done: int) -> tuple[Any, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import (
        Progress as Bar,
    )

    bar = Bar(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8.0f}/s"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        transient=False,
    )
    task = bar.add_task("send", total=total, completed=done, rate=0.0, note="")

    def update(p: Progress) -> None:
        note = (
            f"waiting for provider events on {p.waiting} in-doubt "
            f"{'batch' if p.waiting == 1 else 'batches'}"
            if p.waiting
            else ""
        )
        bar.update(task, completed=p.done_before + p.settled, rate=p.rate, note=note)

    return bar, update


def _print_status(status: SendStatus, default_tz: Any = None) -> None:
    counts = status.recipients
    click.echo(f"issue {status.issue_id}: {status.issue_status}")
    click.echo(
        "recipients: "
        + ", ".join(f"{name.replace('_', ' ')} {counts[name]}" for name in counts)
        + f" (total {status.total})"
    )
    click.echo(
        "batches: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in status.batches.items())
    )
    for worker, batches in sorted(status.workers.items()):
        click.echo(f"  {worker}: " + ", ".join(f"{k} {v}" for k, v in sorted(batches.items())))
    if status.subject_test is not None:
        click.echo(status_line(status.subject_test, default_tz))
    if status.in_doubt_batches:
        click.secho(
            f"{counts['in_doubt']} recipients in {len(status.in_doubt_batches)} batches are in "
            "doubt (posted, answer lost): provider events settle them automatically; without "
            f"events, `newsletter issue resolve {status.issue_id} --resend` or `--skip`",
            fg="yellow",
        )
    if counts["failed"] and status.issue_status in ("sent_with_failures", "failed"):
        click.echo(
            f"{counts['failed']} recipients failed: `newsletter issue retry {status.issue_id} "
            "--dry-run` shows which failures a retry would send again"
        )


def _report_dict(report: SendReport) -> dict[str, Any]:
    data = {
        k: getattr(report, k)
        for k in (
            "issue_id",
            "accepted",
            "failed",
            "skipped",
            "retried",
            "in_doubt",
            "batches",
            "requests",
            "paused_reason",
        )
    }
    data["seconds"] = round(report.seconds, 3)
    data["status"] = report.status.as_dict() if report.status else None
    return data


@click.command("send")
@ISSUE
@click.option("--enqueue", is_flag=True, help="Only queue the batches; workers send them.")
@click.option(
    "--concurrency",
    type=int,
    help="At most this many batches in flight; the send finds the provider's rate below it "
    "(NEWSLETTER_SEND_CONCURRENCY, 16).",
)
@click.option("--batch-size", type=int, help="Recipients per request (NEWSLETTER_SEND_BATCH_SIZE).")
@click.option("--lease", "lease_s", type=float, help="Seconds a claimed batch stays leased (120).")
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Sending processes on this host (each with --concurrency batches in flight).",
)
@JSON
@pass_app
@handle_errors
def send_cmd(
    app: AppContext,
    issue_ref: str,
    enqueue: bool,
    concurrency: int | None,
    batch_size: int | None,
    lease_s: float | None,
    processes: int,
    as_json: bool,
) -> None:
    """Send ISSUE (an id, YYYY-MM-DD or list:YYYY-MM-DD) to every eligible subscriber.

    Safe to run again after an interruption: nobody gets the issue twice. With --enqueue (or
    NEWSLETTER_WORKERS=external) the batches are queued and `newsletter worker` sends them.
    """
    runtime = app.runtime()
    settings = app.settings
    config = SendConfig.from_settings(
        settings, concurrency=concurrency, batch_size=batch_size, lease_s=lease_s
    )
    issue_id = _issue_id(app, issue_ref)
    provider = make_provider(settings)
    try:
        preflight(settings, provider)
    except BaseException:
        provider.close()
        raise
    if enqueue or settings.workers == "external":
        provider.close()
        with transaction(runtime.sessions) as session:
            report = operations.start_send(
                session, settings, runtime.clock, cli_actor(), issue_id,
                batch_size=config.batch_size,
            )  # fmt: skip
        if as_json:
            emit_json(
                {
                    "issue_id": issue_id,
                    "added": report.added,
                    "batches": report.batches,
                    "total": report.total,
                    "queued_for_workers": True,
                }
            )
        else:
            click.echo(
                f"issue {issue_id}: {report.added} recipients queued in {report.batches} batches "
                f"({report.total} in total); start `newsletter worker` to send them"
            )
        return
    try:
        with transaction(runtime.sessions) as session:  # the decision to send, with who made it
            if ledger.get_issue_row(session, issue_id).status == IssueStatus.BUILT:
                operations.start_send(
                    session, settings, runtime.clock, cli_actor(), issue_id,
                    batch_size=config.batch_size,
                )  # fmt: skip
    except BaseException:
        provider.close()
        raise
    stop = threading.Event()
    extra: dict[str, Any] = {}
    if processes > 1:
        extra = {"processes": processes, "provider_factory": partial(make_provider, settings)}
    try:
        with stop_on_signals(stop):
            if as_json:
                result = send_issue(
                    runtime,
                    settings,
                    provider,
                    issue_id,
                    runtime.clock,
                    config=config,
                    stop=stop,
                    **extra,
                )
            else:
                result = _send_with_bar(runtime, settings, provider, issue_id, config, stop, extra)
    finally:
        provider.close()
    if as_json:
        emit_json(_report_dict(result))
    else:
        _print_send(issue_id, result, stop)
    if result.status is not None and not stop.is_set() and not result.paused_reason:
        error = outcome_error(result.status)
        if error is not None:
            raise error


def _print_send(issue_id: int, result: SendReport, stop: threading.Event) -> None:
    click.echo(
        f"issue {issue_id}: {result.accepted} accepted, {result.failed} failed, "
        f"{result.skipped} skipped in {result.seconds:.1f}s ({result.requests} requests)"
    )
    if result.paused_reason:
        click.secho(
            f"paused: {result.paused_reason}; fix the cause, then "
            f"`newsletter issue resume {issue_id}`",
            fg="red",
        )
    if stop.is_set():
        click.echo("stopped: run the same command again to send the rest")
    if result.status is not None:
        _print_status(result.status)


def _send_with_bar(
    runtime: Any,
    settings: Any,
    provider: Any,
    issue_id: int,
    config: SendConfig,
    stop: threading.Event,
    extra: dict[str, Any],
) -> SendReport:
    with transaction(runtime.sessions) as session:
        before = send_status(session, issue_id)
    bar, update = _progress_bar(max(before.total, 1), before.done)
    with bar:
        return send_issue(
            runtime,
            settings,
            provider,
            issue_id,
            runtime.clock,
            config=config,
            stop=stop,
            progress=update,
            **extra,
        )


@click.command("status")
@ISSUE
@click.option("--recipient", "email", help="Show one recipient's outcome (by e-mail address).")
@JSON
@pass_app
@handle_errors
def status_cmd(app: AppContext, issue_ref: str, email: str | None, as_json: bool) -> None:
    """Where the send of ISSUE stands: recipients and batches by state, per worker."""
    issue_id = _issue_id(app, issue_ref)
    with transaction(app.runtime().sessions) as session:
        if email:
            outcome = recipient_status(session, issue_id, email)
            if as_json:
                from dataclasses import asdict

                emit_json(asdict(outcome))
            else:
                click.echo(
                    f"{outcome.email}: {outcome.status} (variant {outcome.variant}, "
                    f"batch {outcome.batch_id} {outcome.batch_status})"
                    + (f": {outcome.error}" if outcome.error else "")
                    + (f"; last event {outcome.last_event}" if outcome.last_event else "")
                )
            return
        status = send_status(session, issue_id)
    if as_json:
        emit_json(status.as_dict())
    else:
        _print_status(status, app.settings.timezone)


@click.command("pause")
@ISSUE
@pass_app
@handle_errors
def pause_cmd(app: AppContext, issue_ref: str) -> None:
    """Pause a send: no new batch starts; batches in flight finish and are recorded."""
    issue_id = _issue_id(app, issue_ref)
    with transaction(app.runtime().sessions) as session:
        operations.pause(session, app.runtime().clock, cli_actor(), issue_id)
    click.echo(f"issue {issue_id}: paused; `newsletter issue resume {issue_id}` continues it")


@click.command("resume")
@ISSUE
@pass_app
@handle_errors
def resume_cmd(app: AppContext, issue_ref: str) -> None:
    """Resume a paused send (by an operator or by the circuit breaker)."""
    issue_id = _issue_id(app, issue_ref)
    with transaction(app.runtime().sessions) as session:
        operations.resume(session, app.runtime().clock, cli_actor(), issue_id)
    click.echo(
        f"issue {issue_id}: sending again; workers pick it up, or run "
        f"`newsletter issue send {issue_id}`"
    )


@click.command("cancel")
@ISSUE
@click.confirmation_option(prompt="Cancel the rest of this send for good?")
@pass_app
@handle_errors
def cancel_cmd(app: AppContext, issue_ref: str) -> None:
    """Cancel the rest of a send: recipients still queued will never get this issue."""
    issue_id = _issue_id(app, issue_ref)
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        cancelled = operations.cancel(session, runtime.clock, cli_actor(), issue_id)
    click.echo(
        f"issue {issue_id}: cancelled; {plural(cancelled, 'queued recipient')} will not get it"
    )


@click.command("resolve")
@ISSUE
@click.option("--resend", "choice", flag_value="resend", help="Send in-doubt recipients again.")
@click.option("--skip", "choice", flag_value="skip", help="Do not send them again.")
@JSON
@pass_app
@handle_errors
def resolve_cmd(app: AppContext, issue_ref: str, choice: str | None, as_json: bool) -> None:
    """Decide about in-doubt batches (posted, then the sender died before recording).

    Recipients with a provider event (delivered, bounce...) are settled as accepted first.
    --resend: the rest are queued again (some may get the issue twice).
    --skip: the rest are marked skipped (some may never get it).
    """
    if choice is None:
        raise click.UsageError("choose --resend or --skip")
    issue_id = _issue_id(app, issue_ref)
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        report = operations.resolve(
            session, runtime.clock, cli_actor(), issue_id, resend=choice == "resend"
        )
        issue_state.finish_if_done(session, issue_id, runtime.clock)
    if as_json:
        emit_json(
            {
                "issue_id": issue_id,
                "reconciled": report.reconciled,
                "requeued": report.requeued,
                "skipped": report.skipped,
            }
        )
        return
    click.echo(
        f"issue {issue_id}: {report.reconciled} settled from provider events, "
        f"{report.requeued} queued again, {report.skipped} skipped"
    )
    if report.requeued:
        click.echo(f"run `newsletter issue send {issue_id}` (or let workers) send them")


@click.command("retry")
@ISSUE
@click.option("--dry-run", is_flag=True, help="Only show how many would be sent again, and why.")
@click.option("--enqueue", is_flag=True, help="Only queue them; workers send them.")
@JSON
@pass_app
@handle_errors
def retry_cmd(app: AppContext, issue_ref: str, dry_run: bool, enqueue: bool, as_json: bool) -> None:
    """Send ISSUE again to recipients whose failure was not about their address.

    After fixing what failed the send (a refused From or API key, an outage), every such
    recipient gets the issue exactly once. Addresses the provider refused stay failed.
    """
    runtime = app.runtime()
    settings = app.settings
    issue_id = _issue_id(app, issue_ref)
    if not dry_run:
        provider = make_provider(settings)
        try:
            preflight(settings, provider)
        finally:
            provider.close()
    config = SendConfig.from_settings(settings)
    with transaction(runtime.sessions) as session:
        report = operations.retry(
            session,
            runtime.clock,
            cli_actor(),
            issue_id,
            batch_size=config.batch_size,
            dry_run=dry_run,
        )
    if as_json:
        emit_json(
            {
                "issue_id": issue_id,
                "dry_run": dry_run,
                "retryable": report.retryable,
                "requeued": report.requeued,
                "kept_failed": report.kept_failed,
                "reasons": report.reasons,
            }
        )
    else:
        verb = "would be sent again" if dry_run else "queued again"
        click.echo(f"issue {issue_id}: {plural(report.retryable, 'recipient')} {verb}")
        for reason, count in report.reasons.items():
            click.echo(f"  {count}: {reason}")
        if report.kept_failed:
            stay = "stays" if report.kept_failed == 1 else "stay"
            click.echo(
                f"  {plural(report.kept_failed, 'refused address', 'refused addresses')} "
                f"{stay} failed"
            )
    if dry_run or not report.requeued or enqueue or settings.workers == "external":
        return
    send_cmd.callback(  # type: ignore[misc]
        issue_ref=str(issue_id), enqueue=False, concurrency=None, batch_size=None,
        lease_s=None, processes=1, as_json=as_json,
    )  # fmt: skip


COMMANDS: list[click.Command] = [
    send_cmd,
    retry_cmd,
    status_cmd,
    pause_cmd,
    resume_cmd,
    cancel_cmd,
    resolve_cmd,
]
