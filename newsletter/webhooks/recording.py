"""Apply provider events to the database, idempotently, in one transaction per request.

Providers redeliver (SendGrid retries for 72 hours) and SendGrid's `sg_event_id` is reported to
change between redeliveries, so two guards are kept:

1. the event row is unique on (provider, event_id): a redelivery with the same id is skipped
   (`INSERT ... ON CONFLICT DO NOTHING`, safe against two concurrent redeliveries);
2. every effect only moves forward: a delivery's `last_event` only to a higher rank, a
   subscription only from active/pending to unsubscribed/bounced/complained, a suppression is
   inserted if absent. Applying the same event twice therefore changes nothing.

Writes are set-based (a few statements per request, whatever the batch size). This module
touches the tables directly rather than calling the subscribers package row by row: a webhook
batch holds up to a thousand events and the effects here are the narrow, forward-only subset
of those rules that a provider may trigger. The address arrives only to be hashed
(`hash_email`, the installation's keyed hash); it is never stored or logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.db.models import (
    ConsentRecord,
    Delivery,
    Event,
    Issue,
    Subscriber,
    Subscription,
    Suppression,
)
from newsletter.types import SubscriptionStatus, SuppressionReason
from newsletter.webhooks.events import EVENT_RANK, EventType, ProviderEvent
from newsletter.webhooks.soft_bounces import (
    DEFAULT_LIMIT,
    clear_soft_bounces,
    record_soft_bounces,
)

_CHUNK = 500  # ids per IN (...) list: well under every database's parameter limit
_UNSUBSCRIBE_TYPES = frozenset({EventType.UNSUBSCRIBE, EventType.GROUP_UNSUBSCRIBE})
_LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)
_REACHED_TYPES = frozenset({EventType.DELIVERED, EventType.OPEN, EventType.CLICK})
_STATUS_FOR_REASON = {
    SuppressionReason.BOUNCED: SubscriptionStatus.BOUNCED,
    SuppressionReason.COMPLAINED: SubscriptionStatus.COMPLAINED,
}


@dataclass(slots=True)
class RecordResult:
    """What one request changed; the webhook answers with it and the benchmark checks it."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    ledger_updates: int = 0
    suppressed: int = 0
    unsubscribed: int = 0
    complained: int = 0
    bounced: int = 0
    settled: int = 0  # in-doubt recipients these events proved sent (set by the caller)
    unknown_types: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "ledger_updates": self.ledger_updates,
            "suppressed": self.suppressed,
            "unsubscribed": self.unsubscribed,
            "complained": self.complained,
            "bounced": self.bounced,
            "settled": self.settled,
            "unknown_types": dict(self.unknown_types),
        }


@dataclass(frozen=True, slots=True)
class _Resolved:
    """An event with the ids and hash the database can vouch for."""

    event: ProviderEvent
    email_hash: str | None
    issue_id: int | None
    subscriber_id: int | None
    list_id: int | None


def record_events(
    session: Session,
    events: Sequence[ProviderEvent],
    *,
    received_at: datetime,
    hash_email: Callable[[str], str],
    soft_bounce_limit: int = DEFAULT_LIMIT,
) -> RecordResult:
    """Store the new events and apply their effects. The caller commits (one transaction)."""
    result = RecordResult(received=len(events))
    unique = list({(e.provider, e.event_id): e for e in reversed(events)}.values())[::-1]
    resolved = _resolve(session, unique, hash_email)
    for item in resolved:
        if item.event.type not in EVENT_RANK:
            result.unknown_types[item.event.type] = result.unknown_types.get(item.event.type, 0) + 1
    fresh = _insert_new(session, resolved, received_at)
    result.stored = len(fresh)
    result.duplicates = len(events) - len(fresh)
    if fresh:
        result.ledger_updates = _update_ledger(session, fresh, received_at)
        _apply_subscriber_effects(session, fresh, received_at, result, soft_bounce_limit)
    return result


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _resolve(
    session: Session, events: Sequence[ProviderEvent], hash_email: Callable[[str], str]
) -> list[_Resolved]:
    """Hash addresses; keep only ids that exist (a stale or forged id must not break the batch)."""
    hashes = [hash_email(e.email) if e.email else None for e in events]
    issue_ids = sorted({e.issue_id for e in events if e.issue_id is not None})
    issue_lists: dict[int, int] = {}
    for chunk in _chunks(issue_ids):
        issue_lists.update(
            (row[0], row[1])
            for row in session.execute(select(Issue.id, Issue.list_id).where(Issue.id.in_(chunk)))
        )
    claimed = sorted({e.subscriber_id for e in events if e.subscriber_id is not None})
    sub_hash: dict[int, str] = {}
    for chunk in _chunks(claimed):
        rows = session.execute(
            select(Subscriber.id, Subscriber.email_hash).where(Subscriber.id.in_(chunk))
        )
        sub_hash.update((row[0], row[1]) for row in rows)
    wanted = sorted(
        {h for h, e in zip(hashes, events, strict=True) if h and e.subscriber_id is None}
    )
    by_hash: dict[str, int] = {}
    for chunk in _chunks(wanted):
        rows = session.execute(
            select(Subscriber.email_hash, Subscriber.id).where(Subscriber.email_hash.in_(chunk))
        )
        by_hash.update((row[0], row[1]) for row in rows)
    out = []
    for event, email_hash in zip(events, hashes, strict=True):
        subscriber_id = event.subscriber_id if event.subscriber_id in sub_hash else None
        if (
            subscriber_id is not None
            and email_hash is not None
            and sub_hash[subscriber_id] != email_hash
        ):
            subscriber_id = (
                None  # the custom arg and the address disagree: trust neither for effects
            )
        if subscriber_id is None and email_hash is not None:
            subscriber_id = by_hash.get(email_hash)
        if email_hash is None and subscriber_id is not None:
            email_hash = sub_hash.get(subscriber_id)
        issue_id = event.issue_id if event.issue_id in issue_lists else None
        list_id = issue_lists.get(issue_id) if issue_id is not None else None
        out.append(_Resolved(event, email_hash, issue_id, subscriber_id, list_id))
    return out


