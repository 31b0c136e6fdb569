"""The desk's pages and forms through the real app: each role's rights enforced by the server,
the selection adjusted with plain forms, the note, approval, test send and the send's ledger."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from newsletter.accounts import audit
from newsletter.clock import FixedClock
from newsletter.db.models import Issue
from newsletter.db.session import transaction
from newsletter.runtime import Runtime
from newsletter.web.desk.i18n import DESK_MESSAGES
from newsletter.web.i18n import MESSAGES
from tests.desk_support import csrf_of, make_user, sign_in
from tests.fixtures.scheduler import seed_articles
from tests.fixtures.web import add_issue, add_list

DAY = "/desk/lists/daily/2026-06-13"


@pytest.fixture
def day(web_runtime: Runtime, clock: FixedClock) -> list[int]:
    """The `daily` list, three articles for June 13, and one account per role."""
    with transaction(web_runtime.sessions) as session:
        add_list(session, clock)
    ids = seed_articles(web_runtime.sessions, [clock.now() - timedelta(hours=h) for h in (1, 2, 3)])
    for role in ("viewer", "editor", "admin"):
        make_user(web_runtime, f"{role}@example.com", role)
    return ids


def _as(client: TestClient, role: str) -> str:
    """Sign in as the role's account; the CSRF token its pages carry."""
    sign_in(client, f"{role}@example.com")
    return csrf_of(client.get("/desk/").text)


def _post(client: TestClient, path: str, csrf: str, **data: object):
    return client.post(path, data={"csrf": csrf, **data}, follow_redirects=False)


def _chosen(runtime: Runtime) -> list[int]:
    with runtime.sessions() as session:
        issue = session.scalars(select(Issue)).one()
        return [item.article_id for item in issue.articles]


def _built(client: TestClient, csrf: str) -> None:
    assert _post(client, DAY + "/build", csrf).status_code == 303


def test_home_shows_the_next_issue_not_built_with_its_local_send_time(
    web_client: TestClient, day: list[int]
) -> None:
    _as(web_client, "viewer")
    page = web_client.get("/desk/?hl=en").text
    assert 'href="/desk/lists/daily/2026-06-13"' in page
    assert "not built" in page
    assert "07:00" in page and "Asia/Tokyo" in page


def test_home_follows_the_issue_from_built_to_approved(
    web_client: TestClient, day: list[int]
) -> None:
    csrf = _as(web_client, "editor")
    _built(web_client, csrf)
    assert "state-built" in web_client.get("/desk/").text
    assert _post(web_client, DAY + "/approve", csrf).status_code == 303
    page = web_client.get("/desk/?hl=en").text
    assert "state-approved" in page and "approved by editor@example.com" in page


def test_the_issue_page_explains_every_candidate(web_client: TestClient, day: list[int]) -> None:
    _as(web_client, "viewer")
    page = web_client.get(DAY + "?hl=en").text
    assert page.count('class="article"') == 3
    assert "Chosen by importance" in page
    assert "Test article 1" in page and "テスト記事 その1" in page


def test_an_editor_excludes_an_article_and_the_audit_log_names_them(
    web_client: TestClient, web_runtime: Runtime, day: list[int]
) -> None:
    csrf = _as(web_client, "editor")
    _built(web_client, csrf)
    first = _chosen(web_runtime)[0]
    response = _post(web_client, DAY + "/articles/exclude", csrf, article_id=first)
    assert response.status_code == 303 and response.headers["location"].startswith(DAY)
    assert first not in _chosen(web_runtime)
    page = web_client.get(DAY + "?hl=en").text
    assert "Excluded by an editor" in page
    with web_runtime.sessions() as session:
        entry = audit.entries(session)[0]
        assert (entry.actor, entry.action) == ("editor@example.com", "issue.exclude")


def test_an_editor_moves_the_last_article_to_the_top(
    web_client: TestClient, web_runtime: Runtime, day: list[int]
) -> None:
    csrf = _as(web_client, "editor")
    _built(web_client, csrf)
    last = _chosen(web_runtime)[-1]
    assert _post(web_client, DAY + "/articles/top", csrf, article_id=last).status_code == 303
    assert _chosen(web_runtime)[0] == last


def test_moving_down_and_up_swaps_neighbours(
    web_client: TestClient, web_runtime: Runtime, day: list[int]
) -> None:
    csrf = _as(web_client, "editor")
    _built(web_client, csrf)
    a, b, c = _chosen(web_runtime)
    _post(web_client, DAY + "/articles/down", csrf, article_id=a)
    assert _chosen(web_runtime) == [b, a, c]
    _post(web_client, DAY + "/articles/up", csrf, article_id=c)
    assert _chosen(web_runtime) == [b, c, a]


