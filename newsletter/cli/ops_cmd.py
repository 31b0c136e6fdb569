"""`newsletter run`, `newsletter scheduler` and `newsletter health`: running the daily job."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import click

from newsletter.cli.context import ISO_DATE, AppContext, emit_json, handle_errors, pass_app
from newsletter.errors import (
    EXIT_FAILED,
    EXIT_IN_DOUBT,
    EXIT_SENT_WITH_FAILURES,
    UsageError,
)
from newsletter.logs import configure_logging
from newsletter.urls import DEFAULT_LIST_SLUG


def _parse_instant(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--at: expected an ISO date-time such as 2026-06-13T07:00:00+09:00, got {value!r}"
        ) from None
    if when.tzinfo is None:
        raise UsageError(f"--at: {value!r} needs a UTC offset (e.g. +09:00 or Z)")
    return when.astimezone(UTC)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM/SIGINT set the event (the batch in flight finishes); handlers are restored."""
    stop = threading.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.getsignal(signum) for signum in signals}
    for signum in signals:
        signal.signal(signum, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# A run that ended without settling everyone says so to the operator's shell.
_RUN_EXIT_CODES = {
    "in_doubt": EXIT_IN_DOUBT,
    "sent_with_failures": EXIT_SENT_WITH_FAILURES,
    "failed": EXIT_FAILED,
}


@click.command()
@click.option(
    "--date",
    "issue_date",
    type=ISO_DATE,
    help="Issue date (YYYY-MM-DD); default: the current one.",
)
@click.option(
    "--list", "list_slug", default=DEFAULT_LIST_SLUG, show_default=True, help="List slug."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@pass_app
@handle_errors
def run(app: AppContext, issue_date: date | None, list_slug: str, as_json: bool) -> None:
    """Run the daily job once by hand: build (once), render, then send or enqueue.

    Safe to repeat and to run beside the scheduler: the database lets one run send.
    """
    from newsletter.pipeline import run_daily

    configure_logging(app.settings.log_format)
    with _stop_on_signals() as stop:
        report = run_daily(app.runtime(), list_slug=list_slug, issue_date=issue_date, stop=stop)
    if as_json:
        emit_json(report.to_dict())
        if report.outcome in _RUN_EXIT_CODES:
            sys.exit(_RUN_EXIT_CODES[report.outcome])
        return
    click.echo(f"{report.list_slug} {report.issue_date or ''}: {report.outcome}".strip())
    if report.issue_id is not None:
        how = "built now" if report.built else "already built"
        click.echo(f"  issue {report.issue_id} ({how}), status {report.status}")
    if report.reason:
        click.echo(f"  {report.reason}")
    if report.send:
        counts = ", ".join(
            f"{k} {report.send[k]}"
            for k in ("accepted", "failed", "skipped", "in_doubt")
            if k in report.send
        )
        click.echo(f"  {counts}")
    code = _RUN_EXIT_CODES.get(report.outcome)
    if code is not None:
        click.secho(
            f"error: {report.list_slug} {report.issue_date}: {report.outcome.replace('_', ' ')}"
            + (f": {report.reason}" if report.reason else ""),
            fg="red",
            err=True,
        )
        sys.exit(code)


@click.command()
@click.option("--list", "list_slug", default=None, help="Only this list (default: every list).")
@click.option(
    "--at",
    "run_at",
    default=None,
    metavar="ISO-DATETIME",
    help="Operator's one-off run: run the pipeline once at this instant (with offset), then exit.",
)
@pass_app
@handle_errors
def scheduler(app: AppContext, list_slug: str | None, run_at: str | None) -> None:
    """Run every list's daily job at its send time, catching up after downtime.

    Stops cleanly on SIGTERM/SIGINT: the batch in flight is finished and recorded.
    """
    from newsletter.scheduler import Scheduler

    configure_logging(app.settings.log_format)
    when = _parse_instant(run_at) if run_at else None
    runner = Scheduler(app.runtime(), run_at=when, only_list=list_slug)
    runner.start()
    if when is not None and runner.failures:
        sys.exit(1)  # the one-off run failed: say so to the operator's shell


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option(
    "--provider",
    "ask_provider",
    is_flag=True,
    help="Also ask the provider whether it would take a send (API key, scopes, SMTP login).",
)
@pass_app
def health(app: AppContext, as_json: bool, ask_provider: bool) -> None:
    """Check database, provider, last issues, in-doubt batches, stuck sends and the scheduler.

    Exit code: 0 ok, 1 degraded, 2 failing.
    """
    from newsletter.clock import SYSTEM_CLOCK
    from newsletter.config import load_settings
    from newsletter.errors import SecretKeyError
    from newsletter.health import check_health, render_text

    key_problem = None
    try:  # never creates a key: a missing or weak one is reported, not fixed
        settings = load_settings(create_secret=False)
    except SecretKeyError as err:
        key_problem = err
        settings = load_settings(create_secret=False, secret_keys=())
    report = check_health(settings, SYSTEM_CLOCK, key_problem=key_problem, provider=ask_provider)
    if as_json:
        emit_json(report.to_dict())
    else:
        render_text(report, click.echo)
    sys.exit(report.exit_code)


COMMANDS: list[click.Command] = [run, scheduler, health]
