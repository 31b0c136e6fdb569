"""What an editor checks before the morning send: preview files, a local preview page, and a
test send to the editors' own addresses.

Previews fill the slots with harmless sample links (`/u/preview`), never a real token.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from jinja2 import Environment

from newsletter.config import Settings
from newsletter.errors import SuppressedError, ValidationError
from newsletter.providers.base import Batch, BatchResult, PreparedMessage, Provider, Recipient
from newsletter.render.budget import filled_size
from newsletter.render.environment import make_environment
from newsletter.render.mime import build_mime, fill_slots
from newsletter.types import SLOT_NAME, SLOT_PREFERENCES_URL, SLOT_UNSUBSCRIBE_URL, RenderedVariant

TEST_PREFIX = "[TEST] "


def preview_slots(settings: Settings) -> dict[str, str]:
    """Sample values for the per-recipient slots: they look real and lead nowhere."""
    return {
        SLOT_UNSUBSCRIBE_URL: f"{settings.base_url}/u/preview",
        SLOT_PREFERENCES_URL: f"{settings.base_url}/p/preview",
        SLOT_NAME: "Preview",
    }


@dataclass(frozen=True, slots=True)
class PreviewFiles:
    variant: str
    html: Path
    text: Path
    eml: Path
    size: int  # HTML bytes with realistic links filled
    trimmed: tuple[str, ...]


def write_preview(
    variants: Iterable[RenderedVariant],
    out_dir: Path,
    settings: Settings,
    *,
    issue_label: str,
    now: datetime | None = None,
) -> tuple[list[PreviewFiles], Path]:
    """Write `<variant>.html/.txt/.eml` and `index.html` (the side-by-side page) to `out_dir`."""
    variants = list(variants)
    out_dir.mkdir(parents=True, exist_ok=True)
    slots = preview_slots(settings)
    written: list[PreviewFiles] = []
    for rendered in variants:
        stem = out_dir / rendered.variant
        html_path, text_path, eml_path = (stem.with_suffix(s) for s in (".html", ".txt", ".eml"))
        html_path.write_text(fill_slots(rendered.html, slots), encoding="utf-8")
        text_path.write_text(fill_slots(rendered.text, slots), encoding="utf-8")
        message = build_mime(
            rendered,
            sender=settings.from_address,
            to="preview@example.invalid",
            slots=slots,
            reply_to=settings.reply_to,
            date=now,
        )
        eml_path.write_bytes(message.as_bytes())
        written.append(
            PreviewFiles(
                variant=rendered.variant,
                html=html_path,
                text=text_path,
                eml=eml_path,
                size=filled_size(rendered.html, settings.base_url),
                trimmed=rendered.trimmed,
            )
        )
    index = out_dir / "index.html"
    index.write_text(
        preview_page(variants, written, settings, issue_label=issue_label), encoding="utf-8"
    )
    return written, index


@functools.cache
def _page_environment() -> Environment:
    return make_environment(strict=False, keep_trailing_newline=False)


def preview_page(
    variants: Sequence[RenderedVariant],
    files: Sequence[PreviewFiles],
    settings: Settings,
    *,
    issue_label: str,
) -> str:
    sizes = {f.variant: f.size for f in files}
    rows = [
        {
            "variant": v.variant,
            "subject": v.subject,
            "preheader": v.preheader,
            "trimmed": v.trimmed,
            "size": f"{sizes.get(v.variant, 0):,}",
            "text": fill_slots(v.text, preview_slots(settings)),
        }
        for v in variants
    ]
    template = _page_environment().get_template("preview/index.html.j2")
    return template.render(
        variants=rows, newsletter_name=settings.newsletter_name, issue_label=issue_label
    )


def make_server(directory: Path, port: int = 0) -> ThreadingHTTPServer:
    """A static file server for the preview folder, on 127.0.0.1 only (port 0: any free one)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".txt": "text/plain; charset=utf-8",
        ".html": "text/html; charset=utf-8",
        ".eml": "message/rfc822",
    }

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        return


def send_test_email(
    variants: Mapping[str, RenderedVariant],
    addresses: Sequence[str],
    settings: Settings,
    provider: Provider,
    *,
    is_mailable: Callable[[str], bool],
) -> dict[str, BatchResult]:
    """Send each variant to the editors' `addresses` only, subject prefixed "[TEST]".

    Nothing is written to the send ledger (`issue_id` is None, delivery ids are 0). Every
    address is checked before anything is sent: one suppressed address stops the whole send.
    """
    if not addresses:
        raise ValidationError("test send: give at least one address with --to")
    for address in addresses:
        if "@" not in address:
            raise ValidationError(f"test send: {address!r} is not an email address")
        if not is_mailable(address):
            raise SuppressedError(
                f"test send: {_mask(address)} is on the suppression list and is never mailed"
            )
    slots = preview_slots(settings)
    results: dict[str, BatchResult] = {}
    for name, rendered in variants.items():
        message = PreparedMessage(
            issue_id=None,
            variant=name,
            subject=TEST_PREFIX + rendered.subject,
            html=rendered.html,
            text=rendered.text,
            from_name=settings.from_address.display_name,
            from_email=settings.from_address.addr_spec,
            reply_to=settings.reply_to,
            categories=("test-send",),
            bulk=False,
        )
        recipients = [
            Recipient(
                delivery_id=0,
                subscriber_id=0,
                email=address,
                name="",
                unsubscribe_url=slots[SLOT_UNSUBSCRIBE_URL],
                preferences_url=slots[SLOT_PREFERENCES_URL],
            )
            for address in addresses
        ]
        results[name] = provider.send_batch(
            Batch(batch_id=0, message=message, recipients=recipients)
        )
    return results


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
