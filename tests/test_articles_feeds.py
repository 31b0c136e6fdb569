"""Importing RSS 2.0 and Atom feeds, from files and from a real local HTTP server."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.articles.ingest import import_sources
from newsletter.articles.schema import article_to_dict
from newsletter.clock import FixedClock
from newsletter.db.models import Article

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>テストフィード</title>
    <link>https://example.org/</link>
    <description>feed</description>
    <language>ja-JP</language>
    <item>
      <title>モデル &lt; 10B の評価</title>
      <link>https://example.org/ai-daily/articles/rss-1</link>
      <guid isPermaLink="false">rss-1</guid>
      <description>&lt;p&gt;要約 &amp;amp; &lt;b&gt;強調&lt;/b&gt;&lt;/p&gt;</description>
      <pubDate>Sat, 13 Jun 2026 06:00:00 +0900</pubDate>
      <category>research</category>
    </item>
    <item>
      <title>ゲスト記事</title>
      <link>https://example.org/ai-daily/articles/rss-2</link>
      <description>本文の要約</description>
      <pubDate>Fri, 12 Jun 2026 20:30:00 GMT</pubDate>
    </item>
  </channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en-US">
  <title>Test feed</title>
  <id>urn:test:feed</id>
  <updated>2026-06-13T06:00:00+09:00</updated>
  <entry>
    <title>Atom entry one</title>
    <id>urn:test:atom-1</id>
    <link href="https://example.org/ai-daily/articles/atom-1"/>
    <published>2026-06-13T05:30:00+09:00</published>
    <updated>2026-06-13T05:45:00+09:00</updated>
    <summary>The first summary.</summary>
  </entry>
  <entry>
    <title>Atom entry without a zone</title>
    <id>urn:test:atom-2</id>
    <link href="https://example.org/ai-daily/articles/atom-2"/>
    <updated>2026-06-13T05:30:00</updated>
    <summary>Naive.</summary>
  </entry>
</feed>
"""


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def stored(sessions: sessionmaker[Session]) -> dict[str, dict]:
    with sessions() as session:
        return {a.external_id: article_to_dict(a) for a in session.scalars(select(Article))}


def test_rss_items_become_articles_in_the_feeds_language(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    report = import_sources(sessions, [write(tmp_path / "feed.xml", RSS)], clock)
    assert (report.imported, report.rejected) == (2, 0)
    articles = stored(sessions)
    first = articles["rss-1"]
    assert first["url"] == "https://example.org/ai-daily/articles/rss-1"
    assert first["published_at"] == "2026-06-12T21:00:00+00:00"
    assert first["tags"] == ["research"]
    assert list(first["content"]) == ["ja"]
    assert first["content"]["ja"]["title"] == "モデル < 10B の評価"
    assert first["content"]["ja"]["summary"] == "要約 & 強調"  # HTML reduced to text


def test_an_rss_item_without_a_guid_is_identified_by_its_link(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    import_sources(sessions, [write(tmp_path / "feed.xml", RSS)], clock)
    assert "https://example.org/ai-daily/articles/rss-2" in stored(sessions)


def test_atom_entries_use_xml_lang_and_reject_a_naive_date(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    path = write(tmp_path / "atom.xml", ATOM)
    report = import_sources(sessions, [path], clock)
    assert (report.imported, report.rejected) == (1, 1)
    assert report.messages() == [
        f"{path}: article urn:test:atom-2: published_at: timestamp '2026-06-13T05:30:00' has "
        "no UTC offset; add one, e.g. +09:00 or Z"
    ]
    entry = stored(sessions)["urn:test:atom-1"]
    assert list(entry["content"]) == ["en"]
    assert entry["published_at"] == "2026-06-12T20:30:00+00:00"  # <published>, with its offset


def test_a_feed_entry_without_a_date_is_an_error(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    feed = RSS.replace("<pubDate>Fri, 12 Jun 2026 20:30:00 GMT</pubDate>", "")
    path = write(tmp_path / "feed.xml", feed)
    report = import_sources(sessions, [path], clock)
    assert report.messages() == [
        f"{path}: article https://example.org/ai-daily/articles/rss-2: published_at: missing; "
        "expected an RFC 3339 timestamp with offset"
    ]


def test_a_feed_in_an_unsupported_language_is_rejected_per_entry(
    sqlite_sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "feed.xml", RSS.replace("<language>ja-JP</language>", "<language>fr</language>")
    )
    report = import_sources(sqlite_sessions, [path], clock)
    assert report.rejected == 2
    assert report.messages()[0] == (
        f"{path}: article rss-1: language: unsupported language 'fr'; expected ja or en"
    )


def test_a_feed_that_declares_no_language_is_rejected(
    sqlite_sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    path = write(tmp_path / "feed.xml", RSS.replace("<language>ja-JP</language>", ""))
    report = import_sources(sqlite_sessions, [path], clock)
    assert report.rejected == 2
    assert "the feed declares no language" in report.messages()[0]


def test_a_feed_is_fetched_over_http(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    articles_http_dir: tuple[Path, str],
) -> None:
    folder, base = articles_http_dir
    write(folder / "atom.xml", ATOM)
    report = import_sources(sessions, [f"{base}/atom.xml"], clock)
    assert (report.imported, report.rejected) == (1, 1)
    with sessions() as session:
        article = session.scalars(select(Article)).one()
        assert article.origin == f"{base}/atom.xml"
        assert article.published_at == datetime(2026, 6, 12, 20, 30, tzinfo=UTC)


def test_json_is_fetched_over_http_too(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    articles_http_dir: tuple[Path, str],
) -> None:
    folder, base = articles_http_dir
    write(
        folder / "a.json",
        '{"id": "j1", "url": "https://example.org/j1", "published_at": "2026-06-13T06:00:00Z",'
        ' "content": {"en": {"title": "T", "summary": "S"}}}',
    )
    report = import_sources(sessions, [f"{base}/a.json"], clock)
    assert report.imported == 1


def test_an_http_error_names_the_url_and_status(
    sqlite_sessions: sessionmaker[Session],
    clock: FixedClock,
    articles_http_dir: tuple[Path, str],
) -> None:
    _, base = articles_http_dir
    report = import_sources(sqlite_sessions, [f"{base}/missing.xml"], clock)
    assert report.messages() == [f"{base}/missing.xml: cannot fetch: HTTP 404"]


def test_an_html_page_is_not_mistaken_for_a_feed(
    sqlite_sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    path = write(tmp_path / "page.xml", "<html><body><p>hello</p></body></html>")
    report = import_sources(sqlite_sessions, [path], clock)
    assert report.messages() == [f"{path}: not an RSS 2.0 or Atom feed"]


def test_an_unreachable_url_is_one_error_naming_it(
    sqlite_sessions: sessionmaker[Session], clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_FETCH_ALLOW_PRIVATE", "1")  # 127.0.0.1 stands in for a host
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed.xml"
    report = import_sources(sqlite_sessions, [url], clock)
    assert len(report.source_errors) == 1
    assert report.messages()[0].startswith(f"{url}: cannot fetch: ")
