"""Simulated reader and machine engagement for a demo issue, so statistics have something to show.

Writes ordinary click and open events for the issue's tracked, accepted deliveries: readers
click articles near the top more often, some deliveries get a link scanner's HEAD request on
every link (machine, reason `head`), and with the pixel some fetches come from Apple Mail
Privacy Protection. Seeded, so a run is reproducible; bulk inserts, no per-row round trips.
Never for a real list's issue: these events are invented.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.db.models import (
    ClickEvent,
    Delivery,
    Issue,
    IssueArticle,
    IssueLink,
    MailingList,
    OpenEvent,
    SendBatch,
    delivery_accepted_at,
    delivery_status,
)
from newsletter.errors import StateError
from newsletter.types import DeliveryStatus


@dataclass(frozen=True, slots=True)
class SimulationReport:
    issue_id: int
    recipients: int
    reader_clicks: int
    machine_clicks: int
    opens: int


def _links(session: Session, issue_id: int) -> dict[str, list[tuple[int, int, str, int]]]:
    """Per variant: (link_no, article_id, kind, position); from the issue's tracked links, or,
    before tracked links were rendered, one article link per article numbered by position."""
    found: dict[str, list[tuple[int, int, str, int]]] = {}
    for link in session.scalars(
        select(IssueLink).where(IssueLink.issue_id == issue_id, IssueLink.article_id.is_not(None))
    ):
        found.setdefault(link.variant, []).append(
            (link.link_no, int(link.article_id or 0), link.kind, link.position)
        )
    if found:
        return found
    articles = session.execute(
        select(IssueArticle.article_id, IssueArticle.position).where(
            IssueArticle.issue_id == issue_id
        )
    ).all()
    return {"*": [(position, article_id, "article", position) for article_id, position in articles]}


def simulate_engagement(
    session: Session, issue: Issue, clock: Clock, *, seed: int = 20260613
) -> SimulationReport:
    """Invent a plausible morning of clicks (and opens, if the list uses the pixel)."""
    rng = random.Random(seed)
    deliveries = session.execute(
        select(Delivery.id, Delivery.subscriber_id, Delivery.variant, delivery_accepted_at())
        .outerjoin(SendBatch, SendBatch.id == Delivery.batch_id)
        .where(
            Delivery.issue_id == issue.id,
            delivery_status() == DeliveryStatus.ACCEPTED.value,
            Delivery.tracked.is_(True),
        )
    ).all()
    if not deliveries:
        raise StateError(
            f"issue {issue.id} has no tracked recipients to simulate: turn click tracking on "
            "for its list before the send"
        )
    links = _links(session, issue.id)
    if not links:
        raise StateError(f"issue {issue.id} has no articles to click")
    pixel = bool(session.get_one(MailingList, issue.list_id).open_tracking)
    start = max(clock.now() - timedelta(hours=6), issue.sent_at or issue.built_at)
    clicks: list[dict[str, Any]] = []
    opens: list[dict[str, Any]] = []
    reader = machine = 0
    for delivery_id, subscriber_id, variant, accepted_at in deliveries:
        own = links.get(variant) or links.get("*") or next(iter(links.values()))
        base = {"issue_id": issue.id, "subscriber_id": subscriber_id,
                "delivery_id": delivery_id, "variant": variant}  # fmt: skip
        sent = accepted_at or start
        if rng.random() < 0.15:  # a corporate link scanner checks every link at once
            for link_no, article_id, kind, position in own:
                clicks.append({**base, "link_no": link_no, "article_id": article_id,
                               "kind": kind, "position": position, "machine": True,
                               "reason": "head", "at": sent + timedelta(seconds=3)})  # fmt: skip
                machine += 1
        if pixel:
            source = "apple_mpp" if rng.random() < 0.4 else "reader"
            if source == "apple_mpp" or rng.random() < 0.5:
                opens.append({**base, "source": source,
                              "at": sent + timedelta(minutes=rng.randint(1, 120))})  # fmt: skip
        for link_no, article_id, kind, position in own:
            if rng.random() < 0.35 / position:  # the top of the issue is read most
                at = sent + timedelta(minutes=rng.randint(5, 300))
                for _ in range(1 + (rng.random() < 0.2)):  # some click twice
                    clicks.append({**base, "link_no": link_no, "article_id": article_id,
                                   "kind": kind, "position": position, "machine": False,
                                   "reason": None, "at": at})  # fmt: skip
                    reader += 1
    if clicks:
        session.execute(insert(ClickEvent), clicks)
    if opens:
        session.execute(insert(OpenEvent), opens)
    return SimulationReport(issue.id, len(deliveries), reader, machine, len(opens))
