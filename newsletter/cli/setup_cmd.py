"""`newsletter init`, `newsletter demo` and `newsletter compact`."""

from __future__ import annotations

import click

from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app, plural
from newsletter.db.migrate import current_revision
from newsletter.db.session import require_database, sqlite_path
from newsletter.errors import DatabaseError


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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
@handle_errors
def compact(app: AppContext, as_json: bool) -> None:
    """Rewrite the SQLite database with 16 KiB pages and no free space (stop everything else
    that uses it first).

    Databases made by this version already have 16 KiB pages, which plan large sends about a
    tenth faster; an older one keeps its 4 KiB pages until it is compacted. Takes a few seconds
    per GB and needs as much free disk space again.
    """
    from newsletter.db.compact import compact_sqlite

    url = app.database_url()
    path = sqlite_path(url)
    if path is None:
        raise DatabaseError(
            "compact rewrites a SQLite database file and the database URL names none "
            "(PostgreSQL manages its own pages: VACUUM FULL, if ever needed)"
        )
    require_database(url)
    report = compact_sqlite(path)
    if as_json:
        emit_json(
            {
                "path": str(report.path),
                "page_size_before": report.page_size_before,
                "page_size": report.page_size,
                "bytes_before": report.bytes_before,
                "bytes_after": report.bytes_after,
                "seconds": round(report.seconds, 2),
            }
        )
        return
    click.echo(
        f"{report.path}: page size {report.page_size_before} -> {report.page_size} bytes, "
        f"{report.bytes_before / 1e6:.1f} MB -> {report.bytes_after / 1e6:.1f} MB "
        f"in {report.seconds:.1f}s"
    )


COMMANDS: list[click.Command] = [init, demo, compact]
