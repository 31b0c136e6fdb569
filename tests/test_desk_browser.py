"""The desk in headless Chromium: an editor's morning, screenshots at phone and desktop widths
with no horizontal overflow, and axe-core with no serious or critical violations.

axe-core is vendored in tests/data/axe-core (MPL-2.0, its licence beside it),
injected with the page's CSP bypassed for the injection only (the desk itself runs no script).
"""

from __future__ import annotations

import email
import json
from datetime import timedelta
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.accounts import audit
from newsletter.clock import FixedClock
from newsletter.config import Secret, load_settings
from newsletter.db.migrate import upgrade
from newsletter.db.models import Issue, IssueNote
from newsletter.db.session import make_engine, transaction
from newsletter.pipeline import Outcome, run_daily
from newsletter.providers.outbox import OutboxProvider
from newsletter.runtime import Runtime
from tests.desk_support import PASSWORD, make_user
from tests.fixtures.scheduler import outbox_recipients, seed_articles, seed_subscribers
from tests.fixtures.web import add_list, free_port, live_server

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "data" / "axe-core" / "axe.min.js"
DAY = "/desk/lists/daily/2026-06-13"


@pytest.fixture
def desk_runtime(tmp_path: Path, sqlite_url: str, clock: FixedClock) -> Any:
    port = free_port()
    settings = load_settings(
        {},
        database_url=sqlite_url,
        outbox_dir=tmp_path / "outbox",
        var_dir=tmp_path / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
        base_url=f"http://127.0.0.1:{port}",
        require_approval=True,
    )
    engine = make_engine(sqlite_url, create=True)
    upgrade(engine)
    engine.dispose()
    runtime = Runtime.open(settings, clock=clock)
    with transaction(runtime.sessions) as session:
        add_list(session, clock)
    seed_articles(runtime.sessions, [clock.now() - timedelta(hours=h) for h in (1, 2, 3, 4)])
    make_user(runtime, "hanako@example.jp", "editor")
    seed_subscribers(runtime.sessions, clock, 3)
    yield runtime, port
    runtime.close()


def _no_overflow(page: Any) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


def _axe(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {iframes: false})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _check(page: Any, shots: Path, name: str) -> None:
    """At 375 px and 1280 px: a screenshot, no horizontal overflow, no serious axe finding."""
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        _no_overflow(page)
        found = _axe(page)
        assert not found, f"{name} at {width}px: {json.dumps(found)}"


def _article_titles(page: Any) -> list[str]:
    items = page.locator("section[aria-labelledby=h-chosen] li.article [lang=en]")
    return [items.nth(i).inner_text() for i in range(items.count())]


