"""The audit log: every editorial, sending and account action, who did it and what changed.

Written in the same transaction as the change it describes, so the log never claims a
change that was rolled back and never misses one that was committed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.accounts.actors import Actor
from newsletter.clock import Clock
from newsletter.db.models import AuditEntry, Issue


def record(
    session: Session,
    clock: Clock,
    actor: Actor,
    action: str,
    *,
    issue: Issue | None = None,
    list_id: int | None = None,
    issue_date: date | None = None,
    subject: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    if issue is not None:
        list_id = issue.list_id
        issue_date = issue.issue_date
    entry = AuditEntry(
        at=clock.now(),
        actor=actor.name,
        role=actor.role.value,
        action=action,
        issue_id=issue.id if issue is not None else None,
        list_id=list_id,
        issue_date=issue_date,
        subject=subject,
        before=before,
        after=after,
    )
    session.add(entry)
    session.flush()
    return entry


def entries(
    session: Session,
    *,
    issue: Issue | None = None,
    limit: int = 200,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Newest first; an issue's entries include those made for its list and date before it
    was built (pins and notes can precede the build)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if issue is not None:
        query = query.where(
            (AuditEntry.issue_id == issue.id)
            | ((AuditEntry.list_id == issue.list_id) & (AuditEntry.issue_date == issue.issue_date))
        )
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query))


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "issue_id": entry.issue_id,
        "list_id": entry.list_id,
        "issue_date": entry.issue_date.isoformat() if entry.issue_date else None,
        "subject": entry.subject,
        "before": entry.before,
        "after": entry.after,
    }
