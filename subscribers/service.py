"""Subscriber operations an admin, the web app or another part performs one person at a time.

Unsubscribing is per list: the subscription becomes `unsubscribed` and stays as the record of
that choice. No path but the person's own confirmed sign-up (`consent.confirm`) or their
preferences page makes it active again: `add_subscriber` refuses, imports leave it alone, and
`remove` keeps it. "Stop everything" is a global suppression (`subscribers.suppression`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, tuple_
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import (
    ClickEvent,
    ConsentRecord,
    MailingList,
    OpenEvent,
    Subscriber,
    Subscription,
)
from newsletter.errors import NotFoundError, StateError, SuppressedError, ValidationError
from newsletter.types import Preference, SubscriptionStatus, control_character_problem
from newsletter.urls import DEFAULT_LIST_SLUG
from subscribers.addresses import mask_email, normalise_email
from subscribers.hashing import EmailHasher, email_key
from subscribers.lists import get_list, get_or_create_list
from subscribers.records import record_consent
from subscribers.suppression import is_suppressed_hash
from subscribers.tokens import LinkSigner

# Statuses that record a person's (or their mailbox's) "no": never reactivated by an admin.
OPTED_OUT = frozenset(
    {SubscriptionStatus.UNSUBSCRIBED, SubscriptionStatus.BOUNCED, SubscriptionStatus.COMPLAINED}
)


def check_language(language: str) -> str:
    try:
        return Preference(language.strip().lower()).value
    except ValueError:
        raise ValidationError(
            f"language: expected ja, en, both or both-en, got {language!r}"
        ) from None


def resolve_list(session: Session, clock: Clock, slug: str) -> MailingList:
    """The list by slug; the default list is created on first use, others must exist."""
    if slug == DEFAULT_LIST_SLUG:
        return get_or_create_list(session, clock, slug, "AI日報")
    return get_list(session, slug)


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email_key == email_key(email)))


def get_subscriber(session: Session, email: str) -> Subscriber:
    found = find_subscriber(session, email)
    if found is None:
        raise NotFoundError(f"no subscriber {mask_email(email)}")
    return found


def find_subscription(session: Session, subscriber_id: int, list_id: int) -> Subscription | None:
    return session.scalar(
        select(Subscription).where(
            Subscription.subscriber_id == subscriber_id, Subscription.list_id == list_id
        )
    )


NAME_MAX = 200


def check_name(name: str | None) -> str | None:
    """A display name as every path stores it: one line, no control characters (PostgreSQL
    cannot store NUL), at most 200 characters; ValidationError naming the field otherwise."""
    if name is None:
        return None
    problem = control_character_problem(name)
    if problem:
        raise ValidationError(f"name: {problem}")
    if len(name) > NAME_MAX:
        raise ValidationError(f"name: longer than {NAME_MAX} characters")
    return name.strip() or None


def ensure_subscriber(
    session: Session,
    clock: Clock,
    *,
    email: str,
    name: str | None = None,
    language: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Subscriber:
    """The subscriber row for `email` (normalised), created or updated with what is given."""
    normal = normalise_email(email)
    name = check_name(name)
    now = clock.now()
    subscriber = find_subscriber(session, normal)
    if subscriber is None:
        subscriber = Subscriber(
            email=normal,
            email_key=email_key(normal),
            email_hash=EmailHasher.load(session)(normal),
            name=name or None,
            language=check_language(language or "ja"),
            attributes=dict(attributes or {}),
            created_at=now,
            updated_at=now,
        )
        session.add(subscriber)
        session.flush()
        return subscriber
    if name:
        subscriber.name = name
    if language:
        subscriber.language = check_language(language)
    if attributes:
        subscriber.attributes = {**subscriber.attributes, **attributes}
    subscriber.updated_at = now
    return subscriber


def add_subscriber(
    session: Session,
    settings: Settings,
    clock: Clock,
    *,
    email: str,
    name: str | None = None,
    language: str = "ja",
    list_slug: str = DEFAULT_LIST_SLUG,
    source: str = "admin",
    status: str = "active",
    ip: str | None = None,
    wording_version: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Subscription:
    """Subscribe an address to a list (admin or integration), recording consent.

    Refuses suppressed addresses (SuppressedError) and subscriptions the person ended
    (StateError): only they can come back, through a confirmed sign-up.
    """
    if status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING):
        raise ValidationError(f"status: expected active or pending, got {status!r}")
    normal = normalise_email(email)
    check_language(language)
    if is_suppressed_hash(session, EmailHasher.load(session)(normal)):
        raise SuppressedError(f"{mask_email(normal)} is on the suppression list")
    mailing_list = resolve_list(session, clock, list_slug)
    subscriber = ensure_subscriber(
        session, clock, email=normal, name=name, language=language, attributes=attributes
    )
    now = clock.now()
    subscription = find_subscription(session, subscriber.id, mailing_list.id)
    if subscription is not None and subscription.status in OPTED_OUT:
        raise StateError(
            f"{mask_email(normal)} is {subscription.status} on list {list_slug!r}; "
            "only the person can subscribe again (through the sign-up form)"
        )
    if subscription is not None and subscription.status == status:
        return subscription
    if subscription is not None and subscription.status == SubscriptionStatus.ACTIVE:
        return subscription  # asking for "pending" never downgrades an active subscription
    if subscription is None:
        subscription = Subscription(
            subscriber_id=subscriber.id, list_id=mailing_list.id, created_at=now, source=source
        )
        session.add(subscription)
    subscription.status = status
    subscription.updated_at = now
    subscription.unsubscribed_at = None
    if status == SubscriptionStatus.ACTIVE:
        subscription.confirmed_at = now
    session.flush()
    record_consent(
        session,
        subscriber_id=subscriber.id,
        list_id=mailing_list.id,
        action="subscribe" if status == SubscriptionStatus.PENDING else "subscribe_active",
        source=source,
        ip=ip,
        wording_version=wording_version,
        at=now,
    )
    session.flush()
    return subscription


def unsubscribe(
    session: Session,
    clock: Clock,
    *,
    subscriber_id: int,
    list_id: int,
    source: str,
    ip: str | None = None,
) -> bool:
    """End one subscription (idempotent). True if it changed; the consent record says when."""
    subscription = find_subscription(session, subscriber_id, list_id)
    if subscription is None or subscription.status in OPTED_OUT:
        return False
    now = clock.now()
    subscription.status = SubscriptionStatus.UNSUBSCRIBED
    subscription.unsubscribed_at = now
    subscription.updated_at = now
    record_consent(
        session,
        subscriber_id=subscriber_id,
        list_id=list_id,
        action="unsubscribe",
        source=source,
        ip=ip,
        at=now,
    )
    session.flush()
    return True


def unsubscribe_with_token(
    session: Session,
    settings: Settings,
    clock: Clock,
    *,
    token: str,
    source: str = "web",
    ip: str | None = None,
) -> bool:
    """The unsubscribe link (`LinkSigner` token: one subscriber, one list); idempotent.

    TokenError for a forged token. A genuine token whose subscriber was erased or removed
    ends nothing and raises nothing: the link keeps "working" from the reader's point of view.
    """
    claim = LinkSigner(settings).verify(token)
    return unsubscribe(
        session,
        clock,
        subscriber_id=claim.subscriber_id,
        list_id=claim.list_id,
        source=source,
        ip=ip,
    )


def unsubscribe_by_email(
    session: Session,
    clock: Clock,
    *,
    email: str,
    list_slug: str | None = None,
    source: str,
    ip: str | None = None,
) -> int:
    """Unsubscribe an address from one list, or from every list; how many subscriptions ended.

    Unknown addresses end nothing and raise nothing (a mailto unsubscribe must not reveal who
    is subscribed).
    """
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        return 0
    if list_slug is not None:
        list_ids = [get_list(session, list_slug).id]
    else:
        list_ids = [s.list_id for s in subscriber.subscriptions]
    return sum(
        unsubscribe(session, clock, subscriber_id=subscriber.id, list_id=lid, source=source, ip=ip)
        for lid in list_ids
    )


def set_preferences(
    session: Session,
    clock: Clock,
    *,
    subscriber_id: int,
    language: str,
    list_ids: Sequence[int],
    source: str = "web",
    ip: str | None = None,
) -> Subscriber:
    """The preferences page: language, and exactly the lists the person wants.

    The page is reached through a signed link sent to the address, so a list ticked here is
    the person's own choice: it is activated (even after an unsubscribe), unless the address
    is suppressed. Lists left unticked are unsubscribed.
    """
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFoundError(f"no subscriber with id {subscriber_id}")
    now = clock.now()
    subscriber.language = check_language(language)
    subscriber.updated_at = now
    wanted = set(list_ids)
    known_lists = set(session.scalars(select(MailingList.id).where(MailingList.id.in_(wanted))))
    if unknown := wanted - known_lists:
        raise NotFoundError(f"no list with id {sorted(unknown)}")
    current = {s.list_id: s for s in subscriber.subscriptions}
    suppressed = is_suppressed_hash(session, subscriber.email_hash)
    for list_id in sorted(wanted):
        subscription = current.get(list_id)
        if subscription is not None and subscription.status == SubscriptionStatus.ACTIVE:
            continue
        if suppressed:
            raise SuppressedError("this address is on the suppression list and cannot be mailed")
        if subscription is None:
            subscription = Subscription(
                subscriber_id=subscriber.id, list_id=list_id, source=source, created_at=now
            )
            session.add(subscription)
        subscription.status = SubscriptionStatus.ACTIVE
        subscription.confirmed_at = now
        subscription.unsubscribed_at = None
        subscription.updated_at = now
        record_consent(
            session,
            subscriber_id=subscriber.id,
            list_id=list_id,
            action="subscribe_active",
            source=source,
            ip=ip,
            detail="preferences",
            at=now,
        )
    for list_id in set(current) - wanted:
        unsubscribe(
            session, clock, subscriber_id=subscriber.id, list_id=list_id, source=source, ip=ip
        )
    record_consent(
        session,
        subscriber_id=subscriber.id,
        list_id=None,
        action="preferences",
        source=source,
        ip=ip,
        detail=f"language={subscriber.language}",
        at=now,
    )
    session.flush()
    return subscriber


def forget_engagement(session: Session, subscriber_id: int) -> int:
    """Delete every click and open recorded for a subscriber; how many events went.

    Explicit deletes, not the foreign keys' cascade: SQLite enforces those only when asked.
    Per-issue totals already folded from old events hold no subscriber and stay.
    """
    clicks = session.execute(
        delete(ClickEvent)
        .where(ClickEvent.subscriber_id == subscriber_id)
        .execution_options(synchronize_session=False)
    )
    opens = session.execute(
        delete(OpenEvent)
        .where(OpenEvent.subscriber_id == subscriber_id)
        .execution_options(synchronize_session=False)
    )
    return int(clicks.rowcount or 0) + int(opens.rowcount or 0)  # type: ignore[attr-defined]


def set_tracking(
    session: Session,
    clock: Clock,
    *,
    subscriber_id: int,
    allowed: bool | None,
    delete_events: bool = False,
    source: str = "web",
) -> int:
    """The subscriber's choice about engagement tracking; how many recorded events were deleted.

    `allowed=False` (tracking_off) means: from the next issue on, direct links and no pixel,
    and from now on no new events even from emails already sent. What was recorded stays unless
    `delete_events` asks for it to go. None leaves the choice as it is. Recorded as consent.
    """
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFoundError(f"no subscriber with id {subscriber_id}")
    now = clock.now()
    changed = allowed is not None and subscriber.tracking_off == allowed
    if allowed is not None:
        subscriber.tracking_off = not allowed
    deleted = forget_engagement(session, subscriber_id) if delete_events else 0
    if changed:
        subscriber.updated_at = now
        record_consent(
            session,
            subscriber_id=subscriber_id,
            list_id=None,
            action="tracking_on" if allowed else "tracking_off",
            source=source,
            at=now,
        )
    if delete_events:
        record_consent(
            session,
            subscriber_id=subscriber_id,
            list_id=None,
            action="tracking_events_deleted",
            source=source,
            detail=f"events={deleted}",
            at=now,
        )
    session.flush()
    return deleted


def update_subscriber(
    session: Session,
    settings: Settings,
    clock: Clock,
    *,
    email: str,
    name: str | None = None,
    language: str | None = None,
    lists: Sequence[str] | None = None,
    tracking: bool | None = None,
    delete_events: bool = False,
    source: str = "admin",
) -> Subscriber:
    """An admin's change to one subscriber: name, language, the lists they are active on, and
    engagement tracking (on behalf of the person: `set_tracking`).

    `lists` is the whole set wanted: lists missing from it are unsubscribed, new ones are
    added through `add_subscriber`, so a list the person left is refused (StateError) and a
    suppressed address cannot be added anywhere (SuppressedError).
    """
    subscriber = get_subscriber(session, email)
    if language is not None:
        check_language(language)
    ensure_subscriber(session, clock, email=subscriber.email, name=name, language=language)
    if lists is not None:
        wanted = {get_list(session, slug).id: slug for slug in lists}
        active = {
            s.list_id for s in subscriber.subscriptions if s.status == SubscriptionStatus.ACTIVE
        }
        for list_id, slug in sorted(wanted.items()):
            if list_id not in active:
                add_subscriber(
                    session,
                    settings,
                    clock,
                    email=subscriber.email,
                    language=subscriber.language,
                    list_slug=slug,
                    source=source,
                )
        for list_id in sorted(active - set(wanted)):
            unsubscribe(session, clock, subscriber_id=subscriber.id, list_id=list_id, source=source)
    if tracking is not None or delete_events:
        set_tracking(
            session,
            clock,
            subscriber_id=subscriber.id,
            allowed=tracking,
            delete_events=delete_events,
            source=source,
        )
    session.flush()
    session.refresh(subscriber)
    return subscriber


def remove_subscriber(session: Session, *, email: str, list_slug: str | None = None) -> int:
    """Delete subscriptions (one list or all); how many were deleted.

    Opt-out records (unsubscribed, bounced, complained) are kept so a later import cannot
    resubscribe the person; to forget someone entirely use `subscribers.erasure.erase`.
    """
    subscriber = get_subscriber(session, email)
    list_id = get_list(session, list_slug).id if list_slug else None
    removed = 0
    for subscription in list(subscriber.subscriptions):
        if list_id is not None and subscription.list_id != list_id:
            continue
        if subscription.status in OPTED_OUT:
            continue
        subscriber.subscriptions.remove(subscription)
        removed += 1
    if not subscriber.subscriptions:
        session.delete(subscriber)
    session.flush()
    return removed


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def describe(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """One subscriber as a plain dict (for `show` and the JSON output)."""
    slugs = dict(session.execute(select(MailingList.id, MailingList.slug)).all())
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "language": subscriber.language,
        "attributes": subscriber.attributes,
        "created_at": _iso(subscriber.created_at),
        "suppressed": is_suppressed_hash(session, subscriber.email_hash),
        "tracking": not subscriber.tracking_off,
        "subscriptions": [
            {
                "list": slugs.get(s.list_id),
                "status": s.status,
                "source": s.source,
                "created_at": _iso(s.created_at),
                "confirmed_at": _iso(s.confirmed_at),
                "unsubscribed_at": _iso(s.unsubscribed_at),
            }
            for s in sorted(subscriber.subscriptions, key=lambda s: s.list_id)
        ],
    }


def show_subscriber(session: Session, *, email: str) -> dict[str, Any]:
    return describe(session, get_subscriber(session, email))


def subscriptions_query(
    session: Session, *, list_slug: str | None = None, extra: Sequence[Any] = ()
) -> Select[Any]:
    """Every subscription with its subscriber and list, ordered and streamed in pages of 1000.

    The listing and the export both read through it; `extra` columns follow the ones that
    `subscription_row` turns into a dict.
    """
    query = (
        select(
            Subscriber.id,
            Subscriber.email,
            Subscriber.name,
            Subscriber.language,
            MailingList.slug,
            Subscription.status,
            Subscription.source,
            Subscription.created_at,
            Subscription.confirmed_at,
            Subscription.unsubscribed_at,
            *extra,
        )
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .order_by(Subscriber.id, MailingList.slug)
        .execution_options(yield_per=1000)
    )
    if list_slug:
        query = query.where(Subscription.list_id == get_list(session, list_slug).id)
    return query


def subscription_row(row: Sequence[Any]) -> dict[str, Any]:
    """The first columns of a `subscriptions_query` row, by name."""
    return {
        "id": row[0],
        "email": row[1],
        "name": row[2],
        "language": row[3],
        "list": row[4],
        "status": row[5],
        "source": row[6],
        "created_at": _iso(row[7]),
        "confirmed_at": _iso(row[8]),
        "unsubscribed_at": _iso(row[9]),
    }


def iter_subscriptions(
    session: Session, *, list_slug: str | None = None, status: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every subscription (one list, one status), streamed in pages of 1000 rows."""
    query = subscriptions_query(session, list_slug=list_slug)
    if status:
        if status not in set(SubscriptionStatus):
            choices = ", ".join(SubscriptionStatus)
            raise ValidationError(f"status: expected one of {choices}, got {status!r}")
        query = query.where(Subscription.status == status)
    for row in session.execute(query):
        yield subscription_row(row)