def _upsert_ignore(session: Session, table: Any) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING on either database."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


def _insert_new(session: Session, items: list[_Resolved], received_at: datetime) -> list[_Resolved]:
    """Insert the events not seen before; return exactly those (the ones to apply)."""
    if not items:
        return []
    provider_ids: dict[str, list[str]] = {}
    for item in items:
        provider_ids.setdefault(item.event.provider, []).append(item.event.event_id)
    seen: set[tuple[str, str]] = set()
    for provider, ids in provider_ids.items():
        for chunk in _chunks(ids):
            rows = session.scalars(
                select(Event.event_id).where(Event.provider == provider, Event.event_id.in_(chunk))
            )
            seen.update((provider, event_id) for event_id in rows)
    candidates = [i for i in items if (i.event.provider, i.event.event_id) not in seen]
    if not candidates:
        return []
    rows = [
        {
            "provider": i.event.provider,
            "event_id": i.event.event_id,
            "type": i.event.type,
            "issue_id": i.issue_id,
            "batch_id": i.event.batch_id,
            "subscriber_id": i.subscriber_id,
            "email_hash": i.email_hash,
            "occurred_at": i.event.occurred_at,
            "received_at": received_at,
            "payload": i.event.payload,
        }
        for i in candidates
    ]
    stmt = _upsert_ignore(session, Event).returning(Event.provider, Event.event_id)
    inserted = {(row[0], row[1]) for row in session.execute(stmt, rows)}
    return [i for i in candidates if (i.event.provider, i.event.event_id) in inserted]


def _rank_of(column: Any) -> Any:
    return case({name: rank for name, rank in EVENT_RANK.items()}, value=column, else_=0)


def _update_ledger(session: Session, items: list[_Resolved], received_at: datetime) -> int:
    """Move each delivery's `last_event` forward to the furthest event of this batch."""
    by_id: dict[int, ProviderEvent] = {}
    by_pair: dict[tuple[int, int], ProviderEvent] = {}
    for item in items:
        event = item.event
        if event.type not in EVENT_RANK:
            continue
        if event.delivery_id is not None:
            slot: dict[Any, ProviderEvent] = by_id
            key: Any = event.delivery_id
        elif item.issue_id is not None and item.subscriber_id is not None:
            slot, key = by_pair, (item.issue_id, item.subscriber_id)
        else:
            continue
        best = slot.get(key)
        if best is None or (EVENT_RANK[event.type], event.occurred_at) > (
            EVENT_RANK[best.type],
            best.occurred_at,
        ):
            slot[key] = event
    table = Delivery.__table__
    changed = 0
    values = {
        "last_event": bindparam("p_type"),
        "last_event_at": bindparam("p_at"),
        "updated_at": bindparam("p_now"),
    }
    forward = (table.c.last_event.is_(None)) | (_rank_of(table.c.last_event) < bindparam("p_rank"))
    conn = session.connection()
    if by_id:
        stmt = update(table).where(table.c.id == bindparam("p_id"), forward).values(values)
        params = [
            {
                "p_id": k,
                "p_type": e.type,
                "p_at": e.occurred_at,
                "p_now": received_at,
                "p_rank": EVENT_RANK[e.type],
            }
            for k, e in by_id.items()
        ]
        changed += conn.execute(stmt, params).rowcount or 0
    if by_pair:
        stmt = (
            update(table)
            .where(
                table.c.issue_id == bindparam("p_issue"),
                table.c.subscriber_id == bindparam("p_sub"),
                forward,
            )
            .values(values)
        )
        params = [
            {
                "p_issue": k[0],
                "p_sub": k[1],
                "p_type": e.type,
                "p_at": e.occurred_at,
                "p_now": received_at,
                "p_rank": EVENT_RANK[e.type],
            }
            for k, e in by_pair.items()
        ]
        changed += conn.execute(stmt, params).rowcount or 0
    return changed


