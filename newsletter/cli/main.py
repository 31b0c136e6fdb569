"""The `newsletter` command group. Each subcommand lives in the module named for its job."""

from __future__ import annotations

import click

from newsletter import __version__
from newsletter.cli.context import AppContext


class _Group(click.Group):
    """Domain errors raised outside a command body (settings, database) exit cleanly too."""

    def invoke(self, ctx: click.Context) -> object:
        from newsletter.errors import NewsletterError

        try:
            return super().invoke(ctx)
        except NewsletterError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """AI日報 Newsletter: import articles, build the daily issue, send it, manage subscribers."""
    app = ctx.ensure_object(AppContext)
    ctx.call_on_close(app.close)


@cli.group()
def issue() -> None:
    """Build, preview, send and follow a daily issue."""


@cli.group()
def articles() -> None:
    """Import, list and inspect articles."""


def _register() -> None:
    from newsletter.cli import (
        articles_cmd,
        issue_build_cmd,
        issue_preview_cmd,
        issue_send_cmd,
        lists_cmd,
        ops_cmd,
        setup_cmd,
        subscribers_cmd,
        web_cmd,
        worker_cmd,
    )

    for module in (setup_cmd, ops_cmd, web_cmd, worker_cmd):
        for command in module.COMMANDS:
            cli.add_command(command)
    cli.add_command(subscribers_cmd.subscribers)
    cli.add_command(lists_cmd.lists)
    for command in articles_cmd.COMMANDS:
        articles.add_command(command)
    for module in (issue_build_cmd, issue_preview_cmd, issue_send_cmd):
        for command in module.COMMANDS:
            issue.add_command(command)


_register()


def main() -> None:
    cli(prog_name="newsletter")
