"""Clicks on tracked links and fetches of the open pixel, recorded per delivery.

The redirect target comes only from `issue_links` of the delivery's own issue, and only an
http(s) URL is ever redirected to: the click route cannot be turned into an open redirect,
whatever token or link number it is given. Events are recorded only while the list tracks
(clicks: `click_tracking`, opens: `open_tracking`) and the subscriber has not switched tracking
off; an erased subscriber's delivery has no subscriber and gets no events. An event stores the
delivery, the link and the time, and how it was classified (`classify`), never the IP address
or the user agent it was classified from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.db.models import (
    ClickEvent,
    Delivery,
    Issue,
    IssueLink,
    MailingList,
    OpenEvent,
    SendBatch,
    Subscriber,
    delivery_accepted_at,
)
from newsletter.engagement import classify

REDIRECT_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True, slots=True)
class ClickTarget:
    """A genuine delivery's link: where the click goes, and what a recorded click says."""

    delivery_id: int
    issue_id: int
    subscriber_id: int | None
    variant: str
    accepted_at: datetime | None
    link_no: int
    article_id: int | None
    kind: str
    position: int
    url: str


def is_redirectable(url: str) -> bool:
    """An absolute http(s) URL with a host and nothing a browser would reinterpret.

    Stored links come from the issue's own snapshot, so this only ever refuses a broken
    import; it is the last guard before a `Location` header all the same.
    """
    if not url or len(url) > 2048 or not url.isascii() or not url.isprintable():
        return False
    if any(c in url for c in " \\\"'<>`"):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in REDIRECT_SCHEMES and bool(parts.hostname)


def click_target(session: Session, delivery_id: int, link_no: int) -> ClickTarget | None:
    """The link `link_no` of the delivery's issue; None if either does not exist or the stored
    URL is not one to redirect to."""
    row = session.execute(
        select(
            Delivery.issue_id,
            Delivery.subscriber_id,
            Delivery.variant,
            delivery_accepted_at().label("accepted_at"),
            IssueLink.article_id,
            IssueLink.kind,
            IssueLink.position,
            IssueLink.url,
        )
        .join(
            IssueLink,
            (IssueLink.issue_id == Delivery.issue_id) & (IssueLink.link_no == link_no),
        )
        .outerjoin(SendBatch, SendBatch.id == Delivery.batch_id)
        .where(Delivery.id == delivery_id)
    ).first()
    if row is None or not is_redirectable(row.url):
        return None
    return ClickTarget(
        delivery_id=delivery_id,
        issue_id=row.issue_id,
        subscriber_id=row.subscriber_id,
        variant=row.variant,
        accepted_at=row.accepted_at,
        link_no=link_no,
        article_id=row.article_id,
        kind=row.kind,
        position=row.position,
        url=row.url,
    )


def _tracking_allowed(
    session: Session, issue_id: int, subscriber_id: int | None
) -> tuple[bool, bool]:
    """(clicks, opens) may be recorded for this subscriber on this issue's list, now."""
    if subscriber_id is None:  # erased
        return False, False
    tracking_off = session.scalar(
        select(Subscriber.tracking_off).where(Subscriber.id == subscriber_id)
    )
    if tracking_off is None or tracking_off:
        return False, False
    row = session.execute(
        select(MailingList.click_tracking, MailingList.open_tracking)
        .join(Issue, Issue.list_id == MailingList.id)
        .where(Issue.id == issue_id)
    ).first()
    if row is None:
        return False, False
    return bool(row.click_tracking), bool(row.open_tracking)


def record_click(
    session: Session,
    target: ClickTarget,
    *,
    at: datetime,
    method: str,
    user_agent: str | None,
) -> ClickEvent | None:
    """Store one click, classified; None when nothing may be recorded.

    When this click completes a burst, the earlier clicks of the burst are marked as the
    machine's too (reason `burst`), so a scanner's first links do not count as a reader.
    """
    clicks_allowed, _ = _tracking_allowed(session, target.issue_id, target.subscriber_id)
    if not clicks_allowed:
        return None
    since = at - timedelta(seconds=classify.BURST_SECONDS)
    earlier = [
        classify.EarlierClick(event_id=r.id, at=r.at, link_no=r.link_no)
        for r in session.execute(
            select(ClickEvent.id, ClickEvent.at, ClickEvent.link_no).where(
                ClickEvent.delivery_id == target.delivery_id,
                ClickEvent.at >= since,
                ClickEvent.at <= at,
            )
        )
    ]
    burst = classify.burst_of(at, target.link_no, earlier)
    reason = classify.click_reason(
        method=method,
        user_agent=user_agent,
        at=at,
        accepted_at=target.accepted_at,
        burst=bool(burst),
    )
    event = ClickEvent(
        issue_id=target.issue_id,
        subscriber_id=target.subscriber_id,
        delivery_id=target.delivery_id,
        link_no=target.link_no,
        article_id=target.article_id,
        kind=target.kind,
        variant=target.variant,
        position=target.position,
        at=at,
        machine=reason is not None,
        reason=reason,
    )
    session.add(event)
    if burst:
        session.execute(
            update(ClickEvent)
            .where(
                ClickEvent.id.in_([c.event_id for c in burst]),
                ClickEvent.machine.is_(False),
            )
            .values(machine=True, reason=classify.BURST)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return event


def record_open(
    session: Session,
    delivery_id: int,
    *,
    at: datetime,
    method: str,
    ip: str | None,
    user_agent: str | None,
) -> OpenEvent | None:
    """Store one fetch of the pixel with its source; None when nothing may be recorded (no
    such delivery, the list does not use the pixel, the subscriber switched tracking off)."""
    delivery = session.execute(
        select(
            Delivery.issue_id,
            Delivery.subscriber_id,
            Delivery.variant,
            delivery_accepted_at().label("accepted_at"),
        )
        .outerjoin(SendBatch, SendBatch.id == Delivery.batch_id)
        .where(Delivery.id == delivery_id)
    ).first()
    if delivery is None:
        return None
    _, opens_allowed = _tracking_allowed(session, delivery.issue_id, delivery.subscriber_id)
    if not opens_allowed:
        return None
    event = OpenEvent(
        issue_id=delivery.issue_id,
        subscriber_id=delivery.subscriber_id,
        delivery_id=delivery_id,
        variant=delivery.variant,
        at=at,
        source=classify.open_source(
            method=method, ip=ip, user_agent=user_agent, at=at, accepted_at=delivery.accepted_at
        ),
    )
    session.add(event)
    session.flush()
    return event


def lists_that_track(session: Session) -> list[dict[str, object]]:
    """The lists that record clicks or opens, by name, with what each records (for the
    privacy texts, which must say exactly what is recorded)."""
    return [
        {"name": name, "clicks": bool(clicks), "opens": bool(opens)}
        for name, clicks, opens in session.execute(
            select(MailingList.name, MailingList.click_tracking, MailingList.open_tracking)
            .where(MailingList.click_tracking.is_(True) | MailingList.open_tracking.is_(True))
            .order_by(MailingList.id)
        )
    ]
