"""`newsletter tokens create|list|revoke`: API tokens for admins' scripts."""

from __future__ import annotations

import click

from newsletter.accounts import tokens as api_tokens
from newsletter.accounts.actors import cli_actor
from newsletter.accounts.roles import Role
from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app
from newsletter.db.session import transaction

ROLES = click.Choice([r.value for r in Role])


@click.group()
def tokens() -> None:
    """Create, list and revoke the bearer tokens of the HTTP API (/api/v1/)."""


@tokens.command("create")
@click.option("--name", required=True, help="Who or what uses it (e.g. crm-sync); unique.")
@click.option("--role", type=ROLES, required=True, help="viewer reads; editor edits; admin all.")
@click.option(
    "--expires",
    "expires_days",
    type=click.IntRange(1, api_tokens.MAX_EXPIRY_DAYS),
    help="Days until it stops working (default: never).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the token as JSON.")
@pass_app
@handle_errors
def create(app: AppContext, name: str, role: str, expires_days: int | None, as_json: bool) -> None:
    """Create a token; its secret is printed once and never stored."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        created = api_tokens.create_token(
            session, runtime.clock, cli_actor(), name=name, role=role, expires_days=expires_days
        )
    expires = created.expires_at.isoformat() if created.expires_at else None
    if as_json:
        emit_json(
            {"name": created.name, "role": created.role.value, "token": created.secret,
             "expires_at": expires}
        )  # fmt: skip
        return
    click.echo(created.secret)
    until = f"until {expires}" if expires else "no expiry"
    click.echo(
        f"token {created.name} ({created.role.value}, {until}): copy it now, it is not shown "
        "again; use it as `Authorization: Bearer <token>`",
        err=True,
    )


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def list_(app: AppContext, as_json: bool) -> None:
    """Every token with its role, state and last use (never the secret)."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        rows = api_tokens.list_tokens(session, runtime.clock)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no tokens")
    for row in rows:
        used = (row["last_used_at"] or "never")[:19]
        click.echo(
            f"{row['name']:<24}{row['role']:<8}{row['state']:<9}{row['prefix']}...  "
            f"last used {used}"
        )


@tokens.command("revoke")
@click.argument("name")
@pass_app
@handle_errors
def revoke(app: AppContext, name: str) -> None:
    """Revoke token NAME: it stops working at once."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        changed = api_tokens.revoke_token(session, runtime.clock, cli_actor(), name)
    click.echo(f"token {name}: {'revoked' if changed else 'already revoked'}")


COMMANDS: list[click.Command] = [tokens]
