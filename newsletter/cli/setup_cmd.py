"""`newsletter init` and `newsletter demo`."""

from __future__ import annotations

import click

from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app, plural
from newsletter.db.migrate import current_revision


@click.command()
@pass_app
@handle_errors
def init(app: AppContext) -> None:
    """Create or upgrade the database schema (safe to run again)."""
    runtime = app.runtime(migrate=True)
    url = runtime.engine.url.render_as_string(hide_password=True)
    click.echo(f"database ready at {url} (schema {current_revision(runtime.engine)})")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
@handle_errors
def demo(app: AppContext, as_json: bool) -> None:
    """Run the daily job on sample data: articles, subscribers, today's issue, an outbox.

    Always sends to the outbox folder (NEWSLETTER_OUTBOX_DIR), never to real addresses.
    Running it again sends nobody the same issue twice.
    """
    from newsletter.demo import run_demo

    runtime = app.runtime(migrate=True)
    report = run_demo(runtime)
    if as_json:
        emit_json(report.to_dict())
        return
    url = runtime.engine.url.render_as_string(hide_password=True)
    a, s, run = report.articles, report.subscribers, report.run
    click.echo(f"database:    {url}")
    click.echo(f"articles:    {a.imported} imported, {a.updated} updated, {a.unchanged} unchanged")
    click.echo(
        f"subscribers: {s.imported} imported, {s.updated} updated, {s.unchanged} unchanged "
        f"(list {s.list_slug!r})"
    )
    if run.issue_id is None:
        click.echo(f"issue:       none built: {run.reason}")
        return
    state = "built" if run.built else "already built"
    click.echo(f"issue:       #{run.issue_id} for {run.issue_date} ({state}), status {run.status}")
    if report.sent:
        click.echo(f"sent:        {plural(report.sent, 'email')} written to {report.outbox_dir}")
    else:
        why = run.reason or "every active subscriber already has this issue"
        click.echo(f"sent:        nothing new ({why})")
    if run.send.get("skipped"):
        skipped = plural(run.send["skipped"], "recipient")
        click.echo(f"skipped:     {skipped} (unsubscribed or suppressed meanwhile)")
    click.echo(f"next:        newsletter issue preview {run.issue_id} --out preview/")
    click.echo(f"             newsletter issue status {run.issue_id}")


COMMANDS: list[click.Command] = [init, demo]
