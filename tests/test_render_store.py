"""Stored variants: rendered once per build, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import Article, ArticleContent, Issue, IssueVariant
from newsletter.errors import NotFoundError
from newsletter.issues import variants as store
from newsletter.issues.variants import as_rendered, ensure_variants, load_issue_view
from newsletter.render.renderer import IssueForms
from newsletter.render.view import IssueView
from tests.fixtures.render import make_article, store_issue


def test_issue_view_reads_articles_in_issue_order(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = store_issue(session, [make_article(2), make_article(1)], built_at=clock.now())
        view = load_issue_view(session, issue.id)
    assert [a.key for a in view.articles] == ["article-2", "article-1"]
    assert view.list_slug == "daily" and view.list_name == "AI日報 朝刊"
    assert view.articles[0].contents["ja"].key_points[0].heading == "ポイント1"


def test_a_frozen_snapshot_wins_over_the_live_article(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = store_issue(session, [make_article(1)], built_at=clock.now(), snapshot=True)
        content = session.scalar(select(ArticleContent).where(ArticleContent.language == "ja"))
        content.title = "差し替え後のタイトル"
        session.flush()
        view = load_issue_view(session, issue.id)
    assert view.articles[0].contents["ja"].title == "記事1: 新しいAI評価指標が登場"


def test_ensure_variants_stores_all_four(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = store_issue(session, [make_article(1), make_article(2)], built_at=clock.now())
        stored = ensure_variants(session, issue, settings, clock)
    assert sorted(stored) == ["both", "both-en", "en", "ja"]
    with sessions() as session:
        rows = session.scalars(select(IssueVariant).order_by(IssueVariant.variant)).all()
        assert [r.variant for r in rows] == ["both", "both-en", "en", "ja"]
        assert rows[3].subject.startswith("AI日報 2026年6月13日")
        assert "<html" in rows[3].html and rows[3].text
        assert as_rendered(rows[3]).variant == "ja"


def test_ensure_variants_is_idempotent(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = store_issue(session, [make_article(1)], built_at=clock.now())
        first = {
            k: v.rendered_at for k, v in ensure_variants(session, issue, settings, clock).items()
        }
    clock.advance(minutes=5)
    with sessions.begin() as session:
        issue = session.get(Issue, issue.id)
        again = ensure_variants(session, issue, settings, clock)
        assert {k: v.rendered_at for k, v in again.items()} == first
        assert session.scalar(select(func.count()).select_from(IssueVariant)) == 4


def test_a_rebuilt_issue_is_rendered_again(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = store_issue(session, [make_article(1)], built_at=clock.now())
        ensure_variants(session, issue, settings, clock)
    clock.advance(minutes=10)
    with sessions.begin() as session:
        issue = session.get(Issue, issue.id)
        article = session.scalar(select(Article))
        article.content("ja").title = "更新された見出し"
        issue.built_at = clock.now()
        stored = ensure_variants(session, issue, settings, clock)
        assert stored["ja"].rendered_at == clock.now()
        assert "更新された見出し" in stored["ja"].html
        assert session.scalar(select(func.count()).select_from(IssueVariant)) == 4


def test_variants_stored_meanwhile_by_another_process_are_kept(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with sessions.begin() as session:
        issue_id = store_issue(session, [make_article(1)], built_at=clock.now()).id
    real_render = store.render_issue_forms
    raced: list[bool] = []

    def render_while_another_process_stores(view: IssueView, settings: Settings) -> IssueForms:
        if not raced:  # between our read and our insert, another process stores the variants
            raced.append(True)
            with sessions.begin() as other:
                ensure_variants(other, other.get(Issue, issue_id), settings, clock)
        return real_render(view, settings)

    monkeypatch.setattr(store, "render_issue_forms", render_while_another_process_stores)
    with sessions.begin() as first:
        rows = ensure_variants(first, first.get(Issue, issue_id), settings, clock)
        assert sorted(rows) == ["both", "both-en", "en", "ja"]
        assert all(row.id is not None for row in rows.values())
    assert raced
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(IssueVariant)) == 4


def test_an_unknown_issue_is_not_found(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(NotFoundError, match="issue 404"):
        load_issue_view(session, 404)


def test_what_the_budget_trimmed_is_stored_for_the_editor(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    articles = [make_article(n, long=True) for n in range(1, 9)]
    with sessions.begin() as session:
        issue = store_issue(session, articles, built_at=clock.now())
        ensure_variants(session, issue, settings, clock)
    with sessions() as session:
        both = session.scalar(select(IssueVariant).where(IssueVariant.variant == "both"))
        assert both.trimmed and both.trimmed[0] == "key point bodies shortened to 160 columns"
        assert as_rendered(both).trimmed == tuple(both.trimmed)


def test_an_article_reimported_after_the_preview_is_rendered_again(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = store_issue(session, [make_article(1)], built_at=clock.now())
        ensure_variants(session, issue, settings, clock)  # the editor's preview
    clock.advance(minutes=20)
    with sessions.begin() as session:  # a correction arrives; the issue is not rebuilt
        article = session.scalar(select(Article))
        article.content("ja").title = "訂正後の見出し"
        article.updated_at = clock.now()
    clock.advance(minutes=5)
    with sessions.begin() as session:
        stored = ensure_variants(session, session.get(Issue, issue.id), settings, clock)
        assert "訂正後の見出し" in stored["ja"].html
        assert stored["ja"].rendered_at == clock.now()