def _apply_subscriber_effects(
    session: Session,
    items: list[_Resolved],
    now: datetime,
    result: RecordResult,
    soft_bounce_limit: int,
) -> None:
    """Suppress hard bounces, complaints and repeated soft bounces; end the subscriptions of
    unsubscribes.

    Same rules as `subscribers.suppression.suppress`: a suppression moves every live (active
    or pending) subscription of the address to bounced/complained, with a `suppress` consent
    record; an unsubscribe ends the subscription to the list the email came from (every
    list when the event names no issue).
    """
    suppress: dict[str, str] = {}
    unsubscribe: dict[int | None, set[int]] = {}  # list id (None: every list) -> subscribers
    soft: set[str] = set()  # soft bounces (`blocked`): counted, suppressed past the limit
    reached: set[str] = set()  # delivered, opened or clicked: earlier soft bounces forgotten
    for item in items:
        event = item.event
        if event.type == EventType.SPAMREPORT and item.email_hash:
            suppress[item.email_hash] = SuppressionReason.COMPLAINED
        elif event.is_hard_bounce and item.email_hash:
            suppress.setdefault(item.email_hash, SuppressionReason.BOUNCED)
        elif event.type in _UNSUBSCRIBE_TYPES and item.subscriber_id is not None:
            unsubscribe.setdefault(item.list_id, set()).add(item.subscriber_id)
        if item.email_hash and event.type == EventType.BOUNCE and not event.is_hard_bounce:
            soft.add(item.email_hash)
        elif item.email_hash and event.type in _REACHED_TYPES:
            reached.add(item.email_hash)
    clear_soft_bounces(session, reached - soft)
    for email_hash in record_soft_bounces(
        session, soft, now=now, source="webhook", limit=soft_bounce_limit
    ):
        suppress.setdefault(email_hash, SuppressionReason.BOUNCED)
    consent: list[dict[str, Any]] = []
    if suppress:
        rows = [
            {"email_hash": h, "reason": str(reason), "source": "webhook", "created_at": now}
            for h, reason in suppress.items()
        ]
        stmt = _upsert_ignore(session, Suppression).returning(Suppression.id)
        result.suppressed = len(session.execute(stmt, rows).all())
        for reason, status in _STATUS_FOR_REASON.items():
            hashes = sorted(h for h, r in suppress.items() if r == reason)
            changed = _end_subscriptions(session, hashes, None, status, now, by_hash=True)
            if reason == SuppressionReason.COMPLAINED:
                result.complained = len(changed)
            else:
                result.bounced = len(changed)
            consent += _consent_rows(changed, "suppress", str(reason), now)
    for list_id, subscriber_ids in unsubscribe.items():
        changed = _end_subscriptions(
            session, sorted(subscriber_ids), list_id, SubscriptionStatus.UNSUBSCRIBED, now
        )
        result.unsubscribed += len(changed)
        consent += _consent_rows(changed, "unsubscribe", "reported by the email provider", now)
    if consent:
        session.execute(ConsentRecord.__table__.insert(), consent)


def _end_subscriptions(
    session: Session,
    keys: Sequence[Any],
    list_id: int | None,
    status: SubscriptionStatus,
    now: datetime,
    *,
    by_hash: bool = False,
) -> list[tuple[int, int]]:
    """Move live subscriptions of these subscribers (ids, or address hashes) to `status`."""
    changed: list[tuple[int, int]] = []
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == SubscriptionStatus.UNSUBSCRIBED:
        values["unsubscribed_at"] = now
    table = Subscription.__table__
    for chunk in _chunks(keys):
        who = (
            select(Subscriber.id).where(Subscriber.email_hash.in_(chunk)).scalar_subquery()
            if by_hash
            else None
        )
        stmt = (
            update(table)
            .where(
                table.c.subscriber_id.in_(who if who is not None else chunk),
                table.c.status.in_(_LIVE),
            )
            .values(values)
            .returning(table.c.subscriber_id, table.c.list_id)
        )
        if list_id is not None:
            stmt = stmt.where(table.c.list_id == list_id)
        changed.extend((row[0], row[1]) for row in session.execute(stmt))
    return changed


def _consent_rows(
    pairs: list[tuple[int, int]], action: str, detail: str, now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "subscriber_id": subscriber_id,
            "list_id": list_id,
            "action": action,
            "source": "webhook",
            "ip": None,
            "user_agent": None,
            "wording_version": None,
            "detail": detail,
            "at": now,
        }
        for subscriber_id, list_id in pairs
    ]
