"""`newsletter issue list`: which issues exist, newest first."""

from __future__ import annotations

import click

from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app
from newsletter.db.session import transaction
from newsletter.issues.catalog import list_issues
from newsletter.types import IssueStatus


@click.command("list")
@click.option("--list", "list_slug", help="Only this list (default: every list).")
@click.option("--status", type=click.Choice([s.value for s in IssueStatus]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_app
@handle_errors
def list_cmd(
    app: AppContext, list_slug: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """The newest issues with their state, article count and approval."""
    with transaction(app.runtime().sessions) as session:
        rows = [r.to_dict() for r in list_issues(session, list_slug=list_slug, status=status,
                                                 limit=limit)]  # fmt: skip
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no issues")
    for row in rows:
        approved = f"  approved by {row['approved_by']}" if row["approved_by"] else ""
        click.echo(
            f"{row['id']:>6}  {row['list']}:{row['date']}  {row['status']:<18}"
            f"{row['articles']:>3} articles{approved}"
        )


COMMANDS: list[click.Command] = [list_cmd]
