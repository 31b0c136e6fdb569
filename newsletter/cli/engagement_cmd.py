"""`newsletter issue stats`, `newsletter lists trends`, `newsletter engagement purge`: what
readers did with an issue and a list, and the retention of raw events."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app, plural
from newsletter.db.session import transaction
from newsletter.engagement.export import write_engagement_csv
from newsletter.engagement.retention import purge_events
from newsletter.engagement.stats import (
    LANGUAGES,
    IssueEngagement,
    ListTrends,
    issue_engagement,
    list_trends,
    percent,
)
from newsletter.issues.assembly import get_issue
from newsletter.render.width import display_width, truncate_width
from newsletter.types import VARIANTS
from subscribers.lists import get_list

LANG = click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default="en",
    show_default=True,
    help="Language of article titles and notes.",
)
JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def _cut(text: str, width: int) -> str:
    """`text` in exactly `width` terminal columns: Japanese characters take two."""
    cut = truncate_width(text, width)
    return cut + " " * (width - display_width(cut))


def print_engagement(stats: IssueEngagement) -> None:
    click.echo(f"issue {stats.issue_id}  {stats.list}:{stats.date.isoformat()}  {stats.status}")
    click.echo(
        f"recipients:  {stats.recipients} accepted, {stats.tracked_recipients} tracked"
        + ("" if stats.click_tracking else "  (the list does not track clicks)")
    )
    click.echo(
        f"clicks:      {stats.reader_clicks} by readers, {stats.unique_clickers} readers clicked,"
        f" click-through rate {percent(stats.ctr)}"
    )
    reasons = ", ".join(f"{r} {n}" for r, n in stats.machine_by_reason.items() if n)
    click.echo(
        f"machines:    {stats.machine_clicks} clicks not counted"
        + (f" ({reasons})" if reasons else "")
    )
    for note in stats.notes:
        click.echo(f"note:        {note}")
    if stats.articles:
        heads = "".join(f"{v:>8}" for v in VARIANTS)
        click.echo(f"\n  #  {'article':<40}{'clicks':>7}{'readers':>8}{'CTR':>7}{heads}")
        for a in stats.articles:
            by = "".join(f"{a.clicks_by_variant[v]:>8}" for v in VARIANTS)
            click.echo(
                f"{a.position:>3}  {_cut(a.title or a.ref, 40)}{a.clicks:>7}"
                f"{a.unique_clickers:>8}{percent(a.ctr):>7}{by}"
            )
        if stats.other_clicks:
            click.echo(f"     other links: {plural(stats.other_clicks, 'click')}")
    if stats.opens is not None:
        o = stats.opens
        click.echo(
            f"\nopens:       {o.reader_opens} by readers, {o.unique_openers} readers opened, "
            f"open rate {percent(o.open_rate)}"
        )
        click.echo(
            f"not opens:   {o.apple_mpp} Apple Mail Privacy Protection, {o.proxy} image proxy, "
            f"{o.machine} other machine fetches"
        )
        click.echo(f"reliability: {o.reliability}")


@click.command("stats")
@click.argument("issue_ref", metavar="ISSUE")
@JSON
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the per-article table as CSV (UTF-8) to this file ('-' for stdout).",
)  # fmt: skip
@LANG
@pass_app
@handle_errors
def stats_cmd(
    app: AppContext, issue_ref: str, as_json: bool, csv_path: Path | None, lang: str
) -> None:
    """Reader engagement of ISSUE (an id, YYYY-MM-DD or list:YYYY-MM-DD): clicks per article
    and language variant, machine clicks apart, opens with how far to trust them."""
    with transaction(app.runtime().sessions) as session:
        stats = issue_engagement(session, get_issue(session, issue_ref), lang)
    if csv_path is not None:
        if str(csv_path) == "-":
            write_engagement_csv(stats, click.get_text_stream("stdout"))
            return
        with csv_path.open("w", encoding="utf-8", newline="") as out:
            rows = write_engagement_csv(stats, out)
        if not as_json:
            click.echo(f"{plural(rows, 'article')} written to {csv_path}", err=True)
    if as_json:
        emit_json(stats.to_dict())
    else:
        print_engagement(stats)


def print_trends(trends: ListTrends) -> None:
    if not trends.issues:
        click.echo(f"list {trends.list}: no sent issues yet")
        return
    click.echo(f"{'date':<11}{'recipients':>11}{'tracked':>9}{'readers':>9}{'CTR':>8}  top article")
    for t in trends.issues:
        top = "-"
        if t.top_article:
            top = f"{truncate_width(t.top_article, 40)} ({t.top_article_clickers})"
        click.echo(
            f"{t.date.isoformat():<11}{t.recipients:>11}{t.tracked_recipients:>9}"
            f"{t.unique_clickers:>9}{percent(t.ctr):>8}  {top}"
        )


@click.command("trends")
@click.argument("slug")
@JSON
@LANG
@pass_app
@handle_errors
def trends_cmd(app: AppContext, slug: str, as_json: bool, lang: str) -> None:
    """The last 30 sent issues of list SLUG: recipients, readers who clicked, click-through
    rate and the most clicked article, oldest first."""
    with transaction(app.runtime().sessions) as session:
        trends = list_trends(session, get_list(session, slug), lang)
    if as_json:
        emit_json(trends.to_dict())
    else:
        print_trends(trends)


@click.group()
def engagement() -> None:
    """First-party engagement: retention of raw click and open events."""


@engagement.command("purge")
@click.option("--dry-run", is_flag=True, help="Say what would be folded; change nothing.")
@JSON
@pass_app
@handle_errors
def purge_cmd(app: AppContext, dry_run: bool, as_json: bool) -> None:
    """Fold raw events older than NEWSLETTER_EVENTS_RETENTION_DAYS into per-issue counts and
    delete them (an issue once all its events are that old). The scheduler does it daily."""
    runtime = app.runtime()
    report = purge_events(runtime.sessions, runtime.settings, runtime.clock, dry_run=dry_run)
    if as_json:
        emit_json(report.to_dict())
        return
    verb = "would fold" if dry_run else "folded"
    click.echo(
        f"{verb} {plural(len(report.issues), 'issue')}: {plural(report.clicks, 'click')}, "
        f"{plural(report.opens, 'open')} older than {report.cutoff:%Y-%m-%d %H:%M} UTC"
    )
    if report.kept_issues:
        click.echo(
            f"kept {plural(report.kept_issues, 'issue')} whose newer events are still within "
            "retention"
        )


ISSUE_COMMANDS: list[click.Command] = [stats_cmd]
LIST_COMMANDS: list[click.Command] = [trends_cmd]
