"""`newsletter lists ...`: create and list mailing lists."""

from __future__ import annotations

import click

from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app
from newsletter.db.session import transaction
from subscribers import lists as mailing_lists


@click.group()
def lists() -> None:
    """Create and list mailing lists (each gets its own daily issue and schedule)."""


@lists.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="Shown to subscribers (e.g. 'AI日報 Weekly').")
@click.option("--description")
@click.option("--timezone", help="IANA zone for the send time (default: NEWSLETTER_TIMEZONE).")
@click.option("--send-time", help="HH:MM local send time (default: NEWSLETTER_SEND_TIME).")
@click.option("--single-opt-in", is_flag=True, help="Web sign-ups skip the confirmation email.")
@pass_app
@handle_errors
def create(
    app: AppContext,
    slug: str,
    name: str,
    description: str | None,
    timezone: str | None,
    send_time: str | None,
    single_opt_in: bool,
) -> None:
    """Create the list SLUG."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        mailing_lists.create_list(
            session,
            runtime.clock,
            slug=slug,
            name=name,
            description=description,
            timezone=timezone,
            send_time=send_time,
            double_opt_in=not single_opt_in,
        )
    click.echo(f"list {slug} created")


@lists.command("update")
@click.argument("slug")
@click.option("--name")
@click.option("--description")
@click.option("--timezone", help="IANA zone for the send time; 'default' for NEWSLETTER_TIMEZONE.")
@click.option("--send-time", help="HH:MM local send time; 'default' for NEWSLETTER_SEND_TIME.")
@pass_app
@handle_errors
def update(
    app: AppContext,
    slug: str,
    name: str | None,
    description: str | None,
    timezone: str | None,
    send_time: str | None,
) -> None:
    """Change list SLUG's name, description, time zone or send time."""
    from newsletter.accounts import audit
    from newsletter.accounts.actors import cli_actor

    changes: dict[str, str | None] = {}
    if description is not None:
        changes["description"] = description
    for key, value in (("timezone", timezone), ("send_time", send_time)):
        if value is not None:
            changes[key] = None if value == "default" else value
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        changed, before, after = mailing_lists.update_list(session, slug=slug, name=name, **changes)
        audit.record(
            session, runtime.clock, cli_actor(), "list.update", list_id=changed.id,
            subject=f"list:{slug}", before=before, after=after,
        )  # fmt: skip
    shown = ", ".join(f"{k} {v if v is not None else 'default'}" for k, v in after.items())
    click.echo(f"list {slug}: {shown or 'nothing changed'}")


@lists.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def list_(app: AppContext, as_json: bool) -> None:
    """Every list with its schedule and subscription counts."""
    with transaction(app.runtime().sessions) as session:
        data = mailing_lists.list_summaries(session)
    if as_json:
        emit_json(data)
        return
    for item in data:
        active = item["subscriptions"].get("active", 0)
        when = f"{item['send_time'] or 'default time'} {item['timezone'] or ''}".strip()
        click.echo(f"{item['slug']:<20}{item['name']:<30}{active:>8} active   {when}")


COMMANDS = [lists]
