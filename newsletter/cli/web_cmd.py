"""`newsletter serve`: the public pages, webhooks and editor pages under uvicorn."""

from __future__ import annotations

import click

from newsletter.cli.context import AppContext, handle_errors, pass_app


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (each has its own database pool and rate-limit table).",
)
@click.option(
    "--proxy-headers/--no-proxy-headers",
    default=False,
    show_default=True,
    help="Trust X-Forwarded-For/-Proto from --forwarded-allow-ips (behind a reverse proxy).",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies whose forwarding headers are trusted.",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request line. Off by default: paths carry subscriber link tokens.",
)
@pass_app
@handle_errors
def serve(
    app: AppContext,
    host: str,
    port: int,
    workers: int,
    proxy_headers: bool,
    forwarded_allow_ips: str,
    access_log: bool,
) -> None:
    """Serve unsubscribe/preferences/sign-up pages, the archive, webhooks and editor pages."""
    import uvicorn

    from newsletter.web.app import create_app
    from newsletter.web.serving import base_url_warning, served_urls

    runtime = app.runtime()  # fail here, with one line, if settings or the database are not ready
    for label, url in served_urls(create_app(runtime), host, port):
        click.echo(f"{label + ':':9} {url}")
    warning = base_url_warning(runtime.settings.base_url, host, port)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    app.close()
    uvicorn.run(
        "newsletter.web.asgi:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        access_log=access_log,
        server_header=False,
        log_level="info",
    )


COMMANDS: list[click.Command] = [serve]
