"""The editor's decisions with who made them: selection, note, approval.

Every entry point (desk, HTTP API, command line) changes an issue through these functions, so
each change is checked against the actor's role, applied to the built issue at once, withdraws
an approval given to what the issue was before, and lands in the audit log in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.accounts import audit
from newsletter.accounts.actors import Actor
from newsletter.accounts.roles import Permission
from newsletter.articles.selection import Decision, Selection
from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import Article, Issue, IssueNote, MailingList
from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.issues.assembly import BuildResult, rebuild_if_built, select_for
from newsletter.issues.overrides import EXCLUDE, PIN, clear_override, set_order, set_override
from newsletter.issues.variants import drop_variants
from newsletter.types import IssueStatus, control_character_problem

NOTE_MAX_CHARS = 2000


@dataclass(frozen=True, slots=True)
class EditorNote:
    ja: str | None
    en: str | None
    updated_by: str
    updated_at: datetime

    def for_language(self, language: str) -> str | None:
        return self.en if language == "en" else self.ja


def _find_issue(session: Session, list_id: int, issue_date: date) -> Issue | None:
    return session.scalar(
        select(Issue).where(Issue.list_id == list_id, Issue.issue_date == issue_date)
    )


def _withdraw(issue: Issue | None) -> dict[str, Any] | None:
    """Clear an approval; returns what it was, for the audit entry."""
    if issue is None or issue.approved_at is None:
        return None
    was = {"approved_by": issue.approved_by, "approved_at": issue.approved_at.isoformat()}
    issue.approved_by = None
    issue.approved_at = None
    return was


def _selection_change(
    session: Session,
    settings: Settings,
    clock: Clock,
    actor: Actor,
    mailing_list: MailingList,
    issue_date: date,
    action: str,
    subject: str,
    apply: Any,
) -> BuildResult | None:
    actor.require(Permission.EDIT)
    issue = _find_issue(session, mailing_list.id, issue_date)
    before = _article_ids(issue)
    withdrawn = _withdraw(issue)  # a rebuild clears it too; read it first for the log
    apply()
    result = rebuild_if_built(session, settings, clock, mailing_list, issue_date)
    issue = result.issue if result is not None else issue
    audit.record(
        session,
        clock,
        actor,
        action,
        issue=issue,
        list_id=mailing_list.id,
        issue_date=issue_date,
        subject=subject,
        before={"articles": before, **({"approval": withdrawn} if withdrawn else {})},
        after={"articles": _article_ids(issue)},
    )
    return result


def _article_ids(issue: Issue | None) -> list[str] | None:
    if issue is None:
        return None
    session = Session.object_session(issue)
    if session is not None:
        session.expire(issue, ["articles"])
    return [item.article.external_id for item in issue.articles]


def _article(session: Session, article_id: int) -> Article:
    article = session.get(Article, article_id)
    if article is None:
        raise NotFoundError(f"article {article_id} not found")
    return article


OneArticleChange = Callable[
    [Session, Settings, Clock, Actor, MailingList, date, int], BuildResult | None
]


def _one_article_change(action: str | None, name: str, doc: str) -> OneArticleChange:
    """pin / exclude (an override `action`) or restore (`None`: forget the decision)."""

    def change(
        session: Session,
        settings: Settings,
        clock: Clock,
        actor: Actor,
        mailing_list: MailingList,
        issue_date: date,
        article_id: int,
    ) -> BuildResult | None:
        article = _article(session, article_id)

        def apply() -> None:
            if action is None:
                clear_override(session, mailing_list, issue_date, article_id)
            else:
                set_override(session, clock, mailing_list, issue_date, article_id, action)

        return _selection_change(
            session, settings, clock, actor, mailing_list, issue_date, f"issue.{name}",
            article.external_id, apply,
        )  # fmt: skip

    change.__name__ = change.__qualname__ = name
    change.__doc__ = doc
    return change


pin = _one_article_change(PIN, "pin", "Always include the article, first among later pins.")
exclude = _one_article_change(EXCLUDE, "exclude", "Keep the article out of the issue.")
restore = _one_article_change(
    None, "restore", "Forget the pin, exclusion or position: the selection decides again."
)


def reorder(
    session: Session,
    settings: Settings,
    clock: Clock,
    actor: Actor,
    mailing_list: MailingList,
    issue_date: date,
    article_ids: Sequence[int],
) -> BuildResult | None:
    """Put these articles first, in this order (after pinned ones)."""
    if not article_ids:
        raise ValidationError("reorder: give at least one article")
    names = [_article(session, a).external_id for a in article_ids]
    return _selection_change(
        session, settings, clock, actor, mailing_list, issue_date, "issue.reorder",
        ", ".join(names),
        lambda: set_order(session, clock, mailing_list, issue_date, article_ids),
    )  # fmt: skip


# --- the editor's note ----------------------------------------------------------------------


def clean_note(text: str | None, field: str) -> str | None:
    """Plain text: trimmed, newlines kept, other control characters refused, bounded length."""
    if text is None:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return None
    if (problem := control_character_problem(text, multiline=True)) is not None:
        raise ValidationError(f"{field}: {problem}")
    if len(text) > NOTE_MAX_CHARS:
        raise ValidationError(
            f"{field}: {len(text)} characters; a note has at most {NOTE_MAX_CHARS}"
        )
    return text


def get_note(session: Session, list_id: int, issue_date: date) -> EditorNote | None:
    row = session.scalar(
        select(IssueNote).where(IssueNote.list_id == list_id, IssueNote.issue_date == issue_date)
    )
    if row is None:
        return None
    return EditorNote(row.note_ja, row.note_en, row.updated_by, row.updated_at)


def set_note(
    session: Session,
    clock: Clock,
    actor: Actor,
    mailing_list: MailingList,
    issue_date: date,
    *,
    ja: str | None,
    en: str | None,
) -> EditorNote | None:
    """Write (or, with both empty, remove) the note shown at the top of the email and page."""
    actor.require(Permission.EDIT)
    ja, en = clean_note(ja, "note_ja"), clean_note(en, "note_en")
    issue = _find_issue(session, mailing_list.id, issue_date)
    if issue is not None and issue.status != IssueStatus.BUILT:
        raise StateError(
            f"issue {mailing_list.slug}:{issue_date.isoformat()} is {issue.status}: "
            "its note can no longer change"
        )
    row = session.scalar(
        select(IssueNote).where(
            IssueNote.list_id == mailing_list.id, IssueNote.issue_date == issue_date
        )
    )
    before = None if row is None else {"ja": row.note_ja, "en": row.note_en}
    if before == {"ja": ja, "en": en} or (row is None and ja is None and en is None):
        return get_note(session, mailing_list.id, issue_date)
    now = clock.now()
    if ja is None and en is None:
        session.execute(delete(IssueNote).where(IssueNote.id == row.id))  # type: ignore[union-attr]
    else:
        if row is None:
            row = IssueNote(list_id=mailing_list.id, issue_date=issue_date)
            session.add(row)
        row.note_ja, row.note_en = ja, en
        row.updated_by, row.updated_at = actor.name, now
    if issue is not None:
        drop_variants(session, issue)  # the note is part of the rendered email
    withdrawn = _withdraw(issue)
    audit.record(
        session,
        clock,
        actor,
        "issue.note",
        issue=issue,
        list_id=mailing_list.id,
        issue_date=issue_date,
        before={**(before or {}), **({"approval": withdrawn} if withdrawn else {})} or None,
        after={"ja": ja, "en": en},
    )
    session.flush()
    return get_note(session, mailing_list.id, issue_date)


# --- approval -------------------------------------------------------------------------------


def approval(issue: Issue) -> tuple[str, datetime] | None:
    if issue.approved_by is None or issue.approved_at is None:
        return None
    return issue.approved_by, issue.approved_at


def approve(session: Session, clock: Clock, actor: Actor, issue: Issue) -> None:
    """Record who approved this build; any later change to it withdraws the approval."""
    actor.require(Permission.EDIT)
    label = f"{issue.mailing_list.slug}:{issue.issue_date.isoformat()}"
    if issue.status != IssueStatus.BUILT:
        raise StateError(f"issue {label} is {issue.status}: only a built issue can be approved")
    if not issue.articles:
        raise StateError(f"issue {label} has no articles: there is nothing to approve")
    before = None
    if issue.approved_at is not None:
        before = {"approved_by": issue.approved_by, "approved_at": issue.approved_at.isoformat()}
    issue.approved_by = actor.name
    issue.approved_at = clock.now()
    audit.record(
        session,
        clock,
        actor,
        "issue.approve",
        issue=issue,
        before=before,
        after={
            "approved_by": actor.name,
            "approved_at": issue.approved_at.isoformat(),
            "articles": [item.article.external_id for item in issue.articles],
        },
    )


def withdraw_approval(session: Session, clock: Clock, actor: Actor, issue: Issue) -> bool:
    actor.require(Permission.EDIT)
    withdrawn = _withdraw(issue)
    if withdrawn is None:
        return False
    audit.record(session, clock, actor, "issue.unapprove", issue=issue, before=withdrawn)
    return True


# --- what the selection sees ----------------------------------------------------------------


def candidates(
    session: Session, settings: Settings, mailing_list: MailingList, issue_date: date
) -> Selection:
    """Every candidate with the selection's reason (in window, importance, already sent,
    pinned, excluded): what the desk and `issue show` explain. No writes."""
    return select_for(session, settings, mailing_list, issue_date)


def decision_dict(decision: Decision) -> dict[str, Any]:
    return {
        "article_id": decision.article_id,
        "id": decision.external_id,
        "selected": decision.selected,
        "position": decision.position,
        "pinned": decision.pinned,
        "reason": decision.reason,
    }
