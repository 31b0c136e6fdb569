"""The web edition: home, issue, article and index pages, feeds, caching, what never appears."""

from __future__ import annotations

import re
from datetime import date, timedelta

import feedparser
from sqlalchemy import insert, select
from starlette.testclient import TestClient

from newsletter.clock import FixedClock
from newsletter.db.models import Article, Issue, IssueArticle, IssueNote, IssueVariant
from newsletter.db.session import transaction
from newsletter.db.snapshots import article_to_dict
from newsletter.runtime import Runtime
from newsletter.types import SLOT_NAME, SLOT_UNSUBSCRIBE_URL, SLOTS
from tests.fixtures.edition import FIRST_DAY, Edition, add_edition_issue
from tests.fixtures.web import add_list, email_html

EN = {"Accept-Language": "en"}
NEWEST = FIRST_DAY + timedelta(days=2)


def _issue_url(day: date, lang: str = "en") -> str:
    return f"/issues/{day.isoformat()}?lang={lang}"


def test_home_page_has_the_signup_form_and_the_latest_headlines(
    web_client: TestClient, edition: Edition
) -> None:
    page = web_client.get("/", headers=EN)
    assert page.status_code == 200
    assert '<form method="post" action="/subscribe">' in page.text
    assert 'name="csrf"' in page.text and "nl_csrf" in page.headers["set-cookie"]
    for n in (6, 7, 8, 9):
        assert f"Article {n}: a new AI benchmark" in page.text
    assert "Article 1: a new AI benchmark" not in page.text  # an older issue
    assert 'href="/issues/"' in page.text


def test_the_home_pages_form_signs_up_like_the_signup_page(
    web_client: TestClient, edition: Edition
) -> None:
    page = web_client.get("/", headers=EN)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = web_client.post(
        "/subscribe",
        data={"csrf": csrf, "list": "daily", "email": "new@example.jp", "consent": "yes"},
        headers=EN,
    )
    assert answer.status_code == 200
    assert "Check your inbox" in answer.text


def test_the_home_page_follows_accept_language(web_client: TestClient, edition: Edition) -> None:
    assert '<html lang="ja">' in web_client.get("/", headers={"Accept-Language": "ja"}).text
    assert '<html lang="en">' in web_client.get("/", headers=EN).text


