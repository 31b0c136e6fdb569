"""The right to be forgotten, and the right to see everything stored about oneself.

`erase` deletes the subscriber row with its subscriptions and every click and open recorded for
them, cuts consent records loose from the person (subscriber id, IP and user agent removed; the
bare fact of consent stays, as the law asks), scrubs address fields from stored provider events,
and leaves only the keyed hash on the suppression list so the address is never mailed again, by
any path, including re-import.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db.models import (
    Article,
    ClickEvent,
    ConsentRecord,
    Delivery,
    Event,
    Issue,
    IssueLink,
    MailingList,
    OpenEvent,
    SendBatch,
    Suppression,
    delivery_accepted_at,
    delivery_status,
)
from newsletter.types import SuppressionReason
from subscribers.hashing import EmailHasher, email_key
from subscribers.records import record_consent
from subscribers.service import find_subscriber, forget_engagement
from subscribers.suppression import suppress

# Keys in provider event payloads that hold an address or other personal detail.
PERSONAL_KEYS = frozenset(
    {"email", "recipient", "to", "from", "ip", "useragent", "user_agent", "name"}
)


def scrub(value: Any) -> Any:
    """A copy of a JSON value without any personal key, at any depth."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k.lower() not in PERSONAL_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def _address_hash(session: Session, email: str) -> str:
    subscriber = find_subscriber(session, email)
    if subscriber is not None:
        return subscriber.email_hash
    return EmailHasher.load(session)(email_key(email))


def erase(session: Session, clock: Clock, *, email: str) -> bool:
    """Forget a person; True if anything about them was stored. The address stays suppressed."""
    now = clock.now()
    email_hash = _address_hash(session, email)
    subscriber = find_subscriber(session, email)
    subscriber_id = subscriber.id if subscriber is not None else None
    found = subscriber is not None
    if subscriber_id is not None:
        if forget_engagement(session, subscriber_id):
            found = True
        session.execute(
            update(ConsentRecord)
            .where(ConsentRecord.subscriber_id == subscriber_id)
            .values(subscriber_id=None, ip=None, user_agent=None)
            .execution_options(synchronize_session="fetch")
        )
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == subscriber_id)
            .values(subscriber_id=None)
            .execution_options(synchronize_session="fetch")
        )
    match = [Event.email_hash == email_hash]
    if subscriber_id is not None:
        match.append(Event.subscriber_id == subscriber_id)
    for event in session.scalars(select(Event).where(or_(*match))):
        event.payload = scrub(event.payload)
        event.subscriber_id = None
        found = True
    if subscriber is not None:
        session.delete(subscriber)
        session.flush()
    suppress(
        session,
        clock,
        email_hash=email_hash,
        reason=SuppressionReason.ERASED,
        source="erasure",
    )
    record_consent(
        session, subscriber_id=None, list_id=None, action="erase", source="admin", at=now
    )
    session.flush()
    return found


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None and hasattr(value, "isoformat") else value


def export_personal_data(session: Session, *, email: str) -> dict[str, Any]:
    """Everything stored about one person, as one JSON-ready document (access request)."""
    subscriber = find_subscriber(session, email)
    email_hash = _address_hash(session, email)
    suppression = session.scalar(select(Suppression).where(Suppression.email_hash == email_hash))
    document: dict[str, Any] = {
        "email": subscriber.email if subscriber else email.strip(),
        "found": subscriber is not None,
        "suppression": (
            {"reason": suppression.reason, "since": _iso(suppression.created_at)}
            if suppression
            else None
        ),
    }
    if subscriber is None:
        return document
    slugs = dict(session.execute(select(MailingList.id, MailingList.slug)).all())
    document["subscriber"] = {
        "name": subscriber.name,
        "language": subscriber.language,
        "attributes": subscriber.attributes,
        "created_at": _iso(subscriber.created_at),
        "updated_at": _iso(subscriber.updated_at),
    }
    document["subscriptions"] = [
        {
            "list": slugs.get(s.list_id),
            "status": s.status,
            "source": s.source,
            "created_at": _iso(s.created_at),
            "confirmed_at": _iso(s.confirmed_at),
            "unsubscribed_at": _iso(s.unsubscribed_at),
        }
        for s in subscriber.subscriptions
    ]
    records = session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.subscriber_id == subscriber.id)
        .order_by(ConsentRecord.at, ConsentRecord.id)
    )
    document["consent"] = [
        {
            "list": slugs.get(r.list_id) if r.list_id else None,
            "action": r.action,
            "source": r.source,
            "at": _iso(r.at),
            "ip": r.ip,
            "user_agent": r.user_agent,
            "wording_version": r.wording_version,
            "detail": r.detail,
        }
        for r in records
    ]
    deliveries = session.execute(
        select(Delivery, delivery_status(), delivery_accepted_at())
        .outerjoin(SendBatch, SendBatch.id == Delivery.batch_id)
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(Delivery.id)
    )
    document["deliveries"] = [
        {
            "issue_id": d.issue_id,
            "variant": d.variant,
            "status": status,
            "accepted_at": _iso(accepted_at),
            "last_event": d.last_event,
            "last_event_at": _iso(d.last_event_at),
        }
        for d, status, accepted_at in deliveries
    ]
    events = session.scalars(
        select(Event)
        .where(or_(Event.subscriber_id == subscriber.id, Event.email_hash == email_hash))
        .order_by(Event.occurred_at, Event.id)
    )
    document["events"] = [
        {
            "provider": e.provider,
            "type": e.type,
            "occurred_at": _iso(e.occurred_at),
            "payload": e.payload,
        }
        for e in events
    ]
    document["clicks"] = _clicks(session, subscriber.id, slugs)
    document["opens"] = [
        {
            "list": slugs.get(r.list_id),
            "issue_date": _iso(r.issue_date),
            "variant": r.variant,
            "at": _iso(r.at),
            "source": r.source,
        }
        for r in session.execute(
            select(
                Issue.list_id, Issue.issue_date, OpenEvent.variant, OpenEvent.at, OpenEvent.source
            )
            .join(Issue, Issue.id == OpenEvent.issue_id)
            .where(OpenEvent.subscriber_id == subscriber.id)
            .order_by(OpenEvent.at, OpenEvent.id)
        )
    ]
    return document


def _clicks(session: Session, subscriber_id: int, slugs: dict[int, str]) -> list[dict[str, Any]]:
    """The person's recorded clicks: which link of which issue, and when (machine requests
    included, marked, since they were recorded against their delivery too)."""
    rows = session.execute(
        select(
            Issue.list_id,
            Issue.issue_date,
            ClickEvent.link_no,
            ClickEvent.kind,
            ClickEvent.position,
            Article.external_id,
            IssueLink.url,
            ClickEvent.at,
            ClickEvent.machine,
            ClickEvent.reason,
        )
        .join(Issue, Issue.id == ClickEvent.issue_id)
        .outerjoin(
            IssueLink,
            (IssueLink.issue_id == ClickEvent.issue_id) & (IssueLink.link_no == ClickEvent.link_no),
        )
        .outerjoin(Article, Article.id == ClickEvent.article_id)
        .where(ClickEvent.subscriber_id == subscriber_id)
        .order_by(ClickEvent.at, ClickEvent.id)
    )
    return [
        {
            "list": slugs.get(r.list_id),
            "issue_date": _iso(r.issue_date),
            "link": r.link_no,
            "kind": r.kind,
            "position": r.position,
            "article": r.external_id,
            "url": r.url,
            "at": _iso(r.at),
            "machine": r.machine,
            "reason": r.reason,
        }
        for r in rows
    ]
