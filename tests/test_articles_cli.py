"""The `newsletter articles ...` and `newsletter issue build|pin|exclude|unpin|reorder` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from newsletter.cli.context import AppContext
from newsletter.cli.main import cli
from newsletter.clock import FixedClock
from newsletter.config import Secret, load_settings
from newsletter.db.session import make_engine, session_factory
from newsletter.runtime import Runtime
from tests.fixtures.articles import article_dict, write_json


@pytest.fixture
def app(migrated_sqlite_url: str, tmp_path: Path) -> AppContext:
    """A CLI context on a migrated SQLite database, with the clock at 06:30 JST, June 13."""
    settings = load_settings(
        {},
        database_url=migrated_sqlite_url,
        var_dir=tmp_path / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
    )
    engine = make_engine(migrated_sqlite_url)
    context = AppContext()
    context._settings = settings
    context._runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        clock=FixedClock(datetime(2026, 6, 12, 21, 30, tzinfo=UTC)),
    )
    return context


def run(app: AppContext, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=app)


def day_articles(tmp_path: Path) -> str:
    items: list[dict[str, Any]] = [
        article_dict("alpha", "2026-06-13T05:00:00+09:00", importance=90, title="Alpha news"),
        article_dict("beta", "2026-06-13T04:00:00+09:00", importance=60, title="Beta news"),
        article_dict("gamma", "2026-06-12T10:00:00+09:00", importance=30, title="Gamma news"),
    ]
    return write_json(tmp_path / "day.json", items)


def test_import_reports_counts_and_each_rejected_article(app: AppContext, tmp_path: Path) -> None:
    bad = article_dict("broken", "2026-06-13T05:00:00")
    path = write_json(tmp_path / "in.json", [article_dict("ok", "2026-06-13T05:00:00Z"), bad])
    result = run(app, "articles", "import", path)
    assert result.exit_code == 65
    assert f"error: {path}: article broken: published_at: timestamp" in result.output
    assert "imported 1, updated 0, unchanged 0, rejected 1" in result.output


def test_import_json_output_is_machine_readable(app: AppContext, tmp_path: Path) -> None:
    result = run(app, "articles", "import", day_articles(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["imported"] == 3


def test_list_by_local_date(app: AppContext, tmp_path: Path) -> None:
    run(app, "articles", "import", day_articles(tmp_path))
    result = run(app, "articles", "list", "--date", "2026-06-13", "--json")
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in json.loads(result.output)] == ["alpha", "beta"]


def test_show_prints_the_article_in_the_import_format(app: AppContext, tmp_path: Path) -> None:
    run(app, "articles", "import", day_articles(tmp_path))
    result = run(app, "articles", "show", "alpha", "--json")
    data = json.loads(result.output)
    assert data["id"] == "alpha" and data["content"]["en"]["title"] == "Alpha news"
    assert run(app, "articles", "show", "nope").exit_code == 66


def test_build_shows_the_chosen_articles_and_explains_the_rest(
    app: AppContext, tmp_path: Path
) -> None:
    run(app, "articles", "import", day_articles(tmp_path))
    result = run(app, "issue", "build", "--explain")
    assert result.exit_code == 0, result.output
    assert "built daily:2026-06-13" in result.output
    assert "1. Alpha news  (alpha)" in result.output
    assert "alpha: selected #1 (importance 90)" in result.output
    again = run(app, "issue", "build", "--json")
    data = json.loads(again.output)
    assert data["created"] is False and data["reason"] == "issue daily:2026-06-13 already built"


def test_build_with_nothing_to_send_says_why(app: AppContext) -> None:
    result = run(app, "issue", "build", "--date", "2026-06-13")
    assert result.exit_code == 0
    assert result.output.startswith("no issue built: only 0 articles")


def test_pin_exclude_and_reorder_rebuild_a_built_issue(app: AppContext, tmp_path: Path) -> None:
    run(app, "articles", "import", day_articles(tmp_path))
    run(app, "issue", "build")
    pinned = run(app, "issue", "pin", "gamma", "--date", "2026-06-13")
    assert pinned.exit_code == 0, pinned.output
    assert "pinned gamma for daily:2026-06-13" in pinned.output
    assert "1. Gamma news  (gamma) [pinned]" in pinned.output
    excluded = run(app, "issue", "exclude", "alpha")
    assert "alpha" not in excluded.output.split("excluded alpha")[1]
    reordered = run(app, "issue", "reorder", "beta")
    assert "2. Beta news  (beta)" in reordered.output
    cleared = run(app, "issue", "unpin", "alpha")
    assert "cleared: alpha" in cleared.output


def test_an_unknown_article_is_a_clear_error(app: AppContext) -> None:
    result = run(app, "issue", "pin", "missing-article")
    assert result.exit_code == 66
    assert "no article 'missing-article'" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["articles", "import"],
        ["articles", "list"],
        ["articles", "show"],
        ["issue", "build"],
        ["issue", "pin"],
        ["issue", "exclude"],
        ["issue", "unpin"],
        ["issue", "reorder"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_import_samples_fills_the_next_issue(app: AppContext) -> None:
    result = run(app, "articles", "import", "--samples")
    assert result.exit_code == 0, result.output
    assert "imported 9" in result.output
    built = run(app, "issue", "build", "--json")
    assert len(json.loads(built.output)["issue"]["articles"]) == 8


def test_import_needs_a_source(app: AppContext) -> None:
    result = run(app, "articles", "import")
    assert result.exit_code == 64
    assert "give at least one PATH_OR_URL, or --samples" in result.output