def test_the_note_is_saved_in_both_languages_and_shown_escaped(
    web_client: TestClient, day: list[int]
) -> None:
    csrf = _as(web_client, "editor")
    note = {"note_ja": "本日は<特集>です", "note_en": "Today: a special https://example.com"}
    assert _post(web_client, DAY + "/note", csrf, **note).status_code == 303
    page = web_client.get(DAY).text
    assert "本日は&lt;特集&gt;です" in page and "<特集>" not in page
    assert "Today: a special https://example.com" in page


def test_a_change_after_approval_withdraws_it(
    web_client: TestClient, web_runtime: Runtime, day: list[int]
) -> None:
    csrf = _as(web_client, "editor")
    _built(web_client, csrf)
    _post(web_client, DAY + "/approve", csrf)
    _post(web_client, DAY + "/articles/exclude", csrf, article_id=_chosen(web_runtime)[0])
    with web_runtime.sessions() as session:
        assert session.scalars(select(Issue)).one().approved_at is None


def test_the_issue_page_shows_every_variant_at_375_and_640_px(
    web_client: TestClient, day: list[int]
) -> None:
    csrf = _as(web_client, "editor")
    _built(web_client, csrf)
    response = web_client.get(DAY)
    assert response.text.count('class="phone"') == 4 and response.text.count('class="desktop"') == 4
    assert "frame-src 'self'" in response.headers["content-security-policy"]
    src = re.search(r'src="(/desk/issues/\d+/frame/ja)"', response.text)
    assert src is not None
    frame = web_client.get(src.group(1))
    assert frame.status_code == 200 and frame.headers["x-frame-options"] == "SAMEORIGIN"
    assert "https://news.example.com/u/preview" in frame.text


def test_a_test_send_goes_to_the_editors_own_address_only(
    web_client: TestClient, web_runtime: Runtime, day: list[int]
) -> None:
    csrf = _as(web_client, "editor")
    _built(web_client, csrf)
    assert _post(web_client, DAY + "/test-send", csrf).status_code == 303
    outbox = Path(web_runtime.settings.outbox_dir)
    sent = [
        email.message_from_bytes(p.read_bytes(), policy=default_policy)
        for p in outbox.rglob("*.eml")
    ]
    assert len(sent) == 4  # one per variant
    assert {str(m["To"]) for m in sent} == {"editor@example.com"}
    assert all(str(m["Subject"]).startswith("[TEST]") for m in sent)


@pytest.mark.parametrize(
    "path, data",
    [
        (DAY + "/approve", {}),
        (DAY + "/articles/exclude", {"article_id": "1"}),
        (DAY + "/note", {"note_en": "hi"}),
        (DAY + "/build", {}),
        (DAY + "/test-send", {}),
    ],
    ids=["approve", "exclude", "note", "build", "test-send"],
)
def test_a_viewers_editorial_post_is_refused_with_403(
    web_client: TestClient, web_runtime: Runtime, day: list[int], path: str, data: dict
) -> None:
    csrf = _as(web_client, "viewer")
    response = _post(web_client, path, csrf, **data)
    assert response.status_code == 403
    with web_runtime.sessions() as session:
        assert audit.entries(session)[0].action == "user.add"  # nothing happened


@pytest.mark.parametrize("action", ["send", "pause", "resume", "cancel", "retry"])
def test_an_editors_send_is_refused_with_403_even_when_posted_directly(
    web_client: TestClient, web_runtime: Runtime, day: list[int], action: str
) -> None:
    csrf = _as(web_client, "editor")
    _built(web_client, csrf)
    with web_runtime.sessions() as session:
        issue_id = session.scalars(select(Issue.id)).one()
    response = _post(web_client, f"/desk/issues/{issue_id}/{action}", csrf)
    assert response.status_code == 403
    with web_runtime.sessions() as session:
        assert session.get_one(Issue, issue_id).status == "built"


def test_a_viewer_sees_no_editing_buttons(web_client: TestClient, day: list[int]) -> None:
    csrf = _as(web_client, "viewer")
    page = web_client.get(DAY).text
    assert "/articles/exclude" not in page and "/approve" not in page
    assert csrf


def test_a_post_without_the_csrf_token_is_refused_even_for_an_admin(
    web_client: TestClient, web_runtime: Runtime, day: list[int]
) -> None:
    _as(web_client, "admin")
    response = web_client.post(DAY + "/build", data={}, follow_redirects=False)
    assert response.status_code == 403
    with web_runtime.sessions() as session:
        assert session.scalars(select(Issue)).first() is None


