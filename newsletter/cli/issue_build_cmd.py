"""`newsletter issue build|pin|exclude|unpin|reorder`: thin wrappers over `newsletter.issues`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import click
from sqlalchemy.orm import Session

from newsletter.articles.queries import find_article
from newsletter.articles.selection import Selection
from newsletter.cli.articles_cmd import headline
from newsletter.cli.context import (
    ISO_DATE,
    AppContext,
    emit_json,
    handle_errors,
    pass_app,
    plural,
)
from newsletter.db.models import Issue, MailingList
from newsletter.db.session import transaction
from newsletter.issues.assembly import BuildResult, build_issue, load_list, rebuild_if_built
from newsletter.issues.overrides import EXCLUDE, PIN, clear_override, set_order, set_override
from newsletter.schedule import issue_date_for
from newsletter.urls import DEFAULT_LIST_SLUG

DATE = click.option(
    "--date",
    "day",
    type=ISO_DATE,
    help="Issue date (default: the next or current issue in the list's time zone).",
)
LIST = click.option("--list", "list_slug", default=DEFAULT_LIST_SLUG, show_default=True)
JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def _issue_dict(issue: Issue) -> dict[str, Any]:
    return {
        "id": issue.id,
        "list": issue.mailing_list.slug,
        "date": issue.issue_date.isoformat(),
        "status": issue.status,
        "window_start": issue.window_start.isoformat(),
        "cutoff_at": issue.cutoff_at.isoformat(),
        "articles": [
            {
                "position": item.position,
                "id": item.article.external_id,
                "pinned": item.pinned,
                "title": headline(item.article),
            }
            for item in issue.articles
        ],
    }


def _explain(selection: Selection | None) -> list[dict[str, Any]]:
    if selection is None:
        return []
    return [
        {"id": d.external_id, "selected": d.selected, "position": d.position, "reason": d.reason}
        for d in selection.decisions
    ]


def _result_dict(result: BuildResult) -> dict[str, Any]:
    return {
        "issue": None if result.issue is None else _issue_dict(result.issue),
        "created": result.created,
        "reason": result.reason,
        "explain": _explain(result.selection),
    }


def _print(data: dict[str, Any], explain: bool) -> None:
    issue = data["issue"]
    if issue is None:
        click.echo(f"no issue built: {data['reason']}")
    else:
        verb = "built" if data["created"] else "issue"
        click.echo(
            f"{verb} {issue['list']}:{issue['date']} (id {issue['id']}, {issue['status']}): "
            f"{plural(len(issue['articles']), 'article')}"
        )
        if data["reason"] and not data["created"]:
            click.echo(f"  ({data['reason']})")
        for item in issue["articles"]:
            pin = " [pinned]" if item["pinned"] else ""
            click.echo(f"  {item['position']:>2}. {item['title']}  ({item['id']}){pin}")
    if explain:
        if not data["explain"]:
            click.echo("no selection was run (use --rebuild to select again)")
        for row in data["explain"]:
            click.echo(f"  {row['id']}: {row['reason']}")


@click.command("build")
@DATE
@LIST
@click.option("--rebuild", is_flag=True, help="Select again (only while the issue is built).")
@click.option("--explain", is_flag=True, help="Say why each candidate is in or out.")
@JSON
@pass_app
@handle_errors
def build_cmd(
    app: AppContext,
    day: date | None,
    list_slug: str,
    rebuild: bool,
    explain: bool,
    as_json: bool,
) -> None:
    """Select the day's articles and create the issue (once per list and date)."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        result = build_issue(
            session,
            runtime.settings,
            runtime.clock,
            list_slug=list_slug,
            issue_date=day,
            rebuild=rebuild,
        )
        data = _result_dict(result)
    if as_json:
        emit_json(data)
    else:
        _print(data, explain)


def _editor_change(
    app: AppContext,
    list_slug: str,
    day: date | None,
    change: Callable[[Session, MailingList, date], str],
) -> None:
    """Apply one editor change, then re-select the issue if it is built already."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        mailing_list = load_list(session, runtime.settings, runtime.clock, list_slug)
        issue_date = day or issue_date_for(runtime.settings, mailing_list, runtime.clock.now())
        message = change(session, mailing_list, issue_date)
        result = rebuild_if_built(
            session, runtime.settings, runtime.clock, mailing_list, issue_date
        )
        data = None if result is None else _result_dict(result)
    click.echo(f"{message} for {mailing_list.slug}:{issue_date.isoformat()}")
    if data is not None:
        _print(data, explain=False)
    else:
        click.echo("(applies when the issue is built)")


_DONE = {PIN: "pinned", EXCLUDE: "excluded"}


def _override_command(name: str, action: str | None, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("article_id")
    @DATE
    @LIST
    @pass_app
    @handle_errors
    def command(app: AppContext, article_id: str, day: date | None, list_slug: str) -> None:
        def change(session: Session, mailing_list: MailingList, issue_date: date) -> str:
            article = find_article(session, article_id)
            if action is None:
                found = clear_override(session, mailing_list, issue_date, article.id)
                return f"{'cleared' if found else 'nothing to clear'}: {article.external_id}"
            set_override(session, app.runtime().clock, mailing_list, issue_date, article.id, action)
            return f"{_DONE[action]} {article.external_id}"

        _editor_change(app, list_slug, day, change)

    return command


pin_cmd = _override_command(
    "pin", PIN, "Always include an article, first (in pin order), even outside the window."
)
exclude_cmd = _override_command("exclude", EXCLUDE, "Keep an article out of the issue.")
unpin_cmd = _override_command("unpin", None, "Forget the editor's pin or exclusion.")


@click.command("reorder")
@click.argument("article_ids", nargs=-1, required=True, metavar="ID1 ID2 ...")
@DATE
@LIST
@pass_app
@handle_errors
def reorder_cmd(
    app: AppContext, article_ids: tuple[str, ...], day: date | None, list_slug: str
) -> None:
    """Put these articles first, in this order (after pinned ones)."""

    def change(session: Session, mailing_list: MailingList, issue_date: date) -> str:
        ids = [find_article(session, ref).id for ref in article_ids]
        set_order(session, app.runtime().clock, mailing_list, issue_date, ids)
        return f"order set: {', '.join(article_ids)}"

    _editor_change(app, list_slug, day, change)


COMMANDS: list[click.Command] = [build_cmd, pin_cmd, exclude_cmd, unpin_cmd, reorder_cmd]
