"""Control characters at the import boundary: refused per field, never stored, never fatal.

PostgreSQL cannot store NUL in text (the whole import used to fail with a driver error) and
SQLite stored it silently; both now reject the one field and keep every valid item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.articles.ingest import import_sources
from newsletter.articles.schema import validate_article
from newsletter.cli.main import cli
from newsletter.clock import FixedClock
from newsletter.db.models import Article
from tests.fixtures.articles import article_dict, write_json


def _article(ident: str, **content: Any) -> dict[str, Any]:
    data = article_dict(ident, "2026-06-13T06:00:00+09:00", languages=("ja",))
    data["content"]["ja"].update(content)
    return data


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("title", "見出し\x00", "content.ja.title"),
        ("title", "two\nlines", "content.ja.title"),
        ("title", "tab\there", "content.ja.title"),
        ("summary", "要約\x00です", "content.ja.summary"),
        ("summary", "bell\x07", "content.ja.summary"),
        ("body", "delete\x7f", "content.ja.body"),
        ("editor_comment", "esc\x1b[31m", "content.ja.editor_comment"),
    ],
)
def test_a_control_character_rejects_the_field_naming_the_article(
    field: str, value: str, path: str
) -> None:
    result = validate_article(_article("a1", **{field: value}), source="in.json", position=1)
    assert isinstance(result, list) and len(result) == 1
    message = str(result[0])
    assert message.startswith(f"in.json: article a1: {path}: control character U+")
    assert "\n" not in message and "\x00" not in message


def test_multi_line_fields_keep_tabs_and_line_breaks_one_line_fields_do_not() -> None:
    raw = _article("a1", title="見出し\t", summary="一行目\n二行目", body="段落\r\n\r\n\t次の段落")
    result = validate_article(raw, source="in.json", position=1)
    assert isinstance(result, list)
    assert [e.field for e in result] == ["content.ja.title"]  # summary and body are fine


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda a: a.update(url="https://example.org/a\x00"), "url"),
        (lambda a: a.update(source_name="Wire\x00"), "source_name"),
        (lambda a: a.update(tags=["ok", "bad\x00"]), "tags[1]"),
        (
            lambda a: a["content"]["ja"].update(key_points=[{"heading": "h\x00", "body": "b"}]),
            "content.ja.key_points[0].heading",
        ),
        (
            lambda a: a["content"]["ja"].update(
                related=[{"title": "t", "summary": "s\x00", "url": "https://example.org/r"}]
            ),
            "content.ja.related[0].summary",
        ),
    ],
)
def test_every_text_field_is_checked(mutate: Any, path: str) -> None:
    raw = _article("a1")
    mutate(raw)
    result = validate_article(raw, source="in.json", position=1)
    assert isinstance(result, list)
    assert [e.field for e in result] == [path]


def test_an_id_with_a_control_character_is_named_by_position() -> None:
    raw = _article("bad\nid")
    raw["url"] = "https://example.org/ai-daily/articles/bad-id"
    raw["content"]["ja"].update(title="t", summary="s")
    result = validate_article(raw, source="in.json", position=3)
    assert isinstance(result, list)
    assert [str(e) for e in result] == [
        "in.json: article #3: id: control character U+000A at character 4; "
        "expected one line of text"
    ]


def test_a_nul_costs_only_its_own_article(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    path = write_json(
        tmp_path / "in.json",
        [_article("good-1"), _article("bad", summary="NUL\x00here"), _article("good-2")],
    )
    report = import_sources(sessions, [path], clock)
    assert (report.imported, report.rejected) == (2, 1)
    assert report.messages() == [
        f"{path}: article bad: content.ja.summary: control character U+0000 at character 4; "
        "only tab and line breaks are allowed here"
    ]
    with sessions() as session:
        ids = set(session.scalars(select(Article.external_id)))
    assert ids == {"good-1", "good-2"}


def test_the_cli_reports_one_line_and_exits_65(tmp_path: Path, sqlite_url: str) -> None:
    path = write_json(tmp_path / "in.json", [_article("good"), _article("bad", title="x\x00")])
    env = {
        "NEWSLETTER_DATABASE_URL": sqlite_url,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_CONFIG": "",
    }
    assert CliRunner().invoke(cli, ["init"], env=env).exit_code == 0
    result = CliRunner().invoke(cli, ["articles", "import", path], env=env)
    assert result.exit_code == 65
    assert result.stderr.splitlines() == [
        f"error: {path}: article bad: content.ja.title: control character U+0000 at "
        "character 2; expected one line of text"
    ]
    assert "imported 1, updated 0, unchanged 0, rejected 1" in result.stdout


def test_a_c1_control_character_is_refused_like_a_c0_one() -> None:
    from newsletter.types import control_character_problem

    assert control_character_problem("Taro\x85Yamada") == (
        "control character U+0085 at character 5; expected one line of text"
    )
    assert control_character_problem("café ＡＩ日報") is None