def test_an_editor_adjusts_writes_a_note_and_approves_in_the_browser(
    desk_runtime: Any, chromium_browser: Any, tmp_path: Path
) -> None:
    runtime, port = desk_runtime
    shots = tmp_path / "shots"
    shots.mkdir()
    with live_server(runtime, port) as base:
        context = chromium_browser.new_context(
            viewport={"width": 1280, "height": 900}, locale="en-US", bypass_csp=True
        )
        page = context.new_page()
        page.goto(f"{base}/desk/")
        assert "/desk/sign-in" in page.url
        _check(page, shots, "sign-in")
        page.fill("#email", "hanako@example.jp")
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{base}/desk/")
        assert "not built" in page.content()
        _check(page, shots, "home")

        page.get_by_role("link", name="Open the issue").first.click()
        page.get_by_role("button", name="Build the issue now").click()
        page.wait_for_selector("text=The issue is built.")
        before = _article_titles(page)
        assert len(before) == 4

        # Exclude the first article, then move the (new) last one to the top.
        first = page.locator("section[aria-labelledby=h-chosen] li.article").first
        first.get_by_role("button", name="Exclude").click()
        page.wait_for_selector("text=The article is excluded.")
        after_exclude = _article_titles(page)
        assert after_exclude == before[1:]
        last = page.locator("section[aria-labelledby=h-chosen] li.article").last
        last.get_by_role("button", name="To the top").click()
        page.wait_for_selector("text=The order is changed.")
        assert _article_titles(page) == [after_exclude[-1], *after_exclude[:-1]]

        page.fill("#note_ja", "今朝は特集号です")
        page.fill("#note_en", "A special issue this morning")
        page.get_by_role("button", name="Save the note").click()
        page.wait_for_selector("text=The note is saved.")

        # Every variant shows the note and no longer has the excluded article.
        frames = page.locator("iframe")
        assert frames.count() == 8
        for frame in page.frames[1:]:
            frame.wait_for_load_state()
            text = frame.locator("body").inner_text()
            assert "今朝は特集号です" in text or "A special issue this morning" in text
            assert before[0] not in text
        widths = sorted(round(frames.nth(i).bounding_box()["width"]) for i in range(8))
        assert widths == [375] * 4 + [640] * 4
        _check(page, shots, "issue")

        page.get_by_role("button", name="Approve this issue").click()
        page.wait_for_selector("text=The issue is approved.")
        assert "Approved by hanako@example.jp" in page.content()

        page.get_by_role("link", name="Audit log").first.click()
        _check(page, shots, "audit")
        context.close()

    with runtime.sessions() as session:
        issue = session.scalars(select(Issue)).one()
        assert issue.approved_by == "hanako@example.jp"
        note = session.scalars(select(IssueNote)).one()
        assert note.note_en == "A special issue this morning"
        steps = [e.action for e in reversed(audit.entries(session, issue=issue))]
        assert steps == [
            "issue.build",
            "issue.exclude",
            "issue.reorder",
            "issue.note",
            "issue.approve",
        ]
        assert {e.actor for e in audit.entries(session, issue=issue)} == {"hanako@example.jp"}
        chosen = [item.article.content("en").title for item in issue.articles]
    assert chosen == [after_exclude[-1], *after_exclude[:-1]]

    # The scheduler's daily run, with NEWSLETTER_REQUIRE_APPROVAL on, sends exactly that.
    outbox = runtime.settings.outbox_dir
    report = run_daily(runtime, list_slug="daily", provider=OutboxProvider(outbox))
    assert report.outcome == Outcome.SENT
    assert sorted(outbox_recipients(outbox).values()) == [1, 1, 1]
    in_english = 0
    for path in Path(outbox).glob("issue-*/*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert "今朝は特集号です" in text or "A special issue this morning" in text
        excluded_ja = before[0].replace("Test article ", "テスト記事 その")
        assert before[0] not in text and excluded_ja not in text
        shown = [title for title in chosen if title in text]
        if shown:  # the variants with English titles list them in the editor's order
            assert shown == chosen
            assert sorted(shown, key=text.index) == chosen
            in_english += 1
    assert in_english >= 2  # the en and both readers


def test_the_sending_and_statistics_pages_fit_a_phone_and_pass_axe(
    desk_runtime: Any, chromium_browser: Any, tmp_path: Path
) -> None:
    runtime, port = desk_runtime
    make_user(runtime, "admin@example.jp", "admin")
    with transaction(runtime.sessions) as session:
        from tests.fixtures.web import add_issue

        issue_id = add_issue(session, runtime.clock, 1, issue_date=runtime.clock.now().date())
    with live_server(runtime, port) as base:
        context = chromium_browser.new_context(
            viewport={"width": 375, "height": 900}, locale="ja-JP", bypass_csp=True
        )
        page = context.new_page()
        page.goto(f"{base}/desk/sign-in")
        page.fill("#email", "admin@example.jp")
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name="サインイン", exact=True).click()
        page.wait_for_url(f"{base}/desk/")
        for name, path in (("sending", "sending"), ("stats", "stats")):
            page.goto(f"{base}/desk/issues/{issue_id}/{path}")
            _check(page, tmp_path, name)
        context.close()
