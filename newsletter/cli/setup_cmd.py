"""`newsletter init` and `newsletter demo`."""

from __future__ import annotations

import click

from newsletter.cli.context import AppContext, handle_errors, pass_app
from newsletter.db.migrate import current_revision


@click.command()
@pass_app
@handle_errors
def init(app: AppContext) -> None:
    """Create or upgrade the database schema (safe to run again)."""
    runtime = app.runtime(migrate=True)
    url = runtime.engine.url.render_as_string(hide_password=True)
    click.echo(f"database ready at {url} (schema {current_revision(runtime.engine)})")


COMMANDS: list[click.Command] = [init]
