"""`newsletter inbound`: receive mail for the unsubscribe and bounce addresses, over SMTP or
LMTP (aiosmtpd), or by reading a Maildir."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from pathlib import Path

import click

from newsletter.cli.context import AppContext, handle_errors, pass_app
from newsletter.errors import ConfigError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(1, 65535))
@click.option("--lmtp", is_flag=True, help="Speak LMTP (behind Postfix/Exim) instead of SMTP.")
@click.option(
    "--maildir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Read this Maildir instead of listening (mail fetched or delivered there).",
)
@click.option("--once", is_flag=True, help="With --maildir: read the new mail once and exit.")
@click.option(
    "--interval",
    type=click.IntRange(5, 3600),
    default=60,
    show_default=True,
    help="With --maildir: seconds between reads.",
)
@pass_app
@handle_errors
def inbound(
    app: AppContext,
    host: str,
    port: int,
    lmtp: bool,
    maildir: Path | None,
    once: bool,
    interval: int,
) -> None:
    """Accept mail to unsubscribe+TOKEN@ and bounces+TOKEN@NEWSLETTER_INBOUND_DOMAIN and act
    on it.

    Point the domain's MX (or a transport map in your MTA) here; other addresses are refused
    at RCPT. Where the MTA cannot hand mail over, deliver it to a Maildir and use --maildir."""
    runtime = app.runtime()
    domain = runtime.settings.inbound_domain
    if domain is None:
        raise ConfigError("NEWSLETTER_INBOUND_DOMAIN: required for `newsletter inbound`")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if maildir is not None:
        _read_maildir(app, maildir, domain, once, interval, stop)
        return
    from subscribers.inbound import InboundController, InboundHandler

    handler = InboundHandler(runtime.sessions, runtime.settings, runtime.clock, domain)
    controller = InboundController(
        handler, lmtp=lmtp, hostname=host, port=port, server_hostname=domain
    )
    controller.start()
    click.echo(f"inbound: {'LMTP' if lmtp else 'SMTP'} on {host}:{port} for {domain}", err=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
        app.close()


def _read_maildir(
    app: AppContext, path: Path, domain: str, once: bool, interval: int, stop: threading.Event
) -> None:
    from subscribers.inbound_mailbox import read_maildir

    runtime = app.runtime()
    if not once:
        click.echo(f"inbound: reading {path} every {interval} s for {domain}", err=True)
    try:
        while True:
            report = read_maildir(path, runtime.sessions, runtime.settings, runtime.clock, domain)
            if report.read or once:
                counts = Counter(f"{o.address_kind} {o.outcome}" for o in report.outcomes)
                summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
                others = f", {report.not_ours} for other addresses" if report.not_ours else ""
                click.echo(f"inbound: {report.read} read ({summary or 'none acted on'}{others})")
            if once or stop.wait(interval):
                return
    except KeyboardInterrupt:
        pass


COMMANDS: list[click.Command] = [inbound]
