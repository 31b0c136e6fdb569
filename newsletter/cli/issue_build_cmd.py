"""`newsletter issue build|pin|exclude|unpin|reorder`: thin wrappers over `newsletter.issues`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import click
from sqlalchemy.orm import Session

from newsletter.accounts.actors import cli_actor
from newsletter.articles.queries import find_article
from newsletter.cli.context import (
    ISO_DATE,
    AppContext,
    emit_json,
    handle_errors,
    pass_app,
    plural,
)
from newsletter.db.models import MailingList
from newsletter.db.session import transaction
from newsletter.issues import editorial
from newsletter.issues.assembly import BuildResult, build_issue, get_issue, load_list
from newsletter.issues.describe import result_dict
from newsletter.issues.overrides import EXCLUDE, PIN
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
        data = result_dict(result)
    if as_json:
        emit_json(data)
    else:
        _print(data, explain)


def _editor_change(
    app: AppContext,
    list_slug: str,
    day: date | None,
    change: Callable[[Session, MailingList, date], tuple[str, BuildResult | None]],
) -> None:
    """Apply one editor change (the issue is re-selected at once if it is built already)."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        mailing_list = load_list(session, runtime.settings, runtime.clock, list_slug)
        issue_date = day or issue_date_for(runtime.settings, mailing_list, runtime.clock.now())
        message, result = change(session, mailing_list, issue_date)
        data = None if result is None else result_dict(result)
    click.echo(f"{message} for {mailing_list.slug}:{issue_date.isoformat()}")
    if data is not None:
        _print(data, explain=False)
    else:
        click.echo("(applies when the issue is built)")


_CHANGES = {PIN: (editorial.pin, "pinned"), EXCLUDE: (editorial.exclude, "excluded")}


def _override_command(name: str, action: str | None, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("article_id")
    @DATE
    @LIST
    @pass_app
    @handle_errors
    def command(app: AppContext, article_id: str, day: date | None, list_slug: str) -> None:
        runtime = app.runtime()

        def change(
            session: Session, mailing_list: MailingList, issue_date: date
        ) -> tuple[str, BuildResult | None]:
            article = find_article(session, article_id)
            apply, done = _CHANGES[action] if action else (editorial.restore, "cleared:")
            result = apply(
                session, runtime.settings, runtime.clock, cli_actor(), mailing_list, issue_date,
                article.id,
            )  # fmt: skip
            return f"{done} {article.external_id}", result

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
    runtime = app.runtime()

    def change(
        session: Session, mailing_list: MailingList, issue_date: date
    ) -> tuple[str, BuildResult | None]:
        ids = [find_article(session, ref).id for ref in article_ids]
        result = editorial.reorder(
            session, runtime.settings, runtime.clock, cli_actor(), mailing_list, issue_date, ids
        )
        return f"order set: {', '.join(article_ids)}", result

    _editor_change(app, list_slug, day, change)


@click.command("note")
@DATE
@LIST
@click.option("--ja", "note_ja", help="The note in Japanese (plain text; links are linked).")
@click.option("--en", "note_en", help="The note in English.")
@click.option("--clear", is_flag=True, help="Remove the note.")
@JSON
@pass_app
@handle_errors
def note_cmd(
    app: AppContext,
    day: date | None,
    list_slug: str,
    note_ja: str | None,
    note_en: str | None,
    clear: bool,
    as_json: bool,
) -> None:
    """Show, write or remove the editor's note at the top of the issue (email and web)."""
    runtime = app.runtime()
    writing = clear or note_ja is not None or note_en is not None
    with transaction(runtime.sessions) as session:
        mailing_list = load_list(session, runtime.settings, runtime.clock, list_slug)
        issue_date = day or issue_date_for(runtime.settings, mailing_list, runtime.clock.now())
        note = editorial.get_note(session, mailing_list.id, issue_date)
        if writing:
            ja = None if clear else (note_ja if note_ja is not None else note and note.ja)
            en = None if clear else (note_en if note_en is not None else note and note.en)
            note = editorial.set_note(
                session, runtime.clock, cli_actor(), mailing_list, issue_date, ja=ja, en=en
            )
    label = f"{mailing_list.slug}:{issue_date.isoformat()}"
    data = {
        "issue": label,
        "ja": note.ja if note else None,
        "en": note.en if note else None,
        "updated_by": note.updated_by if note else None,
        "updated_at": note.updated_at.isoformat() if note else None,
    }
    if as_json:
        emit_json(data)
        return
    if note is None:
        click.echo(f"{label}: no editor's note")
        return
    click.echo(f"{label}: editor's note by {note.updated_by}")
    for lang in ("ja", "en"):
        if data[lang]:
            click.echo(f"[{lang}] {data[lang]}")


@click.command("approve")
@click.argument("issue_ref", metavar="ISSUE")
@click.option("--withdraw", is_flag=True, help="Withdraw the approval instead.")
@JSON
@pass_app
@handle_errors
def approve_cmd(app: AppContext, issue_ref: str, withdraw: bool, as_json: bool) -> None:
    """Approve ISSUE as built now (NEWSLETTER_REQUIRE_APPROVAL sends only approved issues)."""
    runtime = app.runtime()
    with transaction(runtime.sessions) as session:
        issue = get_issue(session, issue_ref)
        if withdraw:
            editorial.withdraw_approval(session, runtime.clock, cli_actor(), issue)
        else:
            editorial.approve(session, runtime.clock, cli_actor(), issue)
        data = {
            "issue_id": issue.id,
            "approved_by": issue.approved_by,
            "approved_at": issue.approved_at.isoformat() if issue.approved_at else None,
        }
    if as_json:
        emit_json(data)
    elif withdraw:
        click.echo(f"issue {data['issue_id']}: approval withdrawn")
    else:
        click.echo(f"issue {data['issue_id']}: approved by {data['approved_by']}")


COMMANDS: list[click.Command] = [
    build_cmd, pin_cmd, exclude_cmd, unpin_cmd, reorder_cmd, note_cmd, approve_cmd,
]  # fmt: skip
