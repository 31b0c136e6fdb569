"""The `newsletter` command group. Each subcommand lives in the module named for its job."""

from __future__ import annotations

from typing import IO, Any

import click

from newsletter import __version__
from newsletter.cli.context import AppContext

EX_USAGE = 64  # the README's exit code for a wrong command line (click's own is 2)


class CommandLineError(click.ClickException):
    """A click usage error, shown as one line like every other error, with exit code 64."""

    exit_code = EX_USAGE

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(" ".join(error.format_message().split()))
        self.command_path = error.ctx.command_path if error.ctx else "newsletter"

    def show(self, file: IO[Any] | None = None) -> None:
        hint = f" (see `{self.command_path} --help`)"
        click.secho(f"error: {self.format_message()}{hint}", fg="red", err=True)


class _Group(click.Group):
    """Every error exits with the README's code: domain errors by type, usage errors 64."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as err:
            raise _usage(err) from None

    def invoke(self, ctx: click.Context) -> object:
        from newsletter.errors import NewsletterError

        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            raise _usage(err) from None
        except NewsletterError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            ctx.exit(err.exit_code)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """`newsletter send` suggests `newsletter issue send`: commands one group down."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            found = [
                f"{group_name} {name}"
                for group_name, group in sorted(self.commands.items())
                if isinstance(group, click.Group) and name in group.commands
            ]
            if found:
                choices = " or ".join(f"`newsletter {path}`" for path in found)
                ctx.fail(f"no command {name!r} here; did you mean {choices}?")
        return super().resolve_command(ctx, args)


def _usage(error: click.UsageError) -> click.ClickException:
    """Help asked for by giving no command keeps its page; every other usage error is 64."""
    if isinstance(error, click.exceptions.NoArgsIsHelpError):
        error.exit_code = EX_USAGE
        return error
    return CommandLineError(error)


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
        audit_cmd,
        engagement_cmd,
        inbound_cmd,
        issue_ab_test_cmd,
        issue_build_cmd,
        issue_list_cmd,
        issue_preview_cmd,
        issue_send_cmd,
        lists_cmd,
        ops_cmd,
        setup_cmd,
        subscribers_cmd,
        tokens_cmd,
        users_cmd,
        web_cmd,
        worker_cmd,
    )

    for module in (setup_cmd, ops_cmd, web_cmd, worker_cmd, inbound_cmd, audit_cmd):
        for command in module.COMMANDS:
            cli.add_command(command)
    cli.add_command(subscribers_cmd.subscribers)
    cli.add_command(lists_cmd.lists)
    cli.add_command(users_cmd.users)
    cli.add_command(tokens_cmd.tokens)
    cli.add_command(engagement_cmd.engagement)
    for command in engagement_cmd.LIST_COMMANDS:
        lists_cmd.lists.add_command(command)
    for command in articles_cmd.COMMANDS:
        articles.add_command(command)
    for module in (
        issue_build_cmd,
        issue_list_cmd,
        issue_preview_cmd,
        issue_send_cmd,
        issue_ab_test_cmd,
    ):
        for command in module.COMMANDS:
            issue.add_command(command)
    for command in engagement_cmd.ISSUE_COMMANDS:
        issue.add_command(command)


_register()


def main() -> None:
    cli(prog_name="newsletter")