def test_the_language_switch_is_remembered_in_a_cookie(
    web_client: TestClient, edition: Edition
) -> None:
    switched = web_client.get(
        "/language/en?next=/issues/", headers={"Accept-Language": "ja"}, follow_redirects=False
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/issues/"
    assert "nl_hl=en" in switched.headers["set-cookie"]
    later = web_client.get("/", headers={"Accept-Language": "ja"})
    assert '<html lang="en">' in later.text


def test_the_language_switch_only_returns_to_local_pages(web_client: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = web_client.get(f"/language/ja?next={target}", follow_redirects=False)
        assert answer.headers["location"] == "/"


def test_an_issue_page_has_one_h1_and_every_article_of_the_issue(
    web_client: TestClient, edition: Edition
) -> None:
    page = web_client.get(_issue_url(FIRST_DAY))
    assert page.status_code == 200
    assert page.text.count("<h1") == 1
    for n in (1, 2, 3):
        assert f"Article {n}: a new AI benchmark" in page.text
        assert f'href="/articles/{edition.articles[f"article-{n}"]}?lang=en"' in page.text


def test_an_issue_page_shows_every_part_of_an_article(
    web_client: TestClient, edition: Edition
) -> None:
    page = web_client.get(_issue_url(FIRST_DAY)).text
    for part in ("Key points", "Impact analysis", "Editor&#39;s comment", "Related articles"):
        assert part in page
    assert 'href="https://ainippo.example/articles/related-1-1"' in page
    assert 'href="https://ainippo.example/articles/1">Read more</a>' in page
    assert 'href="https://publisher.example/news/1?ref=feed">Source: Publisher Example' in page


def test_an_issue_page_has_no_subscriber_text_or_link(
    web_client: TestClient, edition: Edition
) -> None:
    for lang in ("ja", "en", "both", "both-en"):
        page = web_client.get(_issue_url(NEWEST, lang)).text
        assert "/u/" not in page and "/p/" not in page
        assert "you are receiving this email" not in page.lower()
        assert "このメールは" not in page
        assert not any(slot in page for slot in SLOTS)
        assert edition.subscriber_email not in page and "鈴木花子" not in page


def test_the_emails_view_in_browser_link_opens_the_issue_in_its_language(
    web_client: TestClient, edition: Edition
) -> None:
    """`web_version_url` (/issues/DATE?lang=...) keeps answering: with the web edition."""
    ja = web_client.get(_issue_url(FIRST_DAY, "ja"))
    assert ja.status_code == 200 and '<html lang="ja">' in ja.text
    assert "記事1: 新しいAI評価指標が登場" in ja.text
    assert "Article 1: a new AI benchmark" not in ja.text
    both = web_client.get(_issue_url(FIRST_DAY, "both")).text
    assert "記事1: 新しいAI評価指標が登場" in both and "Article 1: a new AI benchmark" in both
    assert web_client.get(_issue_url(FIRST_DAY, "fr")).status_code == 400


def test_the_email_as_sent_is_still_reachable_without_personal_links(
    web_client: TestClient, edition: Edition
) -> None:
    issue_page = web_client.get(_issue_url(FIRST_DAY)).text
    assert f'href="/issues/{FIRST_DAY.isoformat()}/email?lang=en"' in issue_page
    email = web_client.get(f"/issues/{FIRST_DAY.isoformat()}/email?lang=en")
    assert email.status_code == 200 and f"en {FIRST_DAY}" in email.text
    assert "/u/" not in email.text and "/p/" not in email.text


def test_an_issue_page_links_to_the_previous_and_next_issues(
    web_client: TestClient, edition: Edition
) -> None:
    middle = web_client.get(_issue_url(FIRST_DAY + timedelta(days=1))).text
    assert f'rel="prev" href="/issues/{FIRST_DAY.isoformat()}?lang=en"' in middle
    assert f'rel="next" href="/issues/{NEWEST.isoformat()}?lang=en"' in middle
    newest = web_client.get(_issue_url(NEWEST)).text
    assert 'rel="next"' not in newest  # the built, unsent issue after it is not linked


def test_an_issue_page_shows_no_editor_note_until_one_is_given(
    web_client: TestClient, web_runtime: Runtime, edition: Edition
) -> None:
    with transaction(web_runtime.sessions) as session:
        session.get(Issue, edition.sent[FIRST_DAY]).note = "internal: skipped article 4"  # type: ignore[union-attr]
    page = web_client.get(_issue_url(FIRST_DAY)).text
    assert "internal: skipped" not in page
    assert "editor-note" not in page


def test_an_issue_page_shows_the_editors_note_escaped_with_its_links(
    web_client: TestClient, web_runtime: Runtime, edition: Edition, clock: FixedClock
) -> None:
    with transaction(web_runtime.sessions) as session:
        session.add(
            IssueNote(
                list_id=edition.list_id,
                issue_date=FIRST_DAY,
                note_ja="<b>特集</b>号です https://example.com/special",
                note_en="A special edition",
                updated_by="hanako@example.jp",
                updated_at=clock.now(),
            )
        )
    page = web_client.get(f"/issues/{FIRST_DAY.isoformat()}?lang=both").text
    assert page.count('class="card editor-note"') == 1
    assert "&lt;b&gt;特集&lt;/b&gt;号です" in page
    assert '<a href="https://example.com/special">' in page
    assert page.index("特集") < page.index("A special edition")
    english = web_client.get(_issue_url(FIRST_DAY)).text
    assert "A special edition" in english and "特集" not in english


def test_unsent_issues_are_not_public(web_client: TestClient, edition: Edition) -> None:
    assert web_client.get(_issue_url(edition.unsent_date)).status_code == 404
    assert web_client.get(f"/articles/{edition.unsent_only_article}").status_code == 404
    index = web_client.get("/issues/", headers=EN).text
    assert edition.unsent_date.isoformat() not in index


def test_excluded_articles_are_not_public(web_client: TestClient, edition: Edition) -> None:
    page = web_client.get(_issue_url(NEWEST)).text
    assert "Article 13" not in page
    assert web_client.get(f"/articles/{edition.excluded_article}").status_code == 404
    assert "Article 13" not in web_client.get("/feeds/daily/en.atom").text
    assert f"/articles/{edition.excluded_article}<" not in web_client.get("/sitemap.xml").text


def test_an_article_page_shows_its_body_and_the_issues_it_appeared_in(
    web_client: TestClient, edition: Edition
) -> None:
    article_id = edition.articles["article-1"]
    page = web_client.get(f"/articles/{article_id}?lang=en")
    assert page.status_code == 200
    assert page.text.count("<h1") == 1
    body = "companies are already weighing it in their purchasing decisions. A research team"
    assert body in page.text  # the body: ten sentences, shown nowhere else
    assert f'href="/issues/{FIRST_DAY.isoformat()}?lang=en"' in page.text
    for part in ("Key points", "Impact analysis", "Related articles", "Read more"):
        assert part in page.text


def test_an_article_page_links_its_language_versions(
    web_client: TestClient, edition: Edition
) -> None:
    article_id = edition.articles["article-1"]
    page = web_client.get(f"/articles/{article_id}?lang=ja").text
    base = f"https://news.example.com/articles/{article_id}"
    assert f'<link rel="canonical" href="{base}?lang=ja">' in page
    assert f'<link rel="alternate" hreflang="ja" href="{base}?lang=ja">' in page
    assert f'<link rel="alternate" hreflang="en" href="{base}?lang=en">' in page
    english_only = web_client.get(f"/articles/{edition.articles['article-10']}?lang=ja").text
    assert 'hreflang="ja"' not in english_only
    assert "日本語版はありません" in english_only  # labels follow ?lang=ja


def test_pages_carry_sharing_tags_and_feed_links(web_client: TestClient, edition: Edition) -> None:
    page = web_client.get(_issue_url(FIRST_DAY)).text
    assert '<meta property="og:title" content="AI日報, June 11, 2026: Article 1' in page
    assert '<meta name="twitter:card" content="summary">' in page
    assert (
        '<link rel="alternate" type="application/atom+xml" title="AI日報 (Atom feed)" '
        'href="https://news.example.com/feeds/daily/en.atom">' in page
    )


def test_the_atom_feed_has_one_entry_per_sent_issue(
    web_client: TestClient, edition: Edition
) -> None:
    answer = web_client.get("/feeds/daily/en.atom")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(answer.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    links = [entry.link for entry in feed.entries]
    assert links == [
        f"https://news.example.com/issues/{(FIRST_DAY + timedelta(days=k)).isoformat()}?lang=en"
        for k in (2, 1, 0)
    ]
    assert feed.entries[2].title == "June 11, 2026: Article 1: a new AI benchmark"
    assert "Article 2: a new AI benchmark" in feed.entries[2].content[0].value


def test_there_is_a_feed_per_language(web_client: TestClient, edition: Edition) -> None:
    feed = feedparser.parse(web_client.get("/feeds/daily/ja.atom").content)
    assert feed.entries[2].title.startswith("2026年6月11日: 記事1")
    assert web_client.get("/feeds/daily/fr.atom").status_code == 404
    assert web_client.get("/feeds/weekly/ja.atom").status_code == 404


def test_the_sitemap_lists_every_public_issue_and_article(
    web_client: TestClient, edition: Edition
) -> None:
    answer = web_client.get("/sitemap.xml")
    assert answer.status_code == 200
    locs = re.findall(r"<loc>([^<]+)</loc>", answer.text)
    for k in range(3):
        day = (FIRST_DAY + timedelta(days=k)).isoformat()
        assert f"https://news.example.com/issues/{day}?lang=ja" in locs
    assert f"https://news.example.com/articles/{edition.articles['article-1']}" in locs
    assert not any(edition.unsent_date.isoformat() in loc for loc in locs)


def test_robots_txt_points_to_the_sitemap_and_keeps_personal_links_out(
    web_client: TestClient,
) -> None:
    text = web_client.get("/robots.txt").text
    assert "Sitemap: https://news.example.com/sitemap.xml" in text
    assert "Disallow: /u/" in text and "Disallow: /p/" in text


def test_a_reload_with_the_etag_is_not_modified(web_client: TestClient, edition: Edition) -> None:
    first = web_client.get(_issue_url(FIRST_DAY))
    assert first.headers["cache-control"] == "public, max-age=300"
    again = web_client.get(_issue_url(FIRST_DAY), headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]


def test_a_reload_with_the_date_is_not_modified(web_client: TestClient, edition: Edition) -> None:
    first = web_client.get(f"/articles/{edition.articles['article-1']}?lang=en")
    since = {"If-Modified-Since": first.headers["last-modified"]}
    assert (
        web_client.get(
            f"/articles/{edition.articles['article-1']}?lang=en", headers=since
        ).status_code
        == 304
    )


def test_an_issue_page_is_rendered_once(web_client: TestClient, edition: Edition) -> None:
    web_client.get(_issue_url(FIRST_DAY))
    cache = web_client.app.state.edition_cache  # type: ignore[attr-defined]
    renders = cache.renders
    for _ in range(3):
        assert web_client.get(_issue_url(FIRST_DAY)).status_code == 200
    assert cache.renders == renders


def test_a_newly_sent_issue_appears_on_the_pages_already_cached(
    web_client: TestClient, web_runtime: Runtime, edition: Edition, clock
) -> None:
    before = web_client.get(_issue_url(NEWEST)).text
    web_client.get("/issues/", headers=EN)
    with transaction(web_runtime.sessions) as session:
        unsent = session.scalars(select(Issue).where(Issue.issue_date == edition.unsent_date))
        unsent.one().status = "sent"
    assert f'rel="next" href="/issues/{edition.unsent_date.isoformat()}?lang=en"' not in before
    after = web_client.get(_issue_url(NEWEST)).text
    assert f'rel="next" href="/issues/{edition.unsent_date.isoformat()}?lang=en"' in after
    assert edition.unsent_date.isoformat() in web_client.get("/issues/", headers=EN).text


def test_public_pages_are_cacheable_and_subscriber_pages_are_not(
    web_client: TestClient, edition: Edition
) -> None:
    assert web_client.get("/issues/", headers=EN).headers["cache-control"].startswith("public")
    assert web_client.get("/", headers=EN).headers["cache-control"] == "no-store"
    assert web_client.get("/subscribe").headers["cache-control"] == "no-store"


def test_edition_pages_have_no_script(web_client: TestClient, edition: Edition) -> None:
    for url in (
        "/",
        "/issues/",
        _issue_url(FIRST_DAY),
        f"/articles/{edition.articles['article-1']}",
    ):
        answer = web_client.get(url, headers=EN)
        assert "<script" not in answer.text
        assert "script-src" not in answer.headers["content-security-policy"]


def test_the_index_shows_headline_and_article_count_newest_first(
    web_client: TestClient, edition: Edition
) -> None:
    page = web_client.get("/issues/", headers=EN).text
    days = re.findall(r'<time datetime="([\d-]+)">', page)
    assert days == [(FIRST_DAY + timedelta(days=k)).isoformat() for k in (2, 1, 0)]
    assert "Article 6: a new AI benchmark" in page  # June 13's headline
    assert "5 articles" in page  # June 13: six chosen, one excluded
    assert "3 articles" in page


def test_an_index_of_1200_issues_pages_through_all_of_them(
    web_client: TestClient, web_runtime: Runtime, edition: Edition, clock
) -> None:
    with transaction(web_runtime.sessions) as session:
        list_id = add_list(session, clock, "weekly", "AI週報")
        # The rows add_edition_issue writes for each of 1,197 sent issues, inserted in bulk.
        article = session.get(Article, edition.articles["article-1"])
        assert article is not None
        snapshot, now = article_to_dict(article), clock.now()
        days = [date(2020, 1, 1) + timedelta(days=k) for k in range(1197)]
        ids = session.scalars(
            insert(Issue).returning(Issue.id, sort_by_parameter_order=True),
            [
                {"list_id": list_id, "issue_date": day, "status": "sent", "window_start": now,
                 "cutoff_at": now, "created_at": now, "built_at": now, "sent_at": now}
                for day in days
            ],
        ).all()  # fmt: skip
        session.execute(
            insert(IssueVariant),
            [
                {"issue_id": issue_id, "variant": variant, "subject": f"AI日報 {day} {variant}",
                 "preheader": "", "html": email_html(f"{variant} {day}"),
                 "text": f"{variant} {day} {SLOT_NAME}\n{SLOT_UNSUBSCRIBE_URL}\n", "trimmed": [],
                 "rendered_at": now}
                for issue_id, day in zip(ids, days, strict=True)
                for variant in ("ja", "en", "both", "both-en")
            ],
        )  # fmt: skip
        session.execute(
            insert(IssueArticle),
            [
                {"issue_id": issue_id, "article_id": article.id, "position": 0, "pinned": False,
                 "snapshot": snapshot}
                for issue_id in ids
            ],
        )  # fmt: skip
    seen: list[str] = []
    url: str | None = "/issues/"
    pages = 0
    while url:
        page = web_client.get(url, headers=EN)
        assert page.status_code == 200
        pages += 1
        seen += re.findall(r'<h2><a href="(/issues/[^"]+)"', page.text)
        older = re.search(r'rel="next" href="([^"]+)"', page.text)
        url = older.group(1).replace("&amp;", "&") if older else None
    assert pages == 24
    assert len(seen) == 1200 and len(set(seen)) == 1200
    assert seen[0].startswith(f"/issues/{NEWEST.isoformat()}")
    assert seen[-1] == "/issues/2020-01-01?lang=en&amp;list=weekly"
    assert web_client.get("/issues/?page=25").status_code == 404
    assert web_client.get("/issues/?page=0").status_code == 404


def test_an_index_can_show_one_list(
    web_client: TestClient, web_runtime: Runtime, edition: Edition, clock
) -> None:
    with transaction(web_runtime.sessions) as session:
        list_id = add_list(session, clock, "weekly", "AI週報")
        add_edition_issue(session, clock, list_id, FIRST_DAY, [edition.articles["article-5"]])
    everything = web_client.get("/issues/", headers=EN).text
    assert "AI週報" in everything
    weekly = web_client.get("/issues/?list=weekly", headers=EN).text
    assert re.findall(r'<time datetime="([\d-]+)">', weekly) == [FIRST_DAY.isoformat()]
    issue = web_client.get(f"/issues/{FIRST_DAY.isoformat()}?lang=en&list=weekly").text
    assert "Article 5: a new AI benchmark" in issue and "Article 1:" not in issue


def test_the_index_of_an_unknown_list_is_not_found(
    web_client: TestClient, edition: Edition
) -> None:
    assert web_client.get("/issues/?list=no-such-list").status_code == 404
    assert web_client.get("/issues/?list=daily").status_code == 200
