"""The command line as a new user meets it: exit codes, one-line errors, honest wording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from newsletter.articles.samples import import_samples
from newsletter.cli.context import AppContext, plural
from newsletter.cli.main import cli
from newsletter.clock import FixedClock
from newsletter.config import Secret, Settings, load_settings
from newsletter.db.session import make_engine, session_factory
from newsletter.runtime import Runtime
from tests.fixtures.articles import article_dict, write_json


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:  # SQLite only: the CLI adds no SQL
    return load_settings(
        {},
        database_url=sqlite_url,
        var_dir=tmp_path / "var",
        outbox_dir=tmp_path / "outbox",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
    )


@pytest.fixture
def app(migrated_sqlite_url: str, settings: Settings, clock: FixedClock) -> AppContext:
    engine: Engine = make_engine(migrated_sqlite_url)
    context = AppContext()
    context._settings = settings
    context._runtime = Runtime(
        settings=settings, engine=engine, sessions=session_factory(engine), clock=clock
    )
    return context


def run(app: AppContext | None, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=app)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    "args",
    [
        ["issue", "status", "1", "--bogus"],
        ["issue", "status"],
        ["articles", "import"],
        ["subscribers", "add", "a@example.com", "--language", "fr"],
    ],
)
def test_usage_errors_exit_64_in_one_line(app: AppContext, args: list[str]) -> None:
    result = run(app, *args)
    assert result.exit_code == 64, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("error: ") and "--help" in result.output


def test_an_unknown_command_points_to_the_group_that_has_it() -> None:
    result = run(None, "send", "1")
    assert result.exit_code == 64
    assert "`newsletter issue send`" in result.output
    both = run(None, "import", "x.csv")
    assert "`newsletter articles import`" in both.output
    assert "`newsletter subscribers import`" in both.output


@pytest.mark.parametrize(
    "args",
    [
        ["issue", "build", "--date", "2026-02-30"],
        ["articles", "list", "--date", "2026-02-30"],
        ["run", "--date", "2026-02-30"],
        ["issue", "status", "2026-02-30"],
        ["issue", "preview", "daily:2026-02-30"],
    ],
)
def test_an_impossible_date_is_a_usage_error(app: AppContext, args: list[str]) -> None:
    result = run(app, *args)
    assert result.exit_code == 64, result.output
    assert error_lines(result) and len(result.output.strip().splitlines()) == 1
    assert "2026-02-30" in result.output and "real date" in result.output


def test_a_missing_input_file_exits_66(app: AppContext, tmp_path: Path) -> None:
    articles = run(app, "articles", "import", str(tmp_path / "missing.json"))
    assert articles.exit_code == 66
    assert "missing.json: no such file" in articles.output
    people = run(app, "subscribers", "import", str(tmp_path / "missing.csv"))
    assert people.exit_code == 66
    assert error_lines(people) == [f"error: {tmp_path / 'missing.csv'}: no such file"]


def test_a_present_file_with_bad_articles_still_exits_65(app: AppContext, tmp_path: Path) -> None:
    path = write_json(tmp_path / "bad.json", [article_dict("bad", "2026-06-13T05:00:00")])
    assert run(app, "articles", "import", path).exit_code == 65


def test_read_only_commands_create_nothing_in_an_empty_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("NEWSLETTER_DATABASE_URL", "NEWSLETTER_SECRET_KEY", "NEWSLETTER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for args in (["issue", "status", "1"], ["articles", "list"], ["subscribers", "stats"]):
        result = run(None, *args)
        assert result.exit_code == 69, result.output
        assert error_lines(result) == [
            "error: no database at var/newsletter.db: run `newsletter init` (or `newsletter demo`)"
        ]
    assert list(tmp_path.iterdir()) == []


def test_demo_samples_imported_again_the_same_day_are_unchanged(
    app: AppContext, clock: FixedClock
) -> None:
    runtime = app.runtime()
    first = import_samples(runtime.sessions, clock, runtime.settings)
    assert (first.imported, first.updated) == (9, 0)
    clock.advance(minutes=7)
    again = import_samples(runtime.sessions, clock, runtime.settings)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 9)
    clock.advance(days=1)  # the next day's window: re-dated, so they are updated
    next_day = import_samples(runtime.sessions, clock, runtime.settings)
    assert next_day.updated == 9


def test_show_prints_the_unsubscribe_time_not_the_sign_up_time(
    app: AppContext, clock: FixedClock
) -> None:
    assert run(app, "subscribers", "add", "mika@example.jp").exit_code == 0
    signed_up = clock.now().isoformat()
    clock.advance(days=3)
    assert run(app, "subscribers", "unsubscribe", "mika@example.jp").exit_code == 0
    shown = run(app, "subscribers", "show", "mika@example.jp")
    line = next(row for row in shown.output.splitlines() if "daily:" in row)
    assert f"subscribed {signed_up}" in line
    assert f"unsubscribed {clock.now().isoformat()}" in line
    assert "since" not in line


def test_json_output_keeps_japanese_readable(app: AppContext, tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "ja.json",
        [
            article_dict(
                "ja-1", "2026-06-13T05:00:00+09:00", languages=("ja",), title="生成AIの新潮流"
            )
        ],
    )
    assert run(app, "articles", "import", path).exit_code == 0
    assert run(app, "subscribers", "add", "taro@example.jp", "--name", "山田 太郎").exit_code == 0
    for args in (
        ["articles", "show", "ja-1", "--json"],
        ["articles", "list", "--json"],
        ["articles", "import", path, "--json"],
        ["subscribers", "show", "taro@example.jp", "--json"],
        ["subscribers", "list", "--json"],
    ):
        result = run(app, *args)
        assert result.exit_code == 0, result.output
        json.loads(result.output)
        assert "\\u" not in result.output, args
    assert "生成AIの新潮流" in run(app, "articles", "show", "ja-1", "--json").output
    assert "山田 太郎" in run(app, "subscribers", "list", "--json").output


def test_counts_are_pluralised(app: AppContext, tmp_path: Path) -> None:
    assert [plural(n, "article") for n in (0, 1, 2)] == ["0 articles", "1 article", "2 articles"]
    path = write_json(tmp_path / "one.json", [article_dict("solo", "2026-06-13T05:00:00+09:00")])
    assert run(app, "articles", "import", path).exit_code == 0
    built = run(app, "issue", "build")
    assert ": 1 article\n" in built.output, built.output
    assert run(app, "subscribers", "add", "mika@example.jp").exit_code == 0
    removed = run(app, "subscribers", "remove", "mika@example.jp")
    assert "1 subscription removed" in removed.output
    expired = run(app, "subscribers", "expire-pending")
    assert "0 pending subscriptions expired" in expired.output
