"""Double opt-in: sign-up, confirmation, and the expiry of sign-ups never confirmed.

`start_signup` answers the same way whatever the address's state (no enumeration): a new or
lapsed address gets a confirmation email, an active one gets nothing, a suppressed one gets
nothing. Nothing about an existing subscriber (name, language) changes until they confirm or
use their preferences page: a stranger can type any address into the form.

A person who unsubscribed may sign up again; their subscription stays `unsubscribed` (and
unmailed) until they click the new confirmation link, even on a single opt-in list.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import ConsentRecord, MailingList, Subscriber, Subscription
from newsletter.errors import SuppressedError, TokenError
from newsletter.providers.base import Provider
from newsletter.types import SubscriptionStatus
from newsletter.urls import DEFAULT_LIST_SLUG, confirm_url
from subscribers.addresses import normalise_email
from subscribers.hashing import EmailHasher
from subscribers.mailer import confirm_expiry, send_confirmation
from subscribers.records import record_consent
from subscribers.service import (
    OPTED_OUT,
    check_language,
    ensure_subscriber,
    find_subscriber,
    find_subscription,
    resolve_list,
)
from subscribers.suppression import is_suppressed_hash
from subscribers.tokens import CONFIRM_MAX_AGE_S, ConfirmSigner

# Consent actions that decide whether the latest word on a subscription was "yes, please".
_DECISIVE = ("subscribe", "subscribe_active", "confirm", "unsubscribe", "suppress")


def start_signup(
    session: Session,
    settings: Settings,
    clock: Clock,
    *,
    email: str,
    name: str | None,
    language: str,
    list_slug: str = DEFAULT_LIST_SLUG,
    ip: str | None,
    user_agent: str | None,
    wording_version: str | None,
    provider: Provider,
    source: str = "web",
) -> None:
    """The sign-up form: create or refresh a pending subscription and mail the confirmation.

    `source` is recorded with the consent (`web` for the form, `admin` for
    `newsletter subscribers add --send-confirmation`).
    """
    normal = normalise_email(email)
    language = check_language(language)
    mailing_list = resolve_list(session, clock, list_slug)
    if is_suppressed_hash(session, EmailHasher.load(session)(normal)):
        return
    now = clock.now()
    subscriber = find_subscriber(session, normal)
    if subscriber is None:
        subscriber = ensure_subscriber(session, clock, email=normal, name=name, language=language)
    subscription = find_subscription(session, subscriber.id, mailing_list.id)
    if subscription is not None and subscription.status == SubscriptionStatus.ACTIVE:
        return
    opted_out = subscription is not None and subscription.status in OPTED_OUT
    if not mailing_list.double_opt_in and not opted_out:
        _activate_without_confirmation(session, clock, subscriber, mailing_list, subscription)
        record_consent(
            session,
            subscriber_id=subscriber.id,
            list_id=mailing_list.id,
            action="subscribe_active",
            source=source,
            ip=ip,
            user_agent=user_agent,
            wording_version=wording_version,
            at=now,
            detail="single opt-in list",
        )
        session.flush()
        return
    if subscription is None:
        subscription = Subscription(
            subscriber_id=subscriber.id,
            list_id=mailing_list.id,
            status=SubscriptionStatus.PENDING,
            source=source,
            created_at=now,
            updated_at=now,
        )
        session.add(subscription)
    elif subscription.status not in OPTED_OUT:  # pending again, or expired: a fresh request
        subscription.status = SubscriptionStatus.PENDING
        subscription.updated_at = now
    session.flush()
    record_consent(
        session,
        subscriber_id=subscriber.id,
        list_id=mailing_list.id,
        action="subscribe",
        source=source,
        ip=ip,
        user_agent=user_agent,
        wording_version=wording_version,
        at=now,
    )
    session.flush()
    token = ConfirmSigner(settings).token(subscription.id)
    send_confirmation(
        provider,
        settings,
        subscriber_id=subscriber.id,
        email=subscriber.email,
        language=subscriber.language,
        name=subscriber.name,
        list_name=mailing_list.name,
        confirm_url=confirm_url(settings.base_url, token),
        expires_at=confirm_expiry(now, CONFIRM_MAX_AGE_S),
    )


def _activate_without_confirmation(
    session: Session,
    clock: Clock,
    subscriber: Subscriber,
    mailing_list: MailingList,
    subscription: Subscription | None,
) -> None:
    now = clock.now()
    if subscription is None:
        subscription = Subscription(
            subscriber_id=subscriber.id, list_id=mailing_list.id, source="web", created_at=now
        )
        session.add(subscription)
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.confirmed_at = now
    subscription.unsubscribed_at = None
    subscription.updated_at = now


def _latest_decision(session: Session, subscription: Subscription) -> ConsentRecord | None:
    return session.scalar(
        select(ConsentRecord)
        .where(
            ConsentRecord.subscriber_id == subscription.subscriber_id,
            ConsentRecord.list_id == subscription.list_id,
            ConsentRecord.action.in_(_DECISIVE),
        )
        .order_by(ConsentRecord.at.desc(), ConsentRecord.id.desc())
        .limit(1)
    )


def confirm(
    session: Session,
    settings: Settings,
    clock: Clock,
    *,
    token: str,
    ip: str | None,
    user_agent: str | None,
) -> Subscription:
    """The confirmation link: activate the subscription and record the consent (idempotent).

    TokenError for a forged, expired or outdated link; SuppressedError if the address was
    suppressed since it signed up.
    """
    subscription_id = ConfirmSigner(settings).verify(token)
    subscription = session.get(Subscription, subscription_id)
    if subscription is None:
        raise TokenError("this link is not valid")
    if subscription.status == SubscriptionStatus.ACTIVE:
        return subscription
    if is_suppressed_hash(session, subscription.subscriber.email_hash):
        raise SuppressedError("this address can no longer be subscribed")
    decision = _latest_decision(session, subscription)
    if decision is None or decision.action != "subscribe":
        # The person (or a bounce) said "no" after this link was sent: it no longer counts.
        raise TokenError("this confirmation link is no longer valid; please sign up again")
    now = clock.now()
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.confirmed_at = now
    subscription.unsubscribed_at = None
    subscription.updated_at = now
    record_consent(
        session,
        subscriber_id=subscription.subscriber_id,
        list_id=subscription.list_id,
        action="confirm",
        source="web",
        ip=ip,
        user_agent=user_agent,
        wording_version=decision.wording_version,
        at=now,
    )
    session.flush()
    return subscription


def expire_pending(session: Session, clock: Clock, *, older_than: timedelta) -> int:
    """Pending subscriptions not confirmed for `older_than` become `expired`; how many."""
    now = clock.now()
    cutoff = now - older_than
    stale = session.execute(
        select(Subscription.id, Subscription.subscriber_id, Subscription.list_id).where(
            Subscription.status == SubscriptionStatus.PENDING, Subscription.updated_at < cutoff
        )
    ).all()
    if not stale:
        return 0
    ids = [row[0] for row in stale]
    for start in range(0, len(ids), 1000):
        session.execute(
            update(Subscription)
            .where(Subscription.id.in_(ids[start : start + 1000]))
            .values(status=SubscriptionStatus.EXPIRED, updated_at=now)
            .execution_options(synchronize_session="fetch")
        )
    session.execute(
        insert(ConsentRecord),
        [
            {
                "subscriber_id": subscriber_id,
                "list_id": list_id,
                "action": "expire",
                "source": "admin",
                "detail": f"not confirmed within {older_than}",
                "at": now,
            }
            for _, subscriber_id, list_id in stale
        ],
    )
    session.flush()
    return len(stale)


def resend_confirmations(
    session: Session,
    settings: Settings,
    clock: Clock,
    *,
    list_slug: str,
    provider: Provider,
    limit: int | None = None,
) -> int:
    """Send a confirmation email to every pending subscription of a list; how many were sent.

    For re-permission after an import with `--status pending`: each person gets the same
    email as a web sign-up and becomes active only by clicking it. Suppressed addresses get
    nothing. Each send is recorded (`subscribe`, source `repermission`) so the link counts.
    """
    mailing_list = resolve_list(session, clock, list_slug)
    signer = ConfirmSigner(settings)
    now = clock.now()
    query = (
        select(Subscription, Subscriber)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            Subscription.list_id == mailing_list.id,
            Subscription.status == SubscriptionStatus.PENDING,
        )
        .order_by(Subscription.id)
    )
    if limit is not None:
        query = query.limit(limit)
    sent = 0
    for subscription, subscriber in session.execute(query).all():
        if is_suppressed_hash(session, subscriber.email_hash):
            continue
        subscription.updated_at = now  # the new link restarts the expiry clock
        record_consent(
            session,
            subscriber_id=subscriber.id,
            list_id=mailing_list.id,
            action="subscribe",
            source="repermission",
            at=now,
        )
        send_confirmation(
            provider,
            settings,
            subscriber_id=subscriber.id,
            email=subscriber.email,
            language=subscriber.language,
            name=subscriber.name,
            list_name=mailing_list.name,
            confirm_url=confirm_url(settings.base_url, signer.token(subscription.id)),
            expires_at=confirm_expiry(now, CONFIRM_MAX_AGE_S),
        )
        sent += 1
    session.flush()
    return sent


def purge_expired(session: Session, clock: Clock, *, older_than: timedelta) -> int:
    """Delete sign-ups that expired more than `older_than` ago (data minimisation).

    A subscriber left with no subscription at all is deleted too; their consent records stay,
    cut loose from them (subscriber id NULL). Returns how many subscriptions were deleted.
    """
    cutoff = clock.now() - older_than
    stale = session.execute(
        select(Subscription.id, Subscription.subscriber_id).where(
            Subscription.status == SubscriptionStatus.EXPIRED, Subscription.updated_at < cutoff
        )
    ).all()
    if not stale:
        return 0
    subscriber_ids = sorted({row[1] for row in stale})
    for start in range(0, len(stale), 1000):
        ids = [row[0] for row in stale[start : start + 1000]]
        session.execute(
            delete(Subscription)
            .where(Subscription.id.in_(ids))
            .execution_options(synchronize_session="fetch")
        )
    for start in range(0, len(subscriber_ids), 1000):
        chunk = subscriber_ids[start : start + 1000]
        orphans = select(Subscriber.id).where(
            Subscriber.id.in_(chunk),
            ~select(Subscription.id).where(Subscription.subscriber_id == Subscriber.id).exists(),
        )
        orphan_ids = list(session.scalars(orphans))
        if orphan_ids:
            session.execute(
                update(ConsentRecord)
                .where(ConsentRecord.subscriber_id.in_(orphan_ids))
                .values(subscriber_id=None, ip=None, user_agent=None)
                .execution_options(synchronize_session="fetch")
            )
            session.execute(
                delete(Subscriber)
                .where(Subscriber.id.in_(orphan_ids))
                .execution_options(synchronize_session="fetch")
            )
    session.flush()
    return len(stale)
