"""`newsletter audit`: who did what to an issue, a list or an account, newest first."""

from __future__ import annotations

import click

from newsletter.accounts import audit
from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app
from newsletter.db.session import transaction
from newsletter.issues.assembly import get_issue


@click.command("audit")
@click.option("--issue", "issue_ref", help="Only this issue (id, date or slug:date).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def audit_cmd(app: AppContext, issue_ref: str | None, limit: int, as_json: bool) -> None:
    """The audit log: editorial, sending and account actions with who, when, before/after."""
    with transaction(app.runtime().sessions) as session:
        issue = get_issue(session, issue_ref) if issue_ref else None
        rows = [audit.entry_dict(e) for e in audit.entries(session, issue=issue, limit=limit)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no entries")
        return
    for row in rows:
        where = f" {row['issue_date']}" if row["issue_date"] else ""
        what = f" {row['subject']}" if row["subject"] else ""
        who = f"{row['actor']} ({row['role']})"
        click.echo(f"{row['at'][:19]}  {who}  {row['action']}{where}{what}")


COMMANDS = [audit_cmd]
