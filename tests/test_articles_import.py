"""Importing articles from JSON files: every field, every error, updates in place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.articles.ingest import import_sources
from newsletter.articles.schema import (
    MAX_TITLE,
    article_to_dict,
    validate_article,
)
from newsletter.clock import FixedClock
from newsletter.db.models import Article, ArticleContent
from newsletter.errors import ArticleError
from tests.fixtures.articles import article_dict, write_json


def full_article() -> dict[str, Any]:
    """Every field of the format, with a `<` that must stay a character."""
    return {
        "id": "full-article",
        "url": "https://example.org/ai-daily/articles/full-article",
        "source_url": "https://example.com/original/full-article",
        "source_name": "Example Wire",
        "published_at": "2026-06-13T06:10:00+09:00",
        "importance": 73,
        "tags": ["research", "open-weights"],
        "content": {
            "ja": {
                "title": "テスト用の記事 <速報>",
                "summary": "要約の一文目。二文目。",
                "key_points": [
                    {"heading": "見出し1", "body": "本文1"},
                    {"heading": "見出し2", "body": "本文2"},
                ],
                "impact_analysis": "影響の分析。",
                "editor_comment": "編集部のコメント。",
                "body": "第一段落。\n\n第二段落。",
                "related": [
                    {
                        "title": "関連記事",
                        "summary": "関連記事の要約",
                        "url": "https://example.org/ai-daily/articles/related",
                    }
                ],
            },
            "en": {"title": "A test article <breaking>", "summary": "The lead."},
        },
    }


def problems(raw: Any, position: int = 1) -> list[str]:
    result = validate_article(raw, source="in.json", position=position)
    assert isinstance(result, list), "expected the article to be rejected"
    return [str(e) for e in result]


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# --- validation messages (pure) ---------------------------------------------------------------


def test_a_naive_timestamp_is_rejected_naming_file_article_and_field() -> None:
    raw = article_dict("a1", "2026-06-13T06:10:00")
    assert problems(raw) == [
        "in.json: article a1: published_at: timestamp '2026-06-13T06:10:00' has no UTC "
        "offset; add one, e.g. +09:00 or Z"
    ]


def test_a_date_without_time_is_not_a_timestamp() -> None:
    message = problems(article_dict("a1", "2026-06-13"))[0]
    assert message.startswith("in.json: article a1: published_at: expected an RFC 3339 timestamp")


def test_a_non_http_url_is_rejected() -> None:
    raw = article_dict("a1", "2026-06-13T06:10:00+09:00")
    raw["url"] = "javascript:alert(1)"
    assert problems(raw) == [
        "in.json: article a1: url: expected an absolute http(s) URL, got 'javascript:alert(1)'"
    ]


def test_an_empty_title_is_rejected_with_its_full_field_path() -> None:
    raw = article_dict("a1", "2026-06-13T06:10:00+09:00")
    raw["content"]["ja"]["title"] = "   "
    assert problems(raw) == [
        "in.json: article a1: content.ja.title: empty; expected a non-empty string"
    ]


def test_an_empty_summary_is_rejected() -> None:
    raw = article_dict("a1", "2026-06-13T06:10:00+09:00")
    raw["content"]["en"]["summary"] = ""
    assert problems(raw) == [
        "in.json: article a1: content.en.summary: empty; expected a non-empty string"
    ]


def test_an_unknown_language_is_rejected() -> None:
    raw = article_dict("a1", "2026-06-13T06:10:00+09:00")
    raw["content"]["fr"] = {"title": "Titre", "summary": "Résumé"}
    assert problems(raw) == ["in.json: article a1: content.fr: unknown language; expected ja or en"]


@pytest.mark.parametrize("value", [101, -1])
def test_importance_outside_0_to_100_is_rejected(value: int) -> None:
    raw = article_dict("a1", "2026-06-13T06:10:00+09:00", importance=value)
    assert problems(raw) == [f"in.json: article a1: importance: expected 0 to 100, got {value}"]


def test_importance_must_be_a_whole_number() -> None:
    raw = article_dict("a1", "2026-06-13T06:10:00+09:00")
    raw["importance"] = "high"
    assert problems(raw) == [
        "in.json: article a1: importance: expected a whole number 0 to 100, got 'high'"
    ]


def test_an_oversized_title_is_rejected_with_the_limit() -> None:
    raw = article_dict("a1", "2026-06-13T06:10:00+09:00", title="x" * (MAX_TITLE + 1))
    assert problems(raw)[0] == (
        f"in.json: article a1: content.ja.title: too long: {MAX_TITLE + 1} characters, "
        f"the limit is {MAX_TITLE}"
    )


def test_a_bad_key_point_is_named_by_its_index() -> None:
    raw = full_article()
    raw["content"]["ja"]["key_points"][1] = {"heading": "", "body": "本文"}
    assert problems(raw) == [
        "in.json: article full-article: content.ja.key_points[1].heading: empty; "
        "expected a non-empty string"
    ]


def test_an_article_without_an_id_is_named_by_its_position() -> None:
    raw = article_dict("x", "2026-06-13T06:10:00+09:00")
    del raw["id"]
    assert problems(raw, position=3) == [
        "in.json: article #3: id: missing; expected a non-empty string"
    ]


def test_content_needs_at_least_one_language() -> None:
    raw = article_dict("a1", "2026-06-13T06:10:00+09:00")
    raw["content"] = {}
    assert problems(raw) == [
        "in.json: article a1: content: empty; expected at least one of: ja, en"
    ]


def test_all_problems_of_one_article_are_reported_together() -> None:
    raw = article_dict("a1", "2026-06-13T06:10:00")
    raw["url"] = "ftp://example.org/x"
    fields = [e.field for e in validate_article(raw, source="f", position=1)]  # type: ignore[union-attr]
    assert fields == ["url", "published_at"]


# --- files and the database -------------------------------------------------------------------


def test_every_field_of_the_format_is_stored_and_read_back_unchanged(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "one.json", full_article())
    report = import_sources(sessions, [path], clock)
    assert (report.imported, report.rejected) == (1, 0)
    with sessions() as session:
        article = session.scalar(select(Article))
        assert article is not None
        data = article_to_dict(article)
    expected = full_article()
    expected["published_at"] = "2026-06-12T21:10:00+00:00"  # the same instant, stored as UTC
    expected["content"]["en"].update(
        key_points=[], impact_analysis=None, editor_comment=None, body=None, related=[]
    )
    assert data == expected
    assert data["content"]["ja"]["title"] == "テスト用の記事 <速報>"  # text, not markup


def test_an_object_an_array_and_json_lines_are_all_accepted(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    at = "2026-06-13T06:00:00+09:00"
    one = write_json(tmp_path / "one.json", article_dict("o1", at))
    many = write_json(tmp_path / "many.json", [article_dict("m1", at), article_dict("m2", at)])
    lines = tmp_path / "lines.jsonl"
    lines.write_text(
        "\n".join(json.dumps(article_dict(f"l{i}", at)) for i in range(3)) + "\n", "utf-8"
    )
    report = import_sources(sessions, [one, many, str(lines)], clock)
    assert (report.imported, report.rejected, report.ok) == (6, 0, True)
    assert count(sessions, Article) == 6


def test_a_file_mixing_valid_and_invalid_articles_keeps_the_valid_ones(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    at = "2026-06-13T06:00:00+09:00"
    bad_lang = article_dict("bad-lang", at)
    bad_lang["content"]["de"] = {"title": "T", "summary": "S"}
    no_id = article_dict("ignored", at)
    del no_id["id"]
    items = [article_dict("good-1", at), bad_lang, article_dict("good-2", at), no_id]
    path = write_json(tmp_path / "mixed.json", items)
    report = import_sources(sessions, [path], clock)
    assert (report.imported, report.rejected, report.ok) == (2, 2, False)
    assert report.messages() == [
        f"{path}: article bad-lang: content.de: unknown language; expected ja or en",
        f"{path}: article #4: id: missing; expected a non-empty string",
    ]
    with sessions() as session:
        ids = set(session.scalars(select(Article.external_id)))
    assert ids == {"good-1", "good-2"}


def test_json_lines_with_a_bad_line_keeps_the_other_lines(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    at = "2026-06-13T06:00:00+09:00"
    path = tmp_path / "feed.jsonl"
    path.write_text(
        json.dumps(article_dict("l1", at))
        + '\n{"id": "l2", oops}\n\n'
        + json.dumps(article_dict("l3", at))
        + "\n",
        "utf-8",
    )
    report = import_sources(sessions, [str(path)], clock)
    assert (report.imported, report.rejected) == (2, 1)
    error = report.errors[0]
    assert isinstance(error, ArticleError)
    assert str(error) == (
        f"{path}: article #2: line 2: not valid JSON: "
        "Expecting property name enclosed in double quotes at column 14"
    )


def test_a_file_that_is_not_json_is_one_error_with_line_and_column(
    sqlite_sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    path = tmp_path / "notes.json"
    path.write_text('[\n  {"id": "a",\n   "url": nope}\n]\n', "utf-8")
    report = import_sources(sqlite_sessions, [str(path)], clock)
    assert not report.ok and report.rejected == 0
    assert report.messages() == [f"{path}: not valid JSON: Expecting value at line 3 column 11"]


def test_a_missing_file_does_not_stop_the_other_sources(
    sqlite_sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    good = write_json(tmp_path / "good.json", article_dict("g", "2026-06-13T06:00:00+09:00"))
    report = import_sources(sqlite_sessions, [str(tmp_path / "nope.json"), good], clock)
    assert report.imported == 1
    assert report.messages() == [f"{tmp_path / 'nope.json'}: no such file"]


def test_reimporting_the_same_article_counts_it_unchanged(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "a.json", full_article())
    import_sources(sessions, [path], clock)
    report = import_sources(sessions, [path], clock)
    assert (report.imported, report.updated, report.unchanged) == (0, 0, 1)


def test_reimporting_an_id_updates_the_article_in_place(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    first = full_article()
    import_sources(sessions, [write_json(tmp_path / "v1.json", first)], clock)
    with sessions() as session:
        original_id = session.scalar(select(Article.id))
    second = full_article()
    second["importance"] = 95
    second["content"]["ja"]["title"] = "改訂後の見出し"
    del second["content"]["en"]
    clock.advance(minutes=10)
    report = import_sources(sessions, [write_json(tmp_path / "v2.json", second)], clock)
    assert (report.imported, report.updated) == (0, 1)
    with sessions() as session:
        article = session.scalars(select(Article)).one()
        assert article.id == original_id
        assert article.importance == 95
        assert article.content("ja").title == "改訂後の見出し"  # type: ignore[union-attr]
        assert article.content("en") is None
        assert article.updated_at == clock.now()
    assert count(sessions, ArticleContent) == 1


def test_the_same_instant_written_with_another_offset_is_unchanged(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    tokyo = article_dict("t", "2026-06-13T06:00:00+09:00")
    utc = article_dict("t", "2026-06-12T21:00:00Z")
    import_sources(sessions, [write_json(tmp_path / "a.json", tokyo)], clock)
    report = import_sources(sessions, [write_json(tmp_path / "b.json", utc)], clock)
    assert report.unchanged == 1
