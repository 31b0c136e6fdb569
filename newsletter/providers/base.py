"""The provider protocol: the sending core's only view of SendGrid, SMTP or the outbox.

A provider sends one `Batch` (one prepared message, up to `max_batch_size` recipients, each with
their own links) and says per recipient whether it was accepted. It maps its service's answers
to our vocabulary and never lets a library exception escape:

- whole batch transient (a 429 or 5xx answer, or a failure before the request was fully
  written): raise `TransientProviderError` (with `retry_after` seconds when the service said so);
- whole batch in doubt (the request was sent, then a read timeout, reset or protocol error lost
  the answer): raise `InDoubtProviderError`; the core never re-posts such a batch on a guess;
- whole batch permanent (401, 403, a 400 that no split can fix): raise `PermanentProviderError`;
- a batch the provider could not take as a whole but might in parts (400 for one bad address,
  413 too large): raise `PermanentProviderError` with `splittable=True` set on the
  `BatchTooLarge`/`BatchRejected` subclasses below; the core halves it and tries again;
- per-recipient outcomes (SMTP answers per message): `BatchResult.failed` / `.deferred` /
  `.in_doubt`.

`confirms_by_events`: the provider reports what it took through events that carry our batch
id (SendGrid's webhook), so an in-doubt batch can be settled automatically.

Providers are used from several threads at once and must be thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from newsletter.errors import PermanentProviderError


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """One rendered variant, prepared once and shared by every recipient of every batch.

    `subject`, `html` and `text` may contain the SLOT_* markers of `newsletter.types`.
    """

    issue_id: int | None  # None for transactional mail (confirmations, test sends)
    variant: str
    subject: str
    html: str
    text: str
    from_name: str
    from_email: str
    reply_to: str | None = None
    list_id: str | None = None  # List-Id header value, e.g. "AI日報 <daily.ainippo.example>"
    categories: tuple[str, ...] = ()
    bulk: bool = True  # adds List-Unsubscribe* and Precedence: bulk; False for transactional
    # First-party tracking: links through /c/ (and maybe the pixel) carry SLOT_TRACKING_TOKEN.
    tracked: bool = False


@dataclass(frozen=True, slots=True)
class Recipient:
    """One person in a batch, with the values for their slots."""

    delivery_id: int  # ledger row id (0 for transactional mail)
    subscriber_id: int
    email: str
    name: str = ""
    unsubscribe_url: str = ""  # https one-click target (RFC 8058), also the footer link
    preferences_url: str = ""
    unsubscribe_mailto: str | None = None  # mailto: alternative for List-Unsubscribe
    return_path: str | None = None  # SMTP envelope sender (VERP: bounces+TOKEN@domain)
    tracking_token: str = ""  # signed delivery reference for tracked messages (SLOT_TRACKING_TOKEN)


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: int  # ledger batch id, carried to the provider (custom_args) for webhooks
    message: PreparedMessage
    recipients: Sequence[Recipient]


@dataclass(slots=True)
class BatchResult:
    """What the provider accepted. Anything not listed as accepted was not sent."""

    accepted: list[int] = field(default_factory=list)  # delivery ids
    failed: dict[int, str] = field(default_factory=dict)  # delivery id -> permanent error
    deferred: dict[int, str] = field(default_factory=dict)  # delivery id -> transient error
    # Sent, then the answer was lost (SMTP: after end of DATA): may or may not have been taken.
    in_doubt: dict[int, str] = field(default_factory=dict)
    provider_message_id: str | None = None
    requests: int = 1  # HTTP requests / SMTP transactions this batch took


class BatchRejected(PermanentProviderError):
    """The provider refused the batch as a whole for a reason a smaller batch may not have."""

    splittable = True


class BatchTooLarge(BatchRejected):
    """413 or a size limit: split and retry."""


@runtime_checkable
class Provider(Protocol):
    name: str
    max_batch_size: int
    confirms_by_events: bool

    def send_batch(self, batch: Batch) -> BatchResult:
        """Send to every recipient of `batch`; raise only ProviderError subclasses."""
        ...

    def preflight(self) -> None:
        """Check, without sending, what would make every batch fail (a refused key, a login
        the server refuses); raise ConfigError naming the setting. Nothing to check: return."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...
