"""The global suppression list: addresses never mailed again, by any path, on any list.

Kept as keyed hashes (`EmailHasher`) so it survives erasure. Reasons: bounced, complained,
erased, manual, and unsubscribed for "stop everything" requests (a per-list unsubscribe is
not a suppression; see `subscribers.service.unsubscribe`). Suppressing also moves the person's
live subscriptions to the matching status, so lists and stats tell the truth.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db.models import Subscriber, Subscription, Suppression
from newsletter.errors import ValidationError
from newsletter.types import SubscriptionStatus, SuppressionReason
from subscribers.hashing import EmailHasher
from subscribers.records import record_consent

# What a live (active or pending) subscription becomes when its address is suppressed.
_STATUS_FOR_REASON = {
    SuppressionReason.BOUNCED: SubscriptionStatus.BOUNCED,
    SuppressionReason.COMPLAINED: SubscriptionStatus.COMPLAINED,
    SuppressionReason.UNSUBSCRIBED: SubscriptionStatus.UNSUBSCRIBED,
    SuppressionReason.ERASED: SubscriptionStatus.UNSUBSCRIBED,
    SuppressionReason.MANUAL: SubscriptionStatus.UNSUBSCRIBED,
}
_LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)


def suppress(
    session: Session,
    clock: Clock,
    *,
    email: str | None = None,
    email_hash: str | None = None,
    reason: str,
    source: str,
) -> bool:
    """Suppress an address (given in clear or as its hash). True if it was not suppressed yet."""
    try:
        why = SuppressionReason(reason)
    except ValueError:
        choices = ", ".join(r.value for r in SuppressionReason)
        message = f"suppression reason: expected one of {choices}, got {reason!r}"
        raise ValidationError(message) from None
    if email_hash is None:
        if email is None:
            raise ValidationError("suppress: give an email address or its hash")
        email_hash = EmailHasher.load(session)(email)
    now = clock.now()
    existing = session.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash))
    added = existing is None
    if added:
        try:  # two requests suppressing the same address at once: the second finds it there
            with session.begin_nested():
                session.add(
                    Suppression(email_hash=email_hash, reason=why, source=source, created_at=now)
                )
        except IntegrityError:
            added = False
    for subscriber_id, list_id in session.execute(
        select(Subscription.subscriber_id, Subscription.list_id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscriber.email_hash == email_hash, Subscription.status.in_(_LIVE))
    ).all():
        record_consent(
            session,
            subscriber_id=subscriber_id,
            list_id=list_id,
            action="suppress",
            source=source,
            at=now,
            detail=str(why),
        )
    subscriber_ids = select(Subscriber.id).where(Subscriber.email_hash == email_hash)
    session.execute(
        update(Subscription)
        .where(Subscription.subscriber_id.in_(subscriber_ids), Subscription.status.in_(_LIVE))
        .values(
            status=_STATUS_FOR_REASON[why],
            updated_at=now,
            unsubscribed_at=now if _STATUS_FOR_REASON[why] == "unsubscribed" else None,
        )
        .execution_options(synchronize_session="fetch")
    )
    session.flush()
    return added


def is_suppressed(session: Session, email: str) -> bool:
    return is_suppressed_hash(session, EmailHasher.load(session)(email))


def is_suppressed_hash(session: Session, email_hash: str) -> bool:
    found = session.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash))
    return found is not None


def suppressed_among(session: Session, hashes: Iterable[str]) -> set[str]:
    """Which of these hashes are suppressed (one query; callers chunk to a few thousand)."""
    wanted = list(hashes)
    if not wanted:
        return set()
    return set(
        session.scalars(select(Suppression.email_hash).where(Suppression.email_hash.in_(wanted)))
    )


def unsuppress(session: Session, *, email: str) -> bool:
    """Lift a manual suppression (an admin's mistake). Bounces, complaints, erasures stay."""
    email_hash = EmailHasher.load(session)(email)
    row = session.scalar(select(Suppression).where(Suppression.email_hash == email_hash))
    if row is None:
        return False
    if row.reason != SuppressionReason.MANUAL:
        raise ValidationError(
            f"this address is suppressed for {row.reason!r}, which cannot be lifted"
        )
    session.delete(row)
    session.flush()
    return True
