"""`newsletter subscribers ...`: thin commands over the `subscribers` package."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app, plural
from newsletter.db.session import transaction
from newsletter.errors import NotFoundError, ValidationError
from newsletter.types import SubscriptionStatus, SuppressionReason
from newsletter.urls import DEFAULT_LIST_SLUG
from subscribers import consent, erasure, exporting, importing, service, suppression
from subscribers.addresses import mask_email
from subscribers.import_rows import ImportSummary

LANGUAGES = click.Choice(["ja", "en", "both", "both-en"])
STATUSES = click.Choice([s.value for s in SubscriptionStatus])
SUPPRESS_REASONS = click.Choice(
    [r.value for r in SuppressionReason if r is not SuppressionReason.ERASED]
)


@click.group()
def subscribers() -> None:
    """Add, import, export, show and unsubscribe subscribers."""


@subscribers.command("add")
@click.argument("email")
@click.option("--name", help="Display name used in the greeting.")
@click.option("--language", type=LANGUAGES, default="ja", show_default=True)
@click.option("--list", "list_slug", default=DEFAULT_LIST_SLUG, show_default=True)
@click.option("--pending", is_flag=True, help="Add as pending (not mailed until confirmed).")
@click.option(
    "--send-confirmation",
    is_flag=True,
    help="Double opt-in: add as pending and email the confirmation link (configured provider).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the subscriber as JSON.")
@pass_app
@handle_errors
def add(
    app: AppContext,
    email: str,
    name: str | None,
    language: str,
    list_slug: str,
    pending: bool,
    send_confirmation: bool,
    as_json: bool,
) -> None:
    """Subscribe EMAIL to a list (records consent with source `admin`)."""
    runtime = app.runtime()
    if send_confirmation:
        _add_with_confirmation(app, email, name, language, list_slug)
        return
    with transaction(runtime.sessions) as session:
        subscription = service.add_subscriber(
            session,
            app.settings,
            runtime.clock,
            email=email,
            name=name,
            language=language,
            list_slug=list_slug,
            status="pending" if pending else "active",
        )
        described = service.describe(session, subscription.subscriber)
    if as_json:
        emit_json(described)
    else:
        click.echo(f"{described['email']}: {subscription.status} on {list_slug}")


def _add_with_confirmation(
    app: AppContext, email: str, name: str | None, language: str, list_slug: str
) -> None:
    """Same path as the web form: nothing is sent to an active or suppressed address."""
    from newsletter.providers.factory import make_provider

    runtime = app.runtime()
    provider = make_provider(app.settings)
    try:
        with transaction(runtime.sessions) as session:
            consent.start_signup(
                session,
                app.settings,
                runtime.clock,
                email=email,
                name=name,
                language=language,
                list_slug=list_slug,
                ip=None,
                user_agent=None,
                wording_version=None,
                provider=provider,
                source="admin",
            )
    finally:
        provider.close()
    click.echo(
        f"{mask_email(email)}: confirmation sent unless already active or suppressed on {list_slug}"
    )


@subscribers.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def show(app: AppContext, email: str, as_json: bool) -> None:
    """Show one subscriber with their subscriptions."""
    with transaction(app.runtime().sessions) as session:
        data = service.show_subscriber(session, email=email)
    if as_json:
        emit_json(data)
        return
    click.echo(
        f"{data['email']}  name={data['name'] or '-'}  language={data['language']}  "
        f"tracking={'on' if data['tracking'] else 'off'}"
    )
    if data["suppressed"]:
        click.echo("  SUPPRESSED: never mailed")
    for sub in data["subscriptions"]:
        click.echo(f"  {sub['list']}: {sub['status']} ({_dates(sub)})")


def _dates(subscription: dict[str, Any]) -> str:
    """Each recorded moment under its own name: never the sign-up time as the opt-out time."""
    parts = [f"source {subscription['source']}", f"subscribed {subscription['created_at']}"]
    if subscription["confirmed_at"]:
        parts.append(f"confirmed {subscription['confirmed_at']}")
    if subscription["unsubscribed_at"]:
        parts.append(f"unsubscribed {subscription['unsubscribed_at']}")
    return ", ".join(parts)


@subscribers.command("list")
@click.option("--list", "list_slug", help="Only this list.")
@click.option("--status", type=STATUSES, help="Only this status.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array (streamed).")
@pass_app
@handle_errors
def list_(app: AppContext, list_slug: str | None, status: str | None, as_json: bool) -> None:
    """List subscriptions, streamed (works for millions of rows)."""
    with transaction(app.runtime().sessions) as session:
        rows = service.iter_subscriptions(session, list_slug=list_slug, status=status)
        if as_json:
            click.echo("[", nl=False)
            for index, row in enumerate(rows):
                click.echo(("," if index else "") + json.dumps(row, ensure_ascii=False))
            click.echo("]")
            return
        for row in rows:
            click.echo(f"{row['email']}\t{row['list']}\t{row['status']}\t{row['language']}")


@subscribers.command("stats")
@click.option("--list", "list_slug", help="Only this list.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def stats(app: AppContext, list_slug: str | None, as_json: bool) -> None:
    """Counts per status, and active subscriptions per language."""
    with transaction(app.runtime().sessions) as session:
        data = service.subscriber_stats(session, list_slug=list_slug)
    if as_json:
        emit_json(data)
        return
    click.echo(f"list: {list_slug or 'all'}  total: {data['total']}")
    for status, count in data["status"].items():
        click.echo(f"  {status:<13}{count:>10}")
    click.echo("active by language:")
    for language, count in data["active_by_language"].items():
        click.echo(f"  {language:<13}{count:>10}")


@subscribers.command("update")
@click.argument("email")
@click.option("--name", help="Display name used in the greeting.")
@click.option("--language", type=LANGUAGES)
@click.option(
    "--tracking",
    type=click.Choice(["on", "off"]),
    help="off: record no clicks or opens for this person (their choice); on: allow again.",
)
@click.option(
    "--delete-events", is_flag=True, help="Also delete the clicks and opens recorded so far."
)
@click.option("--json", "as_json", is_flag=True, help="Print the subscriber as JSON.")
@pass_app
@handle_errors
def update(
    app: AppContext,
    email: str,
    name: str | None,
    language: str | None,
    tracking: str | None,
    delete_events: bool,
    as_json: bool,
) -> None:
    """Change EMAIL's name, language or engagement tracking (recorded as consent)."""
    if name is None and language is None and tracking is None and not delete_events:
        raise click.UsageError(
            "nothing to change: give --name, --language, --tracking or --delete-events"
        )
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        subscriber = service.update_subscriber(
            session,
            app.settings,
            runtime.clock,
            email=email,
            name=name,
            language=language,
            tracking=None if tracking is None else tracking == "on",
            delete_events=delete_events,
        )
        described = service.describe(session, subscriber)
    if as_json:
        emit_json(described)
        return
    state = "on" if described["tracking"] else "off"
    deleted = "; recorded clicks and opens deleted" if delete_events else ""
    click.echo(
        f"{mask_email(described['email'])}: language={described['language']} "
        f"tracking={state}{deleted}"
    )


