"""Value types shared by every layer: languages, statuses, and the rendered-email contract."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class Language(StrEnum):
    """A content language of an article."""

    JA = "ja"
    EN = "en"


class Preference(StrEnum):
    """What a subscriber wants to read: one language or both."""

    JA = "ja"
    EN = "en"
    BOTH = "both"  # both languages, Japanese first (日本語優先)
    BOTH_EN = "both-en"  # both languages, English first


CONTENT_LANGUAGES: tuple[str, ...] = ("ja", "en")
VARIANTS: tuple[str, ...] = ("ja", "en", "both", "both-en")
BILINGUAL_VARIANTS: tuple[str, ...] = ("both", "both-en")  # every part in both languages


class SubscriptionStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    EXPIRED = "expired"


class IssueStatus(StrEnum):
    """An issue's life: built (editable), sending (frozen), then a terminal state."""

    BUILT = "built"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"  # every planned recipient accepted, or skipped by rule
    SENT_WITH_FAILURES = "sent_with_failures"  # some accepted, some failed
    FAILED = "failed"  # nobody accepted: a setting or the provider refused every batch
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


# The send is over (for now): `issue retry` re-opens the failed kinds.
FINISHED_ISSUE_STATUSES = frozenset(
    {IssueStatus.SENT, IssueStatus.SENT_WITH_FAILURES, IssueStatus.FAILED, IssueStatus.CANCELLED}
)
FROZEN_ISSUE_STATUSES = frozenset(
    {IssueStatus.SENDING, IssueStatus.PAUSED} | FINISHED_ISSUE_STATUSES
)


class BatchStatus(StrEnum):
    """A send batch: queued -> claimed (leased) -> sending (posted) -> accepted | failed.

    A batch found in `sending` after its sender died may or may not have reached the provider:
    it becomes `in_doubt` and is resolved by reconciliation or by the operator.
    """

    QUEUED = "queued"
    CLAIMED = "claimed"
    SENDING = "sending"
    ACCEPTED = "accepted"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    """One recipient of one issue, in the ledger."""

    QUEUED = "queued"
    ACCEPTED = "accepted"
    FAILED = "failed"
    SKIPPED = "skipped"
    IN_DOUBT = "in_doubt"
    CANCELLED = "cancelled"


class FailureKind(StrEnum):
    """Why a recipient failed, which decides whether `issue retry` may send to them again."""

    ADDRESS = "address"  # the provider refused this address: retrying cannot help
    SEND = "send"  # the message, the account or the service failed: retry after the fix


class SuppressionReason(StrEnum):
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    ERASED = "erased"
    MANUAL = "manual"


# Per-recipient slots in a rendered variant. The renderer emits these markers where a
# recipient's own value goes; providers fill them (SendGrid server-side through
# `substitutions`, SMTP/outbox with str.replace). The renderer strips any marker that
# appears in article content, so content can never address a slot.
SLOT_UNSUBSCRIBE_URL = "-unsubscribe_url-"
SLOT_PREFERENCES_URL = "-preferences_url-"
SLOT_NAME = "-subscriber_name-"
# The recipient's signed engagement token, in tracked variants only: /c/TOKEN/N, /o/TOKEN.gif.
SLOT_TRACKING_TOKEN = "-tracking_token-"
SLOTS: tuple[str, ...] = (
    SLOT_UNSUBSCRIBE_URL, SLOT_PREFERENCES_URL, SLOT_NAME, SLOT_TRACKING_TOKEN
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RenderedVariant:
    """One language variant of an issue, rendered once and filled per recipient at send time.

    `html`, `text` and `subject` may contain the SLOT_* markers.
    """

    issue_id: int
    variant: str  # "ja" | "en" | "both" | "both-en"
    subject: str
    preheader: str
    html: str
    text: str
    trimmed: tuple[str, ...] = field(default=())  # what the size budget cut, for the editor


# Control characters in imported text. NUL cannot be stored by PostgreSQL at all (and SQLite
# would keep it silently); the others break one-line error messages, headers and CSV cells.
# Multi-line fields (an article's body, a CSV attribute) may hold tab and line breaks.
# C0, DEL and C1 (U+0080-U+009F: never text, often a Windows-1252 file read as Latin-1).
_CONTROL_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTI_LINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_character_problem(text: str, *, multiline: bool = False) -> str | None:
    """Why `text` is refused at an import boundary (its first control character), or None."""
    found = (_CONTROL_MULTI_LINE if multiline else _CONTROL_ONE_LINE).search(text)
    if found is None:
        return None
    allowed = (
        "only tab and line breaks are allowed here" if multiline else "expected one line of text"
    )
    return (
        f"control character U+{ord(found.group()):04X} at character {found.start() + 1}; {allowed}"
    )
