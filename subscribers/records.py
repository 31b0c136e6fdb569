"""Consent records: the append-only proof of who agreed to what, when, how and from where."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.db.models import ConsentRecord


def record_consent(
    session: Session,
    *,
    subscriber_id: int | None,
    list_id: int | None,
    action: str,
    source: str,
    at: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
    wording_version: str | None = None,
    detail: str | None = None,
) -> ConsentRecord:
    """Append one record (subscribe, confirm, unsubscribe, expire, suppress, preferences)."""
    record = ConsentRecord(
        subscriber_id=subscriber_id,
        list_id=list_id,
        action=action,
        source=source[:32],
        ip=ip,
        user_agent=user_agent[:500] if user_agent else None,
        wording_version=wording_version,
        detail=detail,
        at=at,
    )
    session.add(record)
    return record
