"""The issue's stored variants as provider-ready messages: built once per send, shared by
every batch and recipient (only the slots differ per recipient)."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db.models import IssueVariant, MailingList, SubjectTest
from newsletter.delivery import ledger
from newsletter.errors import RenderError
from newsletter.providers.base import PreparedMessage
from newsletter.types import VARIANTS

MessageForm = tuple[str, bool]  # (variant, tracked)


def prepare_messages(
    session: Session, settings: Settings, issue_id: int
) -> dict[MessageForm, PreparedMessage]:
    """The issue's stored variants as provider-ready messages, built once per send, keyed by
    variant and form (tracked links or direct ones)."""
    issue = ledger.get_issue_row(session, issue_id)
    mailing_list = session.get(MailingList, issue.list_id)
    host = urlsplit(settings.base_url).hostname or "localhost"
    list_header = (
        f"{mailing_list.name} <{mailing_list.slug}.{host}>" if mailing_list is not None else None
    )
    sender = settings.from_address
    out: dict[MessageForm, PreparedMessage] = {}
    for row in session.scalars(select(IssueVariant).where(IssueVariant.issue_id == issue_id)):
        if row.variant not in VARIANTS:
            continue
        out[row.variant, row.tracked] = PreparedMessage(
            issue_id=issue_id,
            variant=row.variant,
            subject=row.subject,
            html=row.html,
            text=row.text,
            from_name=sender.display_name,
            from_email=sender.addr_spec,
            reply_to=settings.reply_to,
            list_id=list_header,
            categories=("newsletter", f"issue-{issue_id}", row.variant),
            tracked=row.tracked,
        )
    return out


def arm_subject(session: Session, issue_id: int, variant: str, arm: int) -> str:
    """The subject of a subject-line test's arm for one variant, as the test stored it."""
    subjects = session.scalar(select(SubjectTest.subjects).where(SubjectTest.issue_id == issue_id))
    try:
        return str(subjects["variants"][variant][arm])  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        raise RenderError(
            f"issue {issue_id} has no subject-line test with an arm {arm} for {variant!r}"
        ) from None


# --- entry points ---------------------------------------------------------------------------
