"""`newsletter issue preview` and `newsletter issue test-send`: what an editor checks first."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.context import AppContext, emit_json, handle_errors, pass_app
from newsletter.db.models import Issue
from newsletter.issues.assembly import get_issue
from newsletter.issues.variants import as_rendered, ensure_variants
from newsletter.preview import make_server, send_test_email, write_preview
from newsletter.providers.factory import make_provider
from newsletter.types import VARIANTS, RenderedVariant
from subscribers.audience import is_mailable_address
from subscribers.hashing import EmailHasher

LANG_CHOICE = click.Choice([*VARIANTS, "all"])


def _rendered(app: AppContext, ref: str, lang: str) -> tuple[Issue, list[RenderedVariant]]:
    runtime = app.runtime()
    with runtime.sessions.begin() as session:
        issue = get_issue(session, ref)
        stored = ensure_variants(session, issue, runtime.settings, runtime.clock)
        names = VARIANTS if lang == "all" else (lang,)
        variants = [as_rendered(stored[name]) for name in names]
        session.expunge(issue)
    return issue, variants


@click.command("preview")
@click.argument("issue")
@click.option(
    "--lang", type=LANG_CHOICE, default="all", show_default=True, help="Variant to write."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the files [default: var/preview/<issue id>].",
)
@click.option("--serve", is_flag=True, help="Serve the side-by-side preview page on 127.0.0.1.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8025,
    show_default=True,
    help="Port for --serve (0: any free port).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@pass_app
@handle_errors
def preview(
    app: AppContext,
    issue: str,
    lang: str,
    out_dir: Path | None,
    serve: bool,
    port: int,
    as_json: bool,
) -> None:
    """Write each variant's .html, .txt and .eml (sample links) and an index.html page.

    ISSUE is an id, YYYY-MM-DD (default list) or list:YYYY-MM-DD. Variants are rendered and
    stored first if the issue changed since they were last rendered.
    """
    found, variants = _rendered(app, issue, lang)
    folder = out_dir or app.settings.var_dir / "preview" / str(found.id)
    files, index = write_preview(
        variants, folder, app.settings, issue_label=f"{found.issue_date.isoformat()} (#{found.id})"
    )
    if as_json:
        emit_json(
            {
                "issue_id": found.id,
                "index": str(index),
                "variants": [
                    {
                        "variant": f.variant,
                        "html": str(f.html),
                        "text": str(f.text),
                        "eml": str(f.eml),
                        "html_bytes": f.size,
                        "trimmed": list(f.trimmed),
                    }
                    for f in files
                ],
            }
        )
    else:
        for f in files:
            note = f"; trimmed: {'; '.join(f.trimmed)}" if f.trimmed else ""
            click.echo(f"{f.variant}: {f.html} ({f.size:,} bytes){note}")
        click.echo(f"preview page: {index}")
    if serve:
        server = make_server(folder, port)
        host, bound = server.server_address[:2]
        click.echo(f"serving http://{host}:{bound}/index.html (Ctrl-C to stop)", err=as_json)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


@click.command("test-send")
@click.argument("issue")
@click.option("--to", "addresses", multiple=True, required=True, help="An editor's address.")
@click.option("--lang", type=LANG_CHOICE, default="all", show_default=True, help="Variant to send.")
@click.option("--json", "as_json", is_flag=True, help="Print the provider's answer as JSON.")
@pass_app
@handle_errors
def test_send_command(
    app: AppContext, issue: str, addresses: tuple[str, ...], lang: str, as_json: bool
) -> None:
    """Send the issue to the given addresses only, subject "[TEST] ...", outside the ledger.

    ISSUE is an id, YYYY-MM-DD (default list) or list:YYYY-MM-DD. A suppressed address stops
    the whole test send before anything goes out.
    """
    _, variants = _rendered(app, issue, lang)
    runtime = app.runtime()
    with runtime.sessions.begin() as session:
        hasher = EmailHasher.load(session)

        def mailable(address: str) -> bool:
            return is_mailable_address(session, hasher(address))

        provider = make_provider(runtime.settings)
        try:
            results = send_test_email(
                {v.variant: v for v in variants},
                list(addresses),
                runtime.settings,
                provider,
                is_mailable=mailable,
            )
        finally:
            provider.close()
    summary = {
        name: {"accepted": len(r.accepted), "failed": list(r.failed.values())}
        for name, r in results.items()
    }
    if as_json:
        emit_json(summary)
    else:
        for name, row in summary.items():
            click.echo(f"{name}: {row['accepted']} accepted, {len(row['failed'])} failed")


COMMANDS: list[click.Command] = [preview, test_send_command]