@subscribers.command("remove")
@click.argument("email")
@click.option("--list", "list_slug", help="Only this list (default: every list).")
@pass_app
@handle_errors
def remove(app: AppContext, email: str, list_slug: str | None) -> None:
    """Delete subscriptions; unsubscribed/bounced/complained ones are kept as opt-out records."""
    with transaction(app.runtime().sessions) as session:
        count = service.remove_subscriber(session, email=email, list_slug=list_slug)
    click.echo(f"{mask_email(email)}: {plural(count, 'subscription')} removed")


@subscribers.command("unsubscribe")
@click.argument("email")
@click.option("--list", "list_slug", help="Only this list (default: every list).")
@pass_app
@handle_errors
def unsubscribe(app: AppContext, email: str, list_slug: str | None) -> None:
    """Unsubscribe EMAIL (idempotent; recorded as consent with source `admin`)."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        count = service.unsubscribe_by_email(
            session, runtime.clock, email=email, list_slug=list_slug, source="admin"
        )
    click.echo(f"{mask_email(email)}: {plural(count, 'subscription')} ended")


@subscribers.command("suppress")
@click.argument("email")
@click.option("--reason", type=SUPPRESS_REASONS, required=True)
@pass_app
@handle_errors
def suppress(app: AppContext, email: str, reason: str) -> None:
    """Never mail EMAIL again on any list (global suppression list)."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        added = suppression.suppress(
            session, runtime.clock, email=email, reason=reason, source="admin"
        )
    click.echo(f"{mask_email(email)}: {'suppressed' if added else 'already suppressed'}")


