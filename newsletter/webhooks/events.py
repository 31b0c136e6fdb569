"""Our provider-neutral event type: what any provider's webhook is parsed into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    PROCESSED = "processed"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    OPEN = "open"
    CLICK = "click"
    BOUNCE = "bounce"  # a hard bounce: the address does not exist
    BLOCKED = "blocked"  # a soft refusal (reputation, content): not the address's fault
    DROPPED = "dropped"
    SPAMREPORT = "spamreport"
    UNSUBSCRIBE = "unsubscribe"
    GROUP_UNSUBSCRIBE = "group_unsubscribe"
    GROUP_RESUBSCRIBE = "group_resubscribe"


# How far along a delivery an event is. `deliveries.last_event` only ever moves to a higher
# rank, so a late or redelivered `processed` never hides the `click` that came before it.
EVENT_RANK: dict[str, int] = {
    EventType.PROCESSED: 1,
    EventType.DEFERRED: 2,
    EventType.DELIVERED: 3,
    EventType.BLOCKED: 4,
    EventType.DROPPED: 4,
    EventType.BOUNCE: 4,
    EventType.OPEN: 5,
    EventType.CLICK: 6,
    EventType.GROUP_RESUBSCRIBE: 6,
    EventType.UNSUBSCRIBE: 7,
    EventType.GROUP_UNSUBSCRIBE: 7,
    EventType.SPAMREPORT: 8,
}


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One event as a provider reported it, reduced to what we act on and keep.

    `email` is held in memory only, to compute the keyed hash; `payload` is what is stored and
    never contains the address.
    """

    provider: str
    event_id: str
    type: str
    occurred_at: datetime
    email: str | None = None
    issue_id: int | None = None
    batch_id: int | None = None
    delivery_id: int | None = None
    subscriber_id: int | None = None
    bounce_type: str | None = None  # SendGrid's `type` on bounces: "bounce" | "blocked"
    reason: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def is_hard_bounce(self) -> bool:
        """An address that does not exist: a `bounce` (not `blocked`), or a drop because of one."""
        if self.type == EventType.BOUNCE:
            return self.bounce_type != "blocked"
        if self.type == EventType.DROPPED:
            return "bounce" in (self.reason or "").lower()
        return False
