"""`newsletter issue stats`, `newsletter lists trends` and `newsletter engagement purge`, on the
command line (SQLite: the numbers themselves are held on both databases elsewhere)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from newsletter.cli.context import AppContext
from newsletter.clock import FixedClock
from tests.engagement_support import standard_scene
from tests.test_articles_cli import app, run  # noqa: F401  (the `app` fixture)


def test_issue_stats_json_gives_the_numbers_by_date_reference(app: AppContext) -> None:  # noqa: F811
    standard_scene(app.runtime().sessions)
    result = run(app, "issue", "stats", "2026-06-13", "--json", "--lang", "ja")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["reader_clicks"], data["unique_clickers"], data["ctr"]) == (6, 5, 0.5)
    assert data["machine_by_reason"]["head"] == 3
    assert data["articles"][0]["title"] == "次世代モデルが登場"
    assert data["articles"][0]["clicks_by_variant"]["ja"] == 3


def test_issue_stats_prints_the_table_and_the_open_reliability(app: AppContext) -> None:  # noqa: F811
    issue_id = standard_scene(app.runtime().sessions).issue_id
    result = run(app, "issue", "stats", str(issue_id))
    assert result.exit_code == 0, result.output
    assert "6 by readers, 5 readers clicked, click-through rate 50.0%" in result.output
    assert "4 clicks not counted (head 3, early 1)" in result.output
    first = next(line for line in result.output.splitlines() if line.startswith("  1  "))
    assert "The next model arrives" in first
    # clicks, readers, CTR, then clicks per variant: ja, en, both, both-en
    assert first.split()[-7:] == ["4", "3", "30.0%", "3", "1", "0", "0"]
    assert "50.0% of pixel fetches came from Apple Mail Privacy Protection" in result.output


def test_issue_stats_writes_a_utf8_csv(app: AppContext, tmp_path: Path) -> None:  # noqa: F811
    standard_scene(app.runtime().sessions)
    out = tmp_path / "stats.csv"
    result = run(app, "issue", "stats", "daily:2026-06-13", "--csv", str(out), "--lang", "ja")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert [r["title"] for r in rows][0] == "次世代モデルが登場"


def test_an_unknown_issue_is_exit_66_naming_it(app: AppContext) -> None:  # noqa: F811
    result = run(app, "issue", "stats", "2026-01-01")
    assert result.exit_code == 66
    assert "no issue daily:2026-01-01" in result.output


def test_lists_trends_json_lists_the_sent_issue(app: AppContext) -> None:  # noqa: F811
    standard_scene(app.runtime().sessions)
    result = run(app, "lists", "trends", "daily", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["issues"]
    assert (row["date"], row["ctr"], row["top_article"]) == (
        "2026-06-13", 0.5, "The next model arrives"
    )  # fmt: skip


def test_engagement_purge_dry_run_then_purge(app: AppContext) -> None:  # noqa: F811
    standard_scene(app.runtime().sessions)
    app._runtime = replace(app.runtime(), clock=FixedClock(datetime(2026, 9, 20, tzinfo=UTC)))
    dry = run(app, "engagement", "purge", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("would fold 1 issue: 10 clicks, 6 opens")
    done = json.loads(run(app, "engagement", "purge", "--json").output)
    assert (done["issues"], done["clicks"]) == ([1], 10)
    again = run(app, "engagement", "purge")
    assert again.output.startswith("folded 0 issues")
    stats = json.loads(run(app, "issue", "stats", "1", "--json").output)
    assert stats["reader_clicks"] == 6
