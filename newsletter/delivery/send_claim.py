"""The issue-level send claim: which process sends an issue right now.

A row in `send_claims` per issue, claimed atomically (insert, or take over an expired or
released claim; the database lets one caller win) and renewed from a background thread while
the send runs, so a crashed sender's claim expires and the next run takes over. The batches
themselves have leases of their own (`ledger.claim_batch`); this claim only keeps two daily
runs (two schedulers, a scheduler and `newsletter run`) from driving the same send at once.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db.models import SendClaim
from newsletter.db.session import transaction

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=5)  # a silent owner loses the send after this long
CLAIM_RENEW_SECONDS = 60.0


def claim_send(
    sessions: sessionmaker[Session], issue_id: int, owner: str, now: datetime
) -> str | None:
    """Claim the right to send `issue_id`. None if won, else the current owner's name.

    Each step is its own short transaction so the row lock is never held across the send.
    """
    until = now + CLAIM_LEASE
    try:
        with transaction(sessions) as session:
            session.add(
                SendClaim(issue_id=issue_id, owner=owner, claimed_at=now, lease_until=until)
            )
        return None
    except IntegrityError:
        pass
    with transaction(sessions) as session:
        taken = session.execute(
            update(SendClaim)
            .where(
                SendClaim.issue_id == issue_id,
                or_(
                    SendClaim.owner == owner,
                    SendClaim.released_at.is_not(None),
                    SendClaim.lease_until < now,
                ),
            )
            .values(owner=owner, claimed_at=now, lease_until=until, released_at=None)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return None
        holder = session.scalar(select(SendClaim.owner).where(SendClaim.issue_id == issue_id))
    return holder or "another process"


def renew_send_claim(
    sessions: sessionmaker[Session], issue_id: int, owner: str, now: datetime
) -> bool:
    with transaction(sessions) as session:
        result = session.execute(
            update(SendClaim)
            .where(SendClaim.issue_id == issue_id, SendClaim.owner == owner)
            .values(lease_until=now + CLAIM_LEASE)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]


def release_send_claim(
    sessions: sessionmaker[Session], issue_id: int, owner: str, now: datetime
) -> None:
    with transaction(sessions) as session:
        session.execute(
            update(SendClaim)
            .where(SendClaim.issue_id == issue_id, SendClaim.owner == owner)
            .values(released_at=now, lease_until=now)
        )


class ClaimKeeper:
    """Renews a claim from a background thread while the (long) send runs."""

    def __init__(self, runtime: Any, issue_id: int, owner: str) -> None:
        self._runtime = runtime  # a Runtime: its sessions and clock
        self._issue_id = issue_id
        self._owner = owner
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="claim-keeper", daemon=True)

    def __enter__(self) -> ClaimKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        release_send_claim(
            self._runtime.sessions, self._issue_id, self._owner, self._runtime.clock.now()
        )

    def _loop(self) -> None:
        while not self._done.wait(CLAIM_RENEW_SECONDS):
            try:
                renew_send_claim(
                    self._runtime.sessions, self._issue_id, self._owner, self._runtime.clock.now()
                )
            except Exception:  # a failed renewal is retried; the lease covers several periods
                log.warning("could not renew the send claim", exc_info=True)
