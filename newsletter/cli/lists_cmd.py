"""`newsletter lists ...`: create, change, show and list mailing lists."""

from __future__ import annotations

from typing import Any

import click

from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app
from newsletter.db.session import transaction
from subscribers import lists as mailing_lists

ON_OFF = click.Choice(["on", "off"])
_FROZEN = "Applies from the next send: an issue already sending keeps the form it was rendered in."


def _on_off(value: str | None) -> bool | None:
    return None if value is None else value == "on"


def _tracking(item: dict[str, Any]) -> str:
    """ "clicks+opens", "clicks", "opens" or "no tracking", for one line of output."""
    kinds = (("clicks", "click_tracking"), ("opens", "open_tracking"))
    return "+".join(kind for kind, key in kinds if item[key]) or "no tracking"


@click.group()
def lists() -> None:
    """Create, change, show and list mailing lists (each gets its own daily issue and
    schedule)."""


@lists.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="Shown to subscribers (e.g. 'AI日報 Weekly').")
@click.option("--description")
@click.option("--timezone", help="IANA zone for the send time (default: NEWSLETTER_TIMEZONE).")
@click.option("--send-time", help="HH:MM local send time (default: NEWSLETTER_SEND_TIME).")
@click.option("--single-opt-in", is_flag=True, help="Web sign-ups skip the confirmation email.")
@click.option(
    "--click-tracking",
    type=ON_OFF,
    help="Count clicks on the issue's links, first-party (default: NEWSLETTER_CLICK_TRACKING).",
)
@click.option("--open-tracking", type=ON_OFF, help="Count opens with a 1x1 image (default: off).")
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
    click_tracking: str | None,
    open_tracking: str | None,
) -> None:
    """Create the list SLUG."""
    runtime = app.runtime()
    clicks = _on_off(click_tracking)
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
            click_tracking=runtime.settings.click_tracking if clicks is None else clicks,
            open_tracking=bool(_on_off(open_tracking)),
        )
    click.echo(f"list {slug} created")


@lists.command("update")
@click.argument("slug")
@click.option("--name")
@click.option("--description")
@click.option("--timezone", help="IANA zone for the send time; 'default' for NEWSLETTER_TIMEZONE.")
@click.option("--send-time", help="HH:MM local send time; 'default' for NEWSLETTER_SEND_TIME.")
@click.option("--click-tracking", type=ON_OFF, help="Count clicks on the issue's links.")
@click.option("--open-tracking", type=ON_OFF, help="Count opens with a 1x1 image.")
@pass_app
@handle_errors
def update(
    app: AppContext,
    slug: str,
    name: str | None,
    description: str | None,
    timezone: str | None,
    send_time: str | None,
    click_tracking: str | None,
    open_tracking: str | None,
) -> None:
    """Change list SLUG's name, description, time zone, send time or tracking.

    Tracking (first-party: links through NEWSLETTER_BASE_URL/c/, an optional open pixel;
    subscribers who switched it off get direct links) applies from the next send: an issue
    already sending keeps the form it was rendered in.
    """
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
        changed, before, after = mailing_lists.update_list(
            session,
            slug=slug,
            name=name,
            click_tracking=_on_off(click_tracking),
            open_tracking=_on_off(open_tracking),
            **changes,
        )
        audit.record(
            session, runtime.clock, cli_actor(), "list.update", list_id=changed.id,
            subject=f"list:{slug}", before=before, after=after,
        )  # fmt: skip
    shown = ", ".join(f"{k} {_value(v)}" for k, v in after.items())
    click.echo(f"list {slug}: {shown or 'nothing changed'}")
    if {"click_tracking", "open_tracking"} & after.keys():
        click.echo(_FROZEN)


def _value(value: object) -> str:
    if value is None:
        return "default"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


@lists.command("show")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def show(app: AppContext, slug: str, as_json: bool) -> None:
    """List SLUG's settings (schedule, sign-up, tracking) and subscription counts."""
    with transaction(app.runtime().sessions) as session:
        item = mailing_lists.list_summaries(session, slug)[0]
    if as_json:
        emit_json(item)
        return
    rows = [
        ("slug", item["slug"]),
        ("name", item["name"]),
        ("description", item["description"] or ""),
        ("time zone", item["timezone"] or "default"),
        ("send time", item["send_time"] or "default"),
        ("double opt-in", _value(item["double_opt_in"])),
        ("click tracking", _value(item["click_tracking"])),
        ("open tracking", _value(item["open_tracking"])),
        ("created", item["created_at"]),
    ]
    rows += [(f"{status} subscriptions", str(n)) for status, n in item["subscriptions"].items()]
    for label, value in rows:
        click.echo(f"{label + ':':<24}{value}")


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
        click.echo(
            f"{item['slug']:<20}{item['name']:<30}{active:>8} active   {when:<24}{_tracking(item)}"
        )


COMMANDS = [lists]
