"""Rendered variants in the database: rendered once per build, then read by every sender.

The renderer (`newsletter.render`) is pure; this is where an issue's stored articles become
its view, and its rendered variants become rows.

A list that tracks clicks or opens stores each variant twice: the direct form (`tracked`
false) and the tracked form, whose numbered links are stored beside it in `issue_links`.
Everything that is not a send (previews, the desk, the archive, test sends) reads the direct
form: `ensure_variants` returns only that. The forms are decided when the issue is rendered
before its send starts; once it is sending, a change of the list's setting changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import (
    Article,
    Issue,
    IssueArticle,
    IssueLink,
    IssueNote,
    IssueVariant,
    MailingList,
)
from newsletter.db.snapshots import article_to_dict
from newsletter.errors import NotFoundError
from newsletter.render.renderer import render_issue_forms
from newsletter.render.tracking import TrackedLink
from newsletter.render.view import IssueView, issue_view_from_dicts
from newsletter.types import SLOT_TRACKING_TOKEN, VARIANTS, IssueStatus, RenderedVariant

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


Form = tuple[str, bool]  # (variant, tracked)
_PIXEL_MARK = f"/o/{SLOT_TRACKING_TOKEN}.gif"  # the open pixel of a tracked form


def ensure_variants(
    session: Session, issue: Issue, settings: Settings, clock: Clock
) -> dict[str, IssueVariant]:
    """The issue's stored variants in their direct form, rendered (again) only if missing or
    stale: older than the issue's last build, or than the last re-import of one of its
    articles. The tracked forms (and their links) are stored in the same pass.

    Idempotent: a second call with nothing changed renders nothing and returns the same rows;
    two processes racing to store the same issue end with one set of rows. The caller commits.
    """
    stored = _load(session, issue.id)
    clicks, opens = _tracking(session, issue, stored)
    wanted = {(name, False) for name in VARIANTS}
    if clicks or opens:
        wanted |= {(name, True) for name in VARIANTS}
    if (
        set(stored) == wanted
        and all(is_current(row, issue) for row in stored.values())
        and not _articles_changed_since(
            session, issue.id, min(v.rendered_at for v in stored.values())
        )
    ):
        return _direct(stored)
    view = replace(load_issue_view(session, issue.id), click_tracking=clicks, open_tracking=opens)
    forms = render_issue_forms(view, settings)
    for variant in forms.direct.values():
        if variant.trimmed:
            log.warning(
                "issue %s variant %s trimmed to fit Gmail's size limit: %s",
                issue.id,
                variant.variant,
                "; ".join(variant.trimmed),
            )
    log.info(
        "issue %s: rendered variants %s%s",
        issue.id,
        ", ".join(forms.direct),
        f" (and tracked, {len(forms.links)} links)" if forms.tracked else "",
    )
    now = clock.now()
    try:
        with session.begin_nested():
            for name in VARIANTS:
                direct = forms.direct[name]
                stored[name, False] = _save(session, stored.get((name, False)), direct, now)
            for name, rendered in forms.tracked.items():
                stored[name, True] = _save(session, stored.get((name, True)), rendered, now, True)
            for form in [f for f in stored if f not in wanted]:
                session.delete(stored.pop(form))  # the list no longer tracks
            _replace_links(session, issue.id, forms.links)
    except IntegrityError:
        # Another process stored the variants between our read and our insert: same issue,
        # same build, so its rows are as good as ours.
        session.expire_all()
        stored = _load(session, issue.id)
    return _direct(stored)


def _tracking(
    session: Session, issue: Issue, stored: dict[Form, IssueVariant]
) -> tuple[bool, bool]:
    """(click tracking, open tracking) for the issue's forms. Until its send starts, the
    list's setting; once it is sending with stored variants, the forms are frozen: a list
    that started tracking gets no tracked form, one that stopped keeps its tracked form."""
    row = session.execute(
        select(MailingList.click_tracking, MailingList.open_tracking).where(
            MailingList.id == issue.list_id
        )
    ).one_or_none()
    clicks, opens = (bool(row.click_tracking), bool(row.open_tracking)) if row else (False, False)
    if stored and issue.status != IssueStatus.BUILT:
        tracked = [r for (_, is_tracked), r in stored.items() if is_tracked]
        if not tracked:
            return False, False
        opens = _PIXEL_MARK in tracked[0].html
        has_links = session.scalar(
            select(IssueLink.id).where(IssueLink.issue_id == issue.id).limit(1)
        )
        return has_links is not None or not opens, opens
    return clicks, opens


def _direct(stored: dict[Form, IssueVariant]) -> dict[str, IssueVariant]:
    return {variant: row for (variant, tracked), row in stored.items() if not tracked}


def tracked_forms(session: Session, issue_id: int) -> dict[str, IssueVariant]:
    """The issue's stored tracked forms by variant (empty for a list that tracks nothing)."""
    return {variant: row for (variant, tracked), row in _load(session, issue_id).items() if tracked}


def _replace_links(session: Session, issue_id: int, links: tuple[TrackedLink, ...]) -> None:
    """The issue's link registry becomes `links`: a re-render never leaves an old number."""
    session.execute(delete(IssueLink).where(IssueLink.issue_id == issue_id))
    if not links:
        return
    article_ids = dict(
        session.execute(
            select(Article.external_id, Article.id)
            .join(IssueArticle, IssueArticle.article_id == Article.id)
            .where(IssueArticle.issue_id == issue_id)
        ).all()
    )
    session.execute(
        insert(IssueLink),
        [
            {
                "issue_id": issue_id,
                "link_no": link.link_no,
                "variant": link.variant,
                "article_id": article_ids.get(link.article_key),
                "kind": link.kind,
                "position": link.position,
                "url": link.url,
            }
            for link in links
        ],
    )


def drop_variants(session: Session, issue: Issue) -> None:
    """Forget the stored rendering (the editor's note changed): the next read renders again."""
    session.execute(delete(IssueVariant).where(IssueVariant.issue_id == issue.id))
    session.execute(delete(IssueLink).where(IssueLink.issue_id == issue.id))


def _load(session: Session, issue_id: int) -> dict[Form, IssueVariant]:
    rows = session.scalars(select(IssueVariant).where(IssueVariant.issue_id == issue_id))
    return {(row.variant, row.tracked): row for row in rows}


def _save(
    session: Session,
    row: IssueVariant | None,
    rendered: RenderedVariant,
    now: datetime,
    tracked: bool = False,
) -> IssueVariant:
    if row is None:
        row = IssueVariant(issue_id=rendered.issue_id, variant=rendered.variant, tracked=tracked)
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
        click_tracking=bool(mailing_list.click_tracking) if mailing_list else False,
        open_tracking=bool(mailing_list.open_tracking) if mailing_list else False,
    )
