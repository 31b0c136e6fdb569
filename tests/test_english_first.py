"""The English-first bilingual email (`both-en`): its own rendered variant, a subscriber language
chosen at sign-up and on the preferences page, and the ledger's variant choice."""

from __future__ import annotations

import re

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from newsletter.clock import SYSTEM_CLOCK
from newsletter.config import Settings
from newsletter.db.models import Delivery, Issue, Subscriber
from newsletter.delivery.planning import enqueue_issue
from newsletter.render.renderer import render_issue_variants
from newsletter.render.view import issue_view_from_dicts
from newsletter.runtime import Runtime
from subscribers.csv_source import parse_language
from subscribers.tokens import LinkSigner
from tests.fixtures.delivery import SeededSend
from tests.fixtures.render import ISSUE_DATE, make_article
from tests.fixtures.web import Seeded
from tests.test_render_bilingual import text_in


def test_english_first_reads_english_then_japanese(render_settings: Settings) -> None:
    article = make_article(1)
    article["content"]["en"]["editor_comment"] = ""
    view = issue_view_from_dicts(7, ISSUE_DATE, [article, make_article(2)])
    rendered = render_issue_variants(view, render_settings)
    assert list(rendered) == ["ja", "en", "both", "both-en"]
    english_first, japanese_first = rendered["both-en"], rendered["both"]

    assert '<html lang="en"' in english_first.html
    body = english_first.html.split('id="article-1"', 1)[1]
    order = [
        "Article 1: a new AI benchmark",
        "記事1: 新しいAI評価指標が登場",
        "Point 1",
        "ポイント1",
    ]
    positions = [body.index(text) for text in order]
    assert positions == sorted(positions)
    assert 'lang="ja" class="nl-o nl-ja"' in body
    assert "記事1: 新しいAI評価指標が登場" in text_in(english_first.html, "ja")
    # chrome: English first, Japanese in lang="ja"
    assert 'Key points &#183; <span lang="ja">キーポイント</span>' in english_first.html
    assert "June 13, 2026 · 2026年6月13日" in english_first.text
    assert "Read more · 続きを読む" in english_first.text
    # a part only Japanese has is marked, English first
    assert "■ Editor's comment · 編集コメント [In Japanese · 日本語のみ]" in english_first.text
    # subjects: the same two headlines, in each flavour's order
    assert english_first.subject.startswith("AI日報 6/13: Article 1")
    assert " / 記事1" in english_first.subject
    assert japanese_first.subject.startswith("AI日報 6/13: 記事1")
    assert english_first.preheader.startswith("Article 2")


def test_the_ledger_gives_an_english_first_reader_the_english_first_variant(
    sessions: sessionmaker[Session], settings: Settings, delivery_seed: SeededSend
) -> None:
    chosen = delivery_seed.emails[:3]
    with sessions.begin() as session:
        session.execute(
            update(Subscriber).where(Subscriber.email.in_(chosen)).values(language="both-en")
        )
    with sessions.begin() as session:
        issue = session.get_one(Issue, delivery_seed.issue_id)
        enqueue_issue(session, issue, settings, SYSTEM_CLOCK, batch_size=4)
    with sessions() as session:
        rows = session.execute(
            select(Subscriber.email, Subscriber.language, Delivery.variant).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
    assert len(rows) == 30
    assert all(language == variant for _email, language, variant in rows)
    assert sorted(email for email, _, variant in rows if variant == "both-en") == sorted(chosen)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_the_preferences_page_offers_and_saves_english_first(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    path = f"/p/{LinkSigner(web_runtime.settings).token(web_seed.subscriber_id, web_seed.list_id)}"
    page = web_client.get(path)
    assert "日本語と英語（日本語優先）" in page.text and "英語と日本語（英語優先）" in page.text
    response = web_client.post(path, data={"csrf": _csrf(page.text), "language": "both-en"})
    assert response.status_code == 200
    with web_runtime.sessions() as session:
        language = session.scalar(
            select(Subscriber.language).where(Subscriber.id == web_seed.subscriber_id)
        )
    assert language == "both-en"
    assert 'value="both-en" checked' in web_client.get(path).text


def test_sign_up_offers_english_first(web_client: TestClient, web_runtime: Runtime) -> None:
    form = web_client.get("/subscribe", headers={"Accept-Language": "en"}).text
    assert 'value="both-en"' in form and "English and Japanese (English first)" in form
    data = {
        "csrf": _csrf(form),
        "email": "reader@example.com",
        "language": "both-en",
        "consent": "yes",
        "list": "daily",
    }
    response = web_client.post("/subscribe", data=data, headers={"Accept-Language": "en"})
    assert response.status_code == 200
    with web_runtime.sessions() as session:
        language = session.scalar(
            select(Subscriber.language).where(Subscriber.email == "reader@example.com")
        )
    assert language == "both-en"


def test_csv_spellings_of_english_first() -> None:
    assert parse_language("en+ja") == "both-en"
    assert parse_language("both-en") == "both-en"
    assert parse_language("ja+en") == "both"