def search_subscriptions(
    session: Session,
    *,
    list_slug: str | None = None,
    status: str | None = None,
    contains: str | None = None,
    after: tuple[int, str] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """One page of subscriptions in `subscriptions_query` order, after the (subscriber id,
    list slug) of the previous page's last row: keyset paging, stable under inserts."""
    query = subscriptions_query(session, list_slug=list_slug).limit(limit)
    if status:
        if status not in set(SubscriptionStatus):
            choices = ", ".join(SubscriptionStatus)
            raise ValidationError(f"status: expected one of {choices}, got {status!r}")
        query = query.where(Subscription.status == status)
    if contains:
        needle = contains.strip().lower()
        query = query.where(func.lower(Subscriber.email).contains(needle, autoescape=True))
    if after is not None:
        query = query.where(tuple_(Subscriber.id, MailingList.slug) > tuple_(*after))
    return [subscription_row(row) for row in session.execute(query)]


def subscriber_stats(session: Session, *, list_slug: str | None = None) -> dict[str, Any]:
    """Counts per status, and per language among active subscriptions, for one list or all."""
    by_status = select(Subscription.status, func.count()).group_by(Subscription.status)
    by_language = (
        select(Subscriber.language, func.count())
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(Subscription.status == SubscriptionStatus.ACTIVE)
        .group_by(Subscriber.language)
    )
    if list_slug:
        list_id = get_list(session, list_slug).id
        by_status = by_status.where(Subscription.list_id == list_id)
        by_language = by_language.where(Subscription.list_id == list_id)
    statuses = {s.value: 0 for s in SubscriptionStatus}
    statuses.update(dict(session.execute(by_status).all()))
    languages = {p.value: 0 for p in Preference}
    languages.update(dict(session.execute(by_language).all()))
    return {
        "list": list_slug,
        "total": sum(statuses.values()),
        "status": statuses,
        "active_by_language": languages,
    }


def consent_history(session: Session, subscriber_id: int) -> list[ConsentRecord]:
    return list(
        session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.subscriber_id == subscriber_id)
            .order_by(ConsentRecord.at, ConsentRecord.id)
        )
    )
