"""`newsletter issue note|approve` and `newsletter audit`: the editor's desk on the command line."""

from __future__ import annotations

import json
from pathlib import Path

from newsletter.cli.context import AppContext
from tests.test_articles_cli import app, day_articles, run  # noqa: F401  (the `app` fixture)


def _built(app: AppContext, tmp_path: Path) -> None:  # noqa: F811
    assert run(app, "articles", "import", day_articles(tmp_path)).exit_code == 0
    assert run(app, "issue", "build").exit_code == 0


def test_approve_is_shown_by_issue_status(app: AppContext, tmp_path: Path) -> None:  # noqa: F811
    _built(app, tmp_path)
    approved = run(app, "issue", "approve", "2026-06-13")
    assert approved.exit_code == 0, approved.output
    assert "approved by cli:" in approved.output
    status = json.loads(run(app, "issue", "status", "2026-06-13", "--json").output)
    assert status["approved_by"].startswith("cli:")
    assert status["approved_at"]


def test_a_note_written_on_the_command_line_is_shown_back(
    app: AppContext,  # noqa: F811
    tmp_path: Path,
) -> None:
    _built(app, tmp_path)
    assert run(app, "issue", "note", "--ja", "本日は特集です", "--en", "Special").exit_code == 0
    shown = json.loads(run(app, "issue", "note", "--json").output)
    assert (shown["ja"], shown["en"]) == ("本日は特集です", "Special")
    assert run(app, "issue", "note", "--en", "Changed").exit_code == 0
    shown = json.loads(run(app, "issue", "note", "--json").output)
    assert (shown["ja"], shown["en"]) == ("本日は特集です", "Changed")
    assert run(app, "issue", "note", "--clear").exit_code == 0
    assert "no editor's note" in run(app, "issue", "note").output


def test_the_audit_log_lists_each_step_newest_first(app: AppContext, tmp_path: Path) -> None:  # noqa: F811
    _built(app, tmp_path)
    run(app, "issue", "exclude", "alpha")
    run(app, "issue", "approve", "2026-06-13")
    entries = json.loads(run(app, "audit", "--issue", "2026-06-13", "--json").output)
    assert [e["action"] for e in entries] == ["issue.approve", "issue.exclude"]
    assert entries[1]["subject"] == "alpha"
    assert all(e["actor"].startswith("cli:") and e["role"] == "admin" for e in entries)


def test_an_overlong_note_is_refused_with_its_length(app: AppContext, tmp_path: Path) -> None:  # noqa: F811
    _built(app, tmp_path)
    result = run(app, "issue", "note", "--en", "x" * 2001)
    assert result.exit_code == 65
    assert "note_en: 2001 characters; a note has at most 2000" in result.output


def test_issue_list_shows_the_built_issue_with_its_approval(
    app: AppContext,  # noqa: F811
    tmp_path: Path,
) -> None:
    _built(app, tmp_path)
    run(app, "issue", "approve", "2026-06-13")
    [row] = json.loads(run(app, "issue", "list", "--json").output)
    assert (row["list"], row["date"], row["status"], row["articles"]) == (
        "daily",
        "2026-06-13",
        "built",
        3,
    )
    assert row["approved_by"].startswith("cli:")
    assert "daily:2026-06-13" in run(app, "issue", "list").output
