"""Rendered variants in the database: rendered once per build, then read by every sender.

The renderer (`newsletter.render`) is pure; this is where an issue's stored articles become
its view, and its rendered variants become rows.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import (
    Article,
    Issue,
    IssueArticle,
    IssueNote,
    IssueVariant,
    MailingList,
)
from newsletter.db.snapshots import article_to_dict
from newsletter.errors import NotFoundError
from newsletter.render.renderer import render_issue_variants
from newsletter.render.view import IssueView, issue_view_from_dicts
from newsletter.types import VARIANTS, RenderedVariant

log = logging.getLogger(__name__)


def is_current(variant: IssueVariant | None, issue: Issue) -> bool:
    """A stored variant is current when it was rendered at or after the issue's last build."""
    return variant is not None and variant.rendered_at >= issue.built_at


def _articles_changed_since(session: Session, issue_id: int, when: datetime) -> bool:
    """An article of the issue was re-imported after `when` (e.g. between preview and send).

    Checked for snapshotted articles too: a snapshot taken at freeze time holds the newer text,
    so variants rendered before it would not match what the archive shows.
    """
    latest = session.scalar(
        select(func.max(Article.updated_at))
        .join(IssueArticle, IssueArticle.article_id == Article.id)
        .where(IssueArticle.issue_id == issue_id)
    )
    return latest is not None and latest > when


def ensure_variants(
    session: Session, issue: Issue, settings: Settings, clock: Clock
) -> dict[str, IssueVariant]:
    """The issue's three stored variants, rendered (again) only if missing or stale: older than
    the issue's last build, or than the last re-import of one of its articles.

    Idempotent: a second call with nothing changed renders nothing and returns the same rows;
    two processes racing to store the same issue end with one set of rows. The caller commits.
    """
    stored = _load(session, issue.id)
    if all(is_current(stored.get(name), issue) for name in VARIANTS) and not (
        _articles_changed_since(session, issue.id, min(v.rendered_at for v in stored.values()))
    ):
        return stored
    rendered = render_issue_variants(load_issue_view(session, issue.id), settings)
    for variant in rendered.values():
        if variant.trimmed:
            log.warning(
                "issue %s variant %s trimmed to fit Gmail's size limit: %s",
                issue.id,
                variant.variant,
                "; ".join(variant.trimmed),
            )
    log.info("issue %s: rendered variants %s", issue.id, ", ".join(rendered))
    now = clock.now()
    try:
        with session.begin_nested():
            for name in VARIANTS:
                stored[name] = _save(session, stored.get(name), rendered[name], now)
    except IntegrityError:
        # Another process stored the variants between our read and our insert: same issue,
        # same build, so its rows are as good as ours.
        session.expire_all()
        stored = _load(session, issue.id)
    return stored


def drop_variants(session: Session, issue: Issue) -> None:
    """Forget the stored rendering (the editor's note changed): the next read renders again."""
    session.execute(delete(IssueVariant).where(IssueVariant.issue_id == issue.id))


def _load(session: Session, issue_id: int) -> dict[str, IssueVariant]:
    rows = session.scalars(select(IssueVariant).where(IssueVariant.issue_id == issue_id))
    return {row.variant: row for row in rows}


def _save(
    session: Session, row: IssueVariant | None, rendered: RenderedVariant, now: datetime
) -> IssueVariant:
    if row is None:
        row = IssueVariant(issue_id=rendered.issue_id, variant=rendered.variant)
        session.add(row)
    row.subject = rendered.subject
    row.preheader = rendered.preheader
    row.html = rendered.html
    row.text = rendered.text
    row.trimmed = list(rendered.trimmed)
    row.rendered_at = now
    return row


def as_rendered(row: IssueVariant) -> RenderedVariant:
    """A stored row back as the value type the providers and the preview take."""
    return RenderedVariant(
        issue_id=row.issue_id,
        variant=row.variant,
        subject=row.subject,
        preheader=row.preheader,
        html=row.html,
        text=row.text,
        trimmed=tuple(row.trimmed or ()),
    )


def load_issue_view(session: Session, issue_id: int) -> IssueView:
    """The issue's articles in order, frozen snapshots first, live articles otherwise."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFoundError(f"issue {issue_id} does not exist")
    mailing_list = session.get(MailingList, issue.list_id)
    rows = session.execute(
        select(IssueArticle, Article)
        .join(Article, Article.id == IssueArticle.article_id)
        .where(IssueArticle.issue_id == issue_id)
        .order_by(IssueArticle.position)
    ).all()
    dicts = [link.snapshot or article_to_dict(article) for link, article in rows]
    note = session.scalar(
        select(IssueNote).where(
            IssueNote.list_id == issue.list_id, IssueNote.issue_date == issue.issue_date
        )
    )
    return issue_view_from_dicts(
        issue.id,
        issue.issue_date,
        dicts,
        list_slug=mailing_list.slug if mailing_list else "daily",
        list_name=mailing_list.name if mailing_list else "",
        subject_ja=issue.subject_ja,
        subject_en=issue.subject_en,
        utm_params=mailing_list.utm_params if mailing_list else None,
        timezone=mailing_list.timezone if mailing_list else None,
        note_ja=note.note_ja if note else None,
        note_en=note.note_en if note else None,
    )
