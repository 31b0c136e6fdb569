"""`newsletter articles import|list|show`: thin wrappers over `newsletter.articles`."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from newsletter.articles.ingest import import_sources
from newsletter.articles.queries import articles_between, find_article, headline
from newsletter.articles.samples import import_samples
from newsletter.articles.schema import article_to_dict
from newsletter.cli.context import ISO_DATE, AppContext, emit_json, handle_errors, pass_app
from newsletter.errors import NotFoundError, ValidationError

JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


@click.command("import")
@click.argument("sources", nargs=-1, metavar="PATH_OR_URL...")
@click.option(
    "--samples",
    is_flag=True,
    help="Also import the shipped sample articles, re-dated into today's issue window.",
)
@JSON
@pass_app
@handle_errors
def import_cmd(app: AppContext, sources: tuple[str, ...], samples: bool, as_json: bool) -> None:
    """Import articles from JSON / JSON Lines files, RSS 2.0 or Atom feeds, paths or URLs.

    Valid articles are kept even when others in the same file are rejected; the exit status
    is 66 when a file does not exist, else 65 when anything was rejected or could not be read.
    """
    if not sources and not samples:
        raise click.UsageError("give at least one PATH_OR_URL, or --samples")
    runtime = app.runtime()
    missing = [s for s in sources if "://" not in s and not Path(s).exists()]
    report = import_sources(runtime.sessions, list(sources), runtime.clock)
    if samples:
        report.add(import_samples(runtime.sessions, runtime.clock, runtime.settings))
    if as_json:
        emit_json(report.to_dict())
    else:
        for message in report.messages():
            click.secho(f"error: {message}", fg="red", err=True)
        click.echo(
            f"imported {report.imported}, updated {report.updated}, "
            f"unchanged {report.unchanged}, rejected {report.rejected}"
        )
    if missing:
        sys.exit(NotFoundError.exit_code)
    if not report.ok:
        sys.exit(ValidationError.exit_code)


@click.command("list")
@click.option(
    "--date",
    "day",
    type=ISO_DATE,
    help="Only articles published on this local day (NEWSLETTER_TIMEZONE).",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@JSON
@pass_app
@handle_errors
def list_cmd(app: AppContext, day: date | None, limit: int, as_json: bool) -> None:
    """List articles, newest first."""
    runtime = app.runtime()
    tz = runtime.settings.timezone
    start = end = None
    if day is not None:
        start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    with runtime.sessions() as session:
        found = articles_between(session, start, end, limit)
        rows: list[dict[str, Any]] = [
            {
                "id": a.external_id,
                "published_at": a.published_at.astimezone(tz).isoformat(),
                "importance": a.importance,
                "languages": [c.language for c in a.contents],
                "title": headline(a),
            }
            for a in found
        ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no articles")
    for row in rows:
        click.echo(
            f"{row['published_at'][:16].replace('T', ' ')}  {row['importance']:>3}  "
            f"{'/'.join(sorted(row['languages'])):<5}  {row['id']}  {row['title']}"
        )


@click.command("show")
@click.argument("article_id")
@JSON
@pass_app
@handle_errors
def show_cmd(app: AppContext, article_id: str, as_json: bool) -> None:
    """Show one article (by its import id) in the import format."""
    runtime = app.runtime()
    with runtime.sessions() as session:
        data = article_to_dict(find_article(session, article_id))
    if as_json:
        emit_json(data)
        return
    click.echo(f"id:          {data['id']}")
    click.echo(f"url:         {data['url']}")
    if data["source_url"]:
        click.echo(f"source:      {data['source_name'] or ''} {data['source_url']}".rstrip())
    click.echo(f"published:   {data['published_at']}")
    click.echo(f"importance:  {data['importance']}")
    click.echo(f"tags:        {', '.join(data['tags'])}")
    for lang, content in data["content"].items():
        click.echo(f"\n[{lang}] {content['title']}")
        click.echo(f"  {content['summary']}")
        for point in content["key_points"]:
            click.echo(f"  - {point['heading']}")
        extras = [
            name for name in ("impact_analysis", "editor_comment", "body") if content.get(name)
        ]
        if content["related"]:
            extras.append(f"related ({len(content['related'])})")
        if extras:
            click.echo(f"  also: {', '.join(extras)}")


COMMANDS: list[click.Command] = [import_cmd, list_cmd, show_cmd]
