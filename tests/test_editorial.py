"""The editor's decisions with who made them: selection changes, the note, approval.

Run on SQLite and PostgreSQL (the `runtime` fixture follows `database_url`).
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from newsletter.accounts import audit
from newsletter.accounts.actors import Actor
from newsletter.accounts.roles import Role
from newsletter.clock import FixedClock
from newsletter.db.models import AuditEntry, Issue, IssueVariant, MailingList
from newsletter.db.session import transaction
from newsletter.delivery import operations
from newsletter.errors import PermissionDeniedError, StateError, ValidationError
from newsletter.issues import editorial
from newsletter.issues.assembly import build_issue
from newsletter.issues.variants import ensure_variants
from newsletter.pipeline import Outcome, run_daily, send_started
from newsletter.providers.outbox import OutboxProvider
from newsletter.runtime import Runtime
from newsletter.scheduler import catch_up_list
from tests.fixtures.scheduler import outbox_recipients, seed_subscribers

EDITOR = Actor("hanako@example.jp", Role.EDITOR)
VIEWER = Actor("viewer@example.jp", Role.VIEWER)
ADMIN = Actor("admin@example.jp", Role.ADMIN)


def _build(runtime: Runtime) -> int:
    with transaction(runtime.sessions) as session:
        result = build_issue(session, runtime.settings, runtime.clock, list_slug="daily")
        assert result.issue is not None
        return result.issue.id


def _issue_and_list(session, issue_id: int) -> tuple[Issue, MailingList]:
    issue = session.get_one(Issue, issue_id)
    return issue, issue.mailing_list


def _ids(issue: Issue) -> list[int]:
    return [item.article_id for item in issue.articles]


def test_an_editors_exclusion_rebuilds_the_issue_and_is_logged_with_the_editors_address(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        issue, mailing_list = _issue_and_list(session, issue_id)
        first = _ids(issue)[0]
        editorial.exclude(
            session, runtime.settings, runtime.clock, EDITOR, mailing_list, issue.issue_date, first
        )
    with runtime.sessions() as session:
        issue = session.get_one(Issue, issue_id)
        assert first not in _ids(issue)
        [entry] = audit.entries(session, issue=issue)
        assert (entry.actor, entry.role, entry.action) == (EDITOR.name, "editor", "issue.exclude")
        assert len(entry.before["articles"]) == len(entry.after["articles"]) + 1


def test_moving_an_article_to_the_top_puts_it_first(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        issue, mailing_list = _issue_and_list(session, issue_id)
        last = _ids(issue)[-1]
        editorial.reorder(
            session, runtime.settings, runtime.clock, EDITOR, mailing_list, issue.issue_date, [last]
        )
    with runtime.sessions() as session:
        assert _ids(session.get_one(Issue, issue_id))[0] == last


def test_a_viewer_cannot_change_the_selection_and_nothing_is_logged(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    issue_id = _build(runtime)
    with runtime.sessions() as session:
        issue, mailing_list = _issue_and_list(session, issue_id)
        before = _ids(issue)
        with pytest.raises(PermissionDeniedError, match="viewer"):
            editorial.exclude(
                session, runtime.settings, runtime.clock, VIEWER, mailing_list,
                issue.issue_date, before[0],
            )  # fmt: skip
        session.rollback()
    with runtime.sessions() as session:
        assert _ids(session.get_one(Issue, issue_id)) == before
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_approval_records_who_and_when(runtime: Runtime, todays_articles: list[int]) -> None:
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        editorial.approve(session, runtime.clock, EDITOR, session.get_one(Issue, issue_id))
    with runtime.sessions() as session:
        issue = session.get_one(Issue, issue_id)
        assert editorial.approval(issue) == (EDITOR.name, runtime.clock.now())


def test_any_later_change_withdraws_the_approval(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        issue, mailing_list = _issue_and_list(session, issue_id)
        editorial.approve(session, runtime.clock, EDITOR, issue)
        editorial.pin(
            session, runtime.settings, runtime.clock, EDITOR, mailing_list, issue.issue_date,
            _ids(issue)[-1],
        )  # fmt: skip
    with runtime.sessions() as session:
        issue = session.get_one(Issue, issue_id)
        assert editorial.approval(issue) is None
        pin = audit.entries(session, issue=issue)[0]
        assert pin.action == "issue.pin"
        assert pin.before["approval"]["approved_by"] == EDITOR.name


def test_a_note_change_withdraws_the_approval(runtime: Runtime, todays_articles: list[int]) -> None:
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        issue, mailing_list = _issue_and_list(session, issue_id)
        editorial.approve(session, runtime.clock, EDITOR, issue)
        editorial.set_note(
            session,
            runtime.clock,
            EDITOR,
            mailing_list,
            issue.issue_date,
            ja="本日は特集号",
            en=None,
        )
    with runtime.sessions() as session:
        assert editorial.approval(session.get_one(Issue, issue_id)) is None


def test_a_viewer_cannot_approve(runtime: Runtime, todays_articles: list[int]) -> None:
    issue_id = _build(runtime)
    with runtime.sessions() as session, pytest.raises(PermissionDeniedError):
        editorial.approve(session, runtime.clock, VIEWER, session.get_one(Issue, issue_id))


def test_an_issue_that_started_sending_cannot_be_approved_or_noted(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        session.get_one(Issue, issue_id).status = "sending"
    with runtime.sessions() as session:
        issue, mailing_list = _issue_and_list(session, issue_id)
        with pytest.raises(StateError, match="only a built issue"):
            editorial.approve(session, runtime.clock, EDITOR, issue)
        with pytest.raises(StateError, match="note can no longer change"):
            editorial.set_note(
                session, runtime.clock, EDITOR, mailing_list, issue.issue_date, ja="x", en=None
            )


# --- the note in the email ------------------------------------------------------------------


def _variants_with_note(runtime: Runtime, ja: str | None, en: str | None) -> dict[str, str]:
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        issue, mailing_list = _issue_and_list(session, issue_id)
        ensure_variants(session, issue, runtime.settings, runtime.clock)  # rendered before
        editorial.set_note(
            session, runtime.clock, EDITOR, mailing_list, issue.issue_date, ja=ja, en=en
        )
        stored = ensure_variants(session, issue, runtime.settings, runtime.clock)
        return {name: row.html + "\n---text---\n" + row.text for name, row in stored.items()}


def test_the_note_is_at_the_top_of_every_variant_in_its_language(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    out = _variants_with_note(runtime, "今日は特集号です。", "A special edition today.")
    assert "今日は特集号です。" in out["ja"] and "A special edition today." not in out["ja"]
    assert "A special edition today." in out["en"] and "今日は特集号です。" not in out["en"]
    both = out["both"]
    assert both.index("今日は特集号です。") < both.index("A special edition today.")
    both_en = out["both-en"]
    assert both_en.index("A special edition today.") < both_en.index("今日は特集号です。")
    html = out["ja"].split("---text---")[0]
    assert html.index("今日は特集号です。") < html.index("article-1")
    assert "編集部より" in html


def test_a_note_in_one_language_reaches_every_variant(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    out = _variants_with_note(runtime, None, "English only note")
    assert all("English only note" in text for text in out.values())
    assert 'lang="en"' in out["ja"].split("---text---")[0]


def test_the_note_is_escaped_and_its_addresses_are_links(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    out = _variants_with_note(
        runtime, "<script>alert(1)</script> 詳細: https://example.com/a?b=1&c=2。", None
    )
    html = out["ja"].split("---text---")[0]
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;" in html
    assert '<a href="https://example.com/a?b=1&amp;c=2"' in html


def test_a_note_with_a_control_character_is_refused_naming_the_field(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    issue_id = _build(runtime)
    with runtime.sessions() as session:
        issue, mailing_list = _issue_and_list(session, issue_id)
        with pytest.raises(
            ValidationError, match=r"note_en: control character U\+0007 at character 5"
        ):
            editorial.set_note(
                session, runtime.clock, EDITOR, mailing_list, issue.issue_date, ja=None,
                en="bell\x07",
            )  # fmt: skip


def test_a_note_change_renders_the_variants_again(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        issue, mailing_list = _issue_and_list(session, issue_id)
        ensure_variants(session, issue, runtime.settings, runtime.clock)
        editorial.set_note(
            session, runtime.clock, EDITOR, mailing_list, issue.issue_date, ja="注記", en=None
        )
        assert session.scalar(select(func.count()).select_from(IssueVariant)) == 0


# --- approval before sending ----------------------------------------------------------------


@pytest.fixture
def approval_runtime(runtime: Runtime) -> Runtime:
    settings = dataclasses.replace(runtime.settings, require_approval=True)
    return Runtime(
        settings=settings, engine=runtime.engine, sessions=runtime.sessions, clock=runtime.clock
    )


def test_with_approval_required_an_unapproved_issue_is_not_sent(
    approval_runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    runtime = approval_runtime
    seed_subscribers(runtime.sessions, clock, 3)
    report = run_daily(
        runtime, list_slug="daily", provider=OutboxProvider(runtime.settings.outbox_dir)
    )
    assert report.outcome == Outcome.AWAITING_APPROVAL
    assert "approve" in (report.reason or "")
    assert sum(outbox_recipients(runtime.settings.outbox_dir).values()) == 0


def test_with_approval_required_the_approved_selection_and_note_are_sent(
    approval_runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    runtime = approval_runtime
    addresses = seed_subscribers(runtime.sessions, clock, 3)
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        issue, mailing_list = _issue_and_list(session, issue_id)
        dropped = _ids(issue)[0]
        editorial.exclude(
            session, runtime.settings, runtime.clock, EDITOR, mailing_list, issue.issue_date,
            dropped,
        )  # fmt: skip
        editorial.set_note(
            session,
            runtime.clock,
            EDITOR,
            mailing_list,
            issue.issue_date,
            ja="承認済みの号",
            en=None,
        )
        editorial.approve(session, runtime.clock, EDITOR, issue)
        kept = _ids(issue)
    report = run_daily(
        runtime, list_slug="daily", provider=OutboxProvider(runtime.settings.outbox_dir)
    )
    assert report.outcome == Outcome.SENT
    assert outbox_recipients(runtime.settings.outbox_dir) == dict.fromkeys(addresses, 1)
    with runtime.sessions() as session:
        sent = session.get_one(Issue, issue_id)
        assert _ids(sent) == kept and dropped not in kept
        html = session.scalar(
            select(IssueVariant.html).where(
                IssueVariant.issue_id == issue_id, IssueVariant.variant == "ja"
            )
        )
        assert "承認済みの号" in html


def test_an_issue_not_approved_by_the_deadline_is_skipped_and_says_why(
    approval_runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    runtime = approval_runtime
    issue_id = _build(runtime)
    clock.advance(hours=5)  # 11:30 JST: past the 11:00 catch-up deadline
    result = catch_up_list(runtime, "daily")
    assert result.run is not None and result.run.outcome == Outcome.SKIPPED
    with runtime.sessions() as session:
        issue = session.get_one(Issue, issue_id)
        assert issue.status == "skipped"
        assert "not approved by the catch-up deadline 11:00" in (issue.note or "")


# --- sending actions ------------------------------------------------------------------------


def test_an_editor_cannot_start_or_cancel_a_send(
    runtime: Runtime, todays_articles: list[int]
) -> None:
    issue_id = _build(runtime)
    with runtime.sessions() as session:
        with pytest.raises(PermissionDeniedError, match="needs the admin role"):
            operations.start_send(session, runtime.settings, runtime.clock, EDITOR, issue_id)
        with pytest.raises(PermissionDeniedError):
            operations.cancel(session, runtime.clock, EDITOR, issue_id)


def test_an_admins_send_and_cancel_are_in_the_audit_log(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    seed_subscribers(runtime.sessions, clock, 2)
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        planned = operations.start_send(session, runtime.settings, runtime.clock, ADMIN, issue_id)
        cancelled = operations.cancel(session, runtime.clock, ADMIN, issue_id)
    assert planned.total == 2 and cancelled == 2
    with runtime.sessions() as session:
        actions = [e.action for e in audit.entries(session, issue=session.get_one(Issue, issue_id))]
    assert actions == ["issue.cancel", "issue.send"]


def test_a_send_started_by_an_admin_is_delivered_once_under_the_send_claim(
    runtime: Runtime, todays_articles: list[int], clock: FixedClock
) -> None:
    addresses = seed_subscribers(runtime.sessions, clock, 3)
    issue_id = _build(runtime)
    with transaction(runtime.sessions) as session:
        operations.start_send(session, runtime.settings, runtime.clock, ADMIN, issue_id)
    outbox = OutboxProvider(runtime.settings.outbox_dir)
    report = send_started(runtime, issue_id, provider=outbox)
    assert report.outcome == Outcome.SENT
    again = send_started(runtime, issue_id, provider=outbox)
    assert again.outcome == Outcome.ALREADY_DONE
    assert outbox_recipients(runtime.settings.outbox_dir) == dict.fromkeys(addresses, 1)
