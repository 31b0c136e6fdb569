"""`newsletter inbound`: receive mail for the unsubscribe address (SMTP or LMTP, aiosmtpd)."""

from __future__ import annotations

import signal
import threading

import click

from newsletter.cli.context import AppContext, handle_errors, pass_app
from newsletter.errors import ConfigError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(1, 65535))
@click.option("--lmtp", is_flag=True, help="Speak LMTP (behind Postfix/Exim) instead of SMTP.")
@pass_app
@handle_errors
def inbound(app: AppContext, host: str, port: int, lmtp: bool) -> None:
    """Accept mail to unsubscribe+TOKEN@NEWSLETTER_INBOUND_DOMAIN and act on it.

    Point the domain's MX (or a transport map in your MTA) here. Other addresses are refused
    at RCPT."""
    from subscribers.inbound import InboundController, InboundHandler

    runtime = app.runtime()
    domain = runtime.settings.inbound_domain
    if domain is None:
        raise ConfigError("NEWSLETTER_INBOUND_DOMAIN: required for `newsletter inbound`")
    handler = InboundHandler(runtime.sessions, runtime.settings, runtime.clock, domain)
    controller = InboundController(
        handler, lmtp=lmtp, hostname=host, port=port, server_hostname=domain
    )
    controller.start()
    click.echo(f"inbound: {'LMTP' if lmtp else 'SMTP'} on {host}:{port} for {domain}", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
        app.close()


COMMANDS: list[click.Command] = [inbound]