def test_a_csrf_token_of_another_session_is_refused(
    web_client: TestClient, web_runtime: Runtime, day: list[int]
) -> None:
    stolen = _as(web_client, "editor")
    web_client.cookies.clear()
    _as(web_client, "admin")
    assert _post(web_client, DAY + "/build", stolen).status_code == 403


def test_an_admin_pauses_and_resumes_a_send(
    web_client: TestClient, web_runtime: Runtime, clock: FixedClock, day: list[int]
) -> None:
    with transaction(web_runtime.sessions) as session:
        list_id = session.scalars(select(Issue.list_id)).first() or 1
        issue_id = add_issue(session, clock, list_id, status="sending")
    csrf = _as(web_client, "admin")
    page = web_client.get(f"/desk/issues/{issue_id}/sending?hl=en").text
    assert '<meta http-equiv="refresh" content="5">' in page and "Accepted" in page
    assert _post(web_client, f"/desk/issues/{issue_id}/pause", csrf).status_code == 303
    with web_runtime.sessions() as session:
        assert session.get_one(Issue, issue_id).status == "paused"
        assert audit.entries(session)[0].actor == "admin@example.com"
    assert "refresh" not in web_client.get(f"/desk/issues/{issue_id}/sending").text


def test_the_sending_page_counts_the_ledger(
    web_client: TestClient, web_runtime: Runtime, web_seed
) -> None:
    make_user(web_runtime, "viewer@example.com", "viewer")
    _as(web_client, "viewer")
    page = web_client.get(f"/desk/issues/{web_seed.issue_id}/sending?hl=en").text
    assert re.search(r"Accepted</th><td>1<", page)
    stats = web_client.get(f"/desk/issues/{web_seed.issue_id}/stats?hl=en")
    assert stats.status_code == 200 and "Delivered" in stats.text


def test_the_audit_page_lists_the_steps_with_the_editors_address(
    web_client: TestClient, web_runtime: Runtime, day: list[int]
) -> None:
    csrf = _as(web_client, "editor")
    _built(web_client, csrf)
    _post(web_client, DAY + "/approve", csrf)
    page = web_client.get("/desk/audit").text
    assert page.count("editor@example.com") >= 3  # header, build, approve
    assert "issue.approve" in page and "issue.build" in page


def test_pages_follow_the_accounts_language_then_the_browser(
    web_client: TestClient, day: list[int]
) -> None:
    _as(web_client, "viewer")
    assert "今日の号" in web_client.get("/desk/", headers={"Accept-Language": "ja"}).text
    assert "Today&#39;s issues" in web_client.get("/desk/", headers={"Accept-Language": "en"}).text
    assert "今日の号" in web_client.get("/desk/?hl=ja", headers={"Accept-Language": "en"}).text


def test_an_unknown_list_or_date_is_404(web_client: TestClient, day: list[int]) -> None:
    _as(web_client, "viewer")
    assert web_client.get("/desk/lists/nope/2026-06-13").status_code == 404
    assert web_client.get("/desk/lists/daily/2026-02-30").status_code == 404


def test_every_desk_message_exists_in_both_languages() -> None:
    for key, texts in DESK_MESSAGES.items():
        assert set(texts) == {"ja", "en"} and all(texts.values()), key
        assert texts["ja"] != texts["en"] or key.startswith("role_"), key


def test_every_key_the_desk_templates_use_is_in_the_catalog() -> None:
    from newsletter.paths import templates_dir

    used: set[str] = set()
    for path in (templates_dir() / "web" / "desk").glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_]+)'\s*[,)]", path.read_text(encoding="utf-8")))
    missing = {k for k in used if k not in DESK_MESSAGES and k not in MESSAGES}
    assert not missing
    states = ["not_built", "built", "approved", "sending", "paused", "sent"]
    states += ["sent_with_failures", "failed", "cancelled", "skipped"]
    assert all(f"state_{s}" in DESK_MESSAGES for s in states)


def test_home_asks_for_a_look_at_yesterdays_issue_that_ended_with_failures(
    web_client: TestClient, web_runtime: Runtime, clock: FixedClock, day: list[int]
) -> None:
    from datetime import date

    with transaction(web_runtime.sessions) as session:
        list_id = session.scalars(select(Issue.list_id)).first()
        assert list_id is None  # nothing built for today yet
        from newsletter.db.models import MailingList

        list_id = session.scalars(select(MailingList.id)).one()
        add_issue(
            session, clock, list_id, issue_date=date(2026, 6, 12), status="sent_with_failures"
        )
    _as(web_client, "viewer")
    page = web_client.get("/desk/?hl=en").text
    assert "The issue of 2026-06-12 needs a look: sent with failures." in page
