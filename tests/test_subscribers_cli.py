"""The `newsletter subscribers ...` and `newsletter lists ...` commands (thin wrappers)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from newsletter.cli.context import AppContext
from newsletter.cli.main import cli
from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.session import session_factory
from newsletter.paths import SAMPLES_DIR
from newsletter.runtime import Runtime


@pytest.fixture
def subs_app(migrated_sqlite_url: str, settings: Settings, clock: FixedClock) -> AppContext:
    """A CLI context on a migrated SQLite database with the test clock."""
    from newsletter.db.session import make_engine

    engine: Engine = make_engine(migrated_sqlite_url)
    context = AppContext()
    context._settings = settings
    context._runtime = Runtime(
        settings=settings, engine=engine, sessions=session_factory(engine), clock=clock
    )
    return context


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:  # SQLite only: the CLI adds no SQL
    from newsletter.config import Secret, load_settings

    return load_settings(
        {},
        database_url=sqlite_url,
        var_dir=tmp_path / "var",
        outbox_dir=tmp_path / "outbox",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
    )


def run(app: AppContext, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), obj=app, input=input)


def test_add_show_and_stats(subs_app: AppContext) -> None:
    added = run(
        subs_app, "subscribers", "add", "Mika@Example.jp", "--name", "Mika", "--language", "both"
    )
    assert added.exit_code == 0, added.output
    assert "Mika@example.jp: active on daily" in added.output
    shown = json.loads(run(subs_app, "subscribers", "show", "mika@example.jp", "--json").output)
    assert (shown["name"], shown["language"]) == ("Mika", "both")
    stats = json.loads(run(subs_app, "subscribers", "stats", "--json").output)
    assert stats["status"]["active"] == 1
    assert stats["active_by_language"]["both"] == 1


def test_errors_are_one_line_with_the_domain_exit_code(subs_app: AppContext) -> None:
    result = run(subs_app, "subscribers", "add", "broken")
    assert result.exit_code == 65
    assert "error:" in result.output and "@-sign" in result.output
    missing = run(subs_app, "subscribers", "show", "nobody@example.com")
    assert missing.exit_code == 66
    assert "n***@example.com" in missing.output  # masked, never the whole address


def test_import_then_list_and_export(subs_app: AppContext, tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    imported = run(
        subs_app,
        "subscribers",
        "import",
        str(SAMPLES_DIR / "subscribers.csv"),
        "--report",
        str(report),
        "--json",
    )
    assert imported.exit_code == 0, imported.output
    summary = json.loads(imported.output)
    assert summary["imported"] >= 24 and summary["rejected"] == 0
    listed = json.loads(run(subs_app, "subscribers", "list", "--json").output)
    assert len(listed) == summary["imported"]
    out = tmp_path / "export.csv"
    exported = run(subs_app, "subscribers", "export", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {r["consent_source"] for r in rows} == {"import"}


def test_unsubscribe_suppress_and_erase(subs_app: AppContext) -> None:
    run(subs_app, "subscribers", "add", "u@example.com")
    assert (
        "1 subscription ended"
        in run(subs_app, "subscribers", "unsubscribe", "u@example.com").output
    )
    assert (
        "0 subscriptions ended"
        in run(subs_app, "subscribers", "unsubscribe", "u@example.com").output
    )
    suppressed = run(subs_app, "subscribers", "suppress", "s@example.com", "--reason", "manual")
    assert "suppressed" in suppressed.output
    erased = run(subs_app, "subscribers", "erase", "u@example.com", "--yes")
    assert erased.exit_code == 0 and "erased" in erased.output
    data = json.loads(run(subs_app, "subscribers", "export-data", "u@example.com").output)
    assert data["found"] is False and data["suppression"]["reason"] == "erased"


def test_erase_asks_before_it_forgets(subs_app: AppContext) -> None:
    run(subs_app, "subscribers", "add", "keep@example.com")
    result = run(subs_app, "subscribers", "erase", "keep@example.com", input="n\n")
    assert result.exit_code == 1
    assert run(subs_app, "subscribers", "show", "keep@example.com").exit_code == 0


def test_remove_and_expire_pending(subs_app: AppContext, clock: FixedClock) -> None:
    run(subs_app, "subscribers", "add", "p@example.com", "--pending")
    clock.advance(days=8)
    expired = json.loads(run(subs_app, "subscribers", "expire-pending", "--json").output)
    assert expired == {"expired": 1}
    run(subs_app, "subscribers", "add", "r@example.com")
    assert (
        "1 subscription removed" in run(subs_app, "subscribers", "remove", "r@example.com").output
    )


def test_lists_create_and_list(subs_app: AppContext) -> None:
    created = run(
        subs_app, "lists", "create", "weekly", "--name", "AI日報 Weekly", "--send-time", "08:00"
    )
    assert created.exit_code == 0, created.output
    data = json.loads(run(subs_app, "lists", "list", "--json").output)
    assert [(d["slug"], d["send_time"]) for d in data] == [("weekly", "08:00")]
    again = run(subs_app, "lists", "create", "weekly", "--name", "x")
    assert again.exit_code == 64 and "already exists" in again.output


@pytest.mark.parametrize(
    "command",
    [
        ["subscribers", name]
        for name in (
            "add",
            "show",
            "list",
            "stats",
            "remove",
            "unsubscribe",
            "suppress",
            "erase",
            "export-data",
            "expire-pending",
            "import",
            "export",
        )
    ]
    + [["lists", "create"], ["lists", "list"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_add_with_confirmation_writes_a_transactional_email_to_the_outbox(
    subs_app: AppContext, settings: Settings
) -> None:
    result = run(
        subs_app,
        "subscribers",
        "add",
        "Kenji@Example.jp",
        "--language",
        "en",
        "--send-confirmation",
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(run(subs_app, "subscribers", "show", "kenji@example.jp", "--json").output)
    assert shown["subscriptions"][0]["status"] == "pending"
    [eml] = list((settings.outbox_dir / "transactional").glob("*.eml"))
    raw = eml.read_bytes().decode("utf-8", errors="replace")
    assert "Kenji@example.jp" in raw
    assert "List-Unsubscribe" not in raw  # a confirmation is not a newsletter
    assert "/confirm/" in raw


def test_an_import_with_a_rejected_row_keeps_the_good_rows_and_exits_65(
    subs_app: AppContext, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email,name\ngood@example.jp,Good\nnot-an-address,Bad\n", encoding="utf-8")
    result = run(subs_app, "subscribers", "import", str(path), "--json")
    assert result.exit_code == 65
    summary = json.loads(result.output)
    assert (summary["imported"], summary["rejected"]) == (1, 1)
    assert summary["problems"][0]["line"] == 3


def test_a_clean_import_exits_0(subs_app: AppContext, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email\nok@example.jp\n", encoding="utf-8")
    assert run(subs_app, "subscribers", "import", str(path)).exit_code == 0
