"""`newsletter users`: desk accounts. Passwords come from stdin or a hidden prompt, never from
the command line (where `ps` and the shell history would keep them), and are never printed."""

from __future__ import annotations

import sys

import click

from newsletter.accounts import users as accounts
from newsletter.accounts.actors import cli_actor
from newsletter.accounts.roles import Role
from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app
from newsletter.db.session import transaction
from newsletter.errors import UsageError

ROLE_CHOICE = click.Choice([r.value for r in Role], case_sensitive=False)


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise UsageError("--password-stdin: no password on standard input")
        return password
    return None


def _prompt_password() -> str:
    if not sys.stdin.isatty():
        raise UsageError("give the password with --password-stdin, or --link-only for none")
    return str(click.prompt("New password", hide_input=True, confirmation_prompt=True))


@click.group()
def users() -> None:
    """Desk accounts: add, list, set-role, disable, reset-password."""


@users.command("add")
@click.argument("email")
@click.option("--role", type=ROLE_CHOICE, required=True, help="viewer, editor or admin.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.option("--language", type=click.Choice(["ja", "en"]), help="The desk's language.")
@pass_app
@handle_errors
def add_command(
    app: AppContext, email: str, role: str, password_stdin: bool, language: str | None
) -> None:
    """Add an account. Without --password-stdin it signs in by emailed link only."""
    password = _read_password(password_stdin)
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        user = accounts.add_user(
            session, runtime.clock, cli_actor(), email, role, password=password, language=language
        )
        how = "password or link" if password is not None else "link only"
        click.echo(f"added {user.email} ({user.role}, sign-in: {how})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def list_command(app: AppContext, as_json: bool) -> None:
    """Every account, with its role and state."""
    with transaction(app.runtime().sessions) as session:
        rows = [accounts.user_dict(u) for u in accounts.list_users(session)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no accounts")
        return
    for row in rows:
        state = "disabled" if row["disabled_at"] else "active"
        last = (row["last_sign_in_at"] or "never")[:19]
        click.echo(f"{row['email']}  {row['role']}  {state}  last sign-in: {last}")


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=ROLE_CHOICE)
@pass_app
@handle_errors
def set_role_command(app: AppContext, email: str, role: str) -> None:
    """Change an account's role; its open sessions end."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        user = accounts.set_role(session, runtime.clock, cli_actor(), email, role)
        click.echo(f"{user.email} is now {user.role}")


@users.command("disable")
@click.argument("email")
@pass_app
@handle_errors
def disable_command(app: AppContext, email: str) -> None:
    """Disable an account: no more sign-ins, and its open sessions end at once."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        user = accounts.disable(session, runtime.clock, cli_actor(), email)
        click.echo(f"{user.email} is disabled")


@users.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
@click.option("--link-only", is_flag=True, help="Remove the password: sign in by link only.")
@pass_app
@handle_errors
def reset_password_command(
    app: AppContext, email: str, password_stdin: bool, link_only: bool
) -> None:
    """Set a new password (stdin or a hidden prompt); its open sessions end."""
    if password_stdin and link_only:
        raise UsageError("--password-stdin and --link-only exclude each other")
    password = None if link_only else (_read_password(password_stdin) or _prompt_password())
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        user = accounts.reset_password(session, runtime.clock, cli_actor(), email, password)
        click.echo(f"{user.email}: password {'removed' if password is None else 'changed'}")