@subscribers.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
@handle_errors
def erase(app: AppContext, email: str, yes: bool) -> None:
    """Forget EMAIL (right to erasure); only a hash stays, on the suppression list."""
    if not yes:
        question = f"Erase every record of {mask_email(email)}? This cannot be undone"
        click.confirm(question, abort=True)
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        found = erasure.erase(session, runtime.clock, email=email)
    click.echo(
        f"{mask_email(email)}: {'erased' if found else 'nothing stored'}; "
        "the address stays suppressed"
    )


@subscribers.command("export-data")
@click.argument("email")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout.")
@pass_app
@handle_errors
def export_data(app: AppContext, email: str, out: Path | None) -> None:
    """Everything stored about EMAIL, as JSON (access request)."""
    with transaction(app.runtime().sessions) as session:
        document = erasure.export_personal_data(session, email=email)
    text = json.dumps(document, ensure_ascii=False, indent=2, default=str)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        click.echo(f"written to {out}", err=True)


@subscribers.command("expire-pending")
@click.option("--days", type=click.IntRange(1, 365), default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def expire_pending(app: AppContext, days: int, as_json: bool) -> None:
    """Pending sign-ups not confirmed within DAYS become `expired`."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        count = consent.expire_pending(session, runtime.clock, older_than=timedelta(days=days))
    if as_json:
        emit_json({"expired": count})
    else:
        click.echo(f"{plural(count, 'pending subscription')} expired")


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--list", "list_slug", default=DEFAULT_LIST_SLUG, show_default=True)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write rejected, duplicate and suppressed rows (line, reason) to this CSV.",
)
@click.option("--encoding", help="Text encoding (default: detected; e.g. utf-8, cp932).")
@click.option("--status", type=click.Choice(["active", "pending"]), default="active")
@click.option("--source", default="import", show_default=True, help="Consent source recorded.")
@click.option("--language", type=LANGUAGES, default="ja", show_default=True, help="When empty.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def import_(
    app: AppContext,
    file: Path,
    list_slug: str,
    report: Path | None,
    encoding: str | None,
    status: str,
    source: str,
    language: str,
    as_json: bool,
) -> None:
    """Import subscribers from a CSV file (UTF-8 with or without BOM, or Shift_JIS/CP932).

    Valid rows are kept even when others are rejected; the exit status is 65 when any row was
    rejected (as `articles import`), so a script notices without parsing the report.
    """
    if not file.is_file():
        raise NotFoundError(f"{file}: no such file")
    runtime = app.runtime()
    summary = importing.import_csv(
        runtime.sessions,
        runtime.clock,
        file,
        list_slug=list_slug,
        status=status,
        source=source,
        encoding=encoding,
        report_path=report,
        default_language=language,
    )
    if as_json:
        emit_json(summary.to_dict())
    else:
        _print_import(file, list_slug, summary, report)
    if summary.rejected:
        sys.exit(ValidationError.exit_code)


def _print_import(file: Path, list_slug: str, summary: ImportSummary, report: Path | None) -> None:
    data = summary.to_dict()
    click.echo(f"{file} ({summary.encoding}) into {list_slug}: {plural(summary.rows, 'row')}")
    for key in ("imported", "updated", "unchanged", "rejected", "duplicates", "suppressed"):
        click.echo(f"  {key:<16}{data[key]:>10}")
    click.echo(f"  {'not reactivated':<16}{summary.not_reactivated:>10}")
    for problem in summary.problems[:20]:
        click.echo(f"  line {problem['line']}: {problem['outcome']}: {problem['reason']}")
    if len(summary.problems) > 20 and report is None:
        click.echo("  ... (use --report FILE for every row)")


@subscribers.command("export")
@click.option("--list", "list_slug", help="Only this list (default: every list).")
@click.option("--format", "fmt", type=click.Choice(exporting.FORMATS), default="csv")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout.")
@pass_app
@handle_errors
def export(app: AppContext, list_slug: str | None, fmt: str, out: Path | None) -> None:
    """Export subscriptions with status and consent (time, source), streamed."""
    with transaction(app.runtime().sessions) as session:
        rows = exporting.iter_export(session, list_slug=list_slug)
        if out is None:
            count = exporting.write_export(rows, sys.stdout, fmt=fmt)
        else:
            with out.open("w", encoding="utf-8", newline="") as handle:
                count = exporting.write_export(rows, handle, fmt=fmt)
    click.echo(f"{plural(count, 'subscription')} exported", err=True)


COMMANDS = [subscribers]
