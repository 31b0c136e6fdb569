"""The HTTP API over real parts (SQLite and PostgreSQL): roles, tokens, problem details,
Idempotency-Key, rate limit, body caps, paging, the same service functions as the CLI, and
/metrics read back with Prometheus' own parser."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from starlette.routing import Mount
from starlette.testclient import TestClient

from newsletter.accounts import tokens
from newsletter.accounts.actors import cli_actor
from newsletter.accounts.roles import Permission
from newsletter.api import create_api
from newsletter.api.gate import JSON_MAX_BYTES, RateLimiter
from newsletter.db.models import AuditEntry, Delivery, Subscriber
from newsletter.db.session import transaction
from newsletter.delivery.issue_state import recipient_counts
from newsletter.runtime import Runtime
from newsletter.web import create_app
from tests.fixtures.articles import article_dict

BASE = "https://news.example.com"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
SAMPLE_PATH_VALUES = {
    "slug": "daily",
    "date": "2026-06-13",
    "ref": "daily:2026-06-13",
    "email": "hanako@example.jp",
    "name": "someone",
    "article_id": "alpha",
    "variant": "ja",
}


@dataclass
class Api:
    client: TestClient
    runtime: Runtime
    secrets: dict[str, str]

    def headers(self, role: str = "admin", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[role]}", **extra}

    def call(self, method: str, path: str, role: str = "admin", **kwargs: Any) -> Any:
        headers = self.headers(role, **kwargs.pop("headers", {}))
        return self.client.request(method, "/api/v1" + path, headers=headers, **kwargs)


@pytest.fixture
def api(web_runtime: Runtime) -> Iterator[Api]:
    secrets = {}
    with transaction(web_runtime.sessions) as session:
        for role in ("viewer", "editor", "admin"):
            created = tokens.create_token(
                session, web_runtime.clock, cli_actor(), name=f"{role}-script", role=role
            )
            secrets[role] = created.secret
    with TestClient(create_app(web_runtime), base_url=BASE) as client:
        yield Api(client, web_runtime, secrets)


def _day(api: Api) -> None:
    """Three articles for the 2026-06-13 issue (the clock is 06:30 JST that day)."""
    articles = [
        article_dict("alpha", "2026-06-13T05:00:00+09:00", importance=90, title="アルファ"),
        article_dict("beta", "2026-06-13T04:00:00+09:00", importance=60),
        article_dict("gamma", "2026-06-13T03:00:00+09:00", importance=30),
    ]
    response = api.call("POST", "/articles", "editor", json=articles)
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == 3


def _wait_sent(api: Api, issue_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = api.call("GET", f"/issues/{issue_id}/status", "viewer").json()
        if status["issue_status"] not in ("built", "sending"):
            return status  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"issue {issue_id} still sending: {status}")


# --- authentication, roles, problem details --------------------------------------------------


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI's included routers
            yield from _api_routes(route.original_router.routes)


def _write_routes(app: Any) -> list[tuple[str, str, APIRoute]]:
    """Every write route of the API mounted in the served app, read from its route table."""
    (mount,) = [r for r in app.routes if isinstance(r, Mount) and r.path == "/api/v1"]
    return [
        (method, route.path, route)
        for route in _api_routes(mount.routes)
        for method in sorted(route.methods & WRITE_METHODS)
    ]


def _permissions(route: APIRoute) -> set[Permission]:
    found = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        permission = getattr(dependant.call, "permission", None)
        if permission is not None:
            found.add(permission)
        stack.extend(dependant.dependencies)
    return found


def test_every_write_route_needs_more_than_read_and_a_viewer_gets_403(api: Api) -> None:
    """One table over the app's own routes: a route added later is covered without a change."""
    routes = _write_routes(api.client.app)
    assert len(routes) >= 25
    for method, path, route in routes:
        needed = _permissions(route)
        assert needed and Permission.READ not in needed, f"{method} {path} checks {needed}"
        concrete = re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PATH_VALUES[m.group(1)], path)
        response = api.call(method, concrete, "viewer", json={})
        assert response.status_code == 403, f"{method} {concrete}: {response.text}"
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["type"] == "/api/docs#problem-forbidden"
        assert "token:viewer-script (viewer) may not" in problem["detail"]
    with api.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
        actions = set(session.scalars(select(AuditEntry.action)))
    assert actions == {"token.create"}  # nothing a viewer tried was done


def test_a_revoked_token_stops_working_at_once(api: Api) -> None:
    assert api.call("GET", "/lists", "editor").status_code == 200
    with transaction(api.runtime.sessions) as session:
        tokens.revoke_token(session, api.runtime.clock, cli_actor(), "editor-script")
    response = api.call("GET", "/lists", "editor")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json() == {
        "type": "/api/docs#problem-unauthenticated",
        "title": "Authentication required",
        "status": 401,
        "detail": tokens.AUTH_FAILED,
    }


def test_no_cookie_and_no_token_in_the_query_string(api: Api) -> None:
    secret = api.secrets["admin"]
    assert api.client.get(f"/api/v1/lists?token={secret}").status_code == 401
    api.client.cookies.set("Authorization", f"Bearer {secret}")
    assert api.client.get("/api/v1/lists").status_code == 401
    response = api.call("GET", "/lists")
    assert response.status_code == 200 and "set-cookie" not in response.headers


def test_validation_errors_name_the_field_in_the_command_lines_words(api: Api) -> None:
    response = api.call("POST", "/lists", json={"slug": "Weekly", "name": "x", "send_time": "7"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "/api/docs#problem-invalid"
    assert {e["field"] for e in problem["errors"]} == {"slug", "send_time"}
    assert "send_time: expected HH:MM (24-hour), got '7'" in problem["detail"]
    domain = api.call("POST", "/lists", json={"slug": "w", "name": "x", "timezone": "Mars/Base"})
    assert domain.status_code == 422
    assert domain.json()["errors"] == [
        {"field": "timezone", "detail": "timezone: unknown time zone 'Mars/Base'"}
    ]
    unknown = api.call("POST", "/lists", json={"slug": "w", "name": "x", "colour": "red"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "colour"


def test_domain_errors_map_to_statuses(api: Api) -> None:
    assert api.call("GET", "/subscribers/nobody@example.jp").status_code == 404
    assert api.call("GET", "/issues/9999").json()["detail"] == "no issue with id 9999"
    assert api.call("GET", "/issues/2026-02-30").status_code == 400
    api.call("POST", "/subscribers", json={"email": "x@example.jp"})
    api.call("POST", "/subscribers/x@example.jp/unsubscribe", json={})
    again = api.call("POST", "/subscribers", json={"email": "x@example.jp"})
    assert again.status_code == 409 and "only the person can subscribe again" in again.text
    api.call("POST", "/subscribers/y@example.jp/suppress", json={"reason": "manual"})
    suppressed = api.call("POST", "/subscribers", json={"email": "y@example.jp"})
    assert suppressed.status_code == 409 and "suppression list" in suppressed.json()["detail"]
    missing = api.call("GET", "/no/such/thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_japanese_is_sent_as_utf8_not_escaped(api: Api) -> None:
    response = api.call("POST", "/lists", json={"slug": "weekly", "name": "AI日報 週刊"})
    assert response.status_code == 201
    assert "AI日報 週刊".encode() in response.content
    assert b"\\u" not in response.content


def test_a_list_switches_click_and_open_tracking_over_the_api(api: Api) -> None:
    created = api.call(
        "POST", "/lists", json={"slug": "weekly", "name": "W", "open_tracking": True}
    )
    assert created.status_code == 201, created.text
    assert (created.json()["click_tracking"], created.json()["open_tracking"]) == (False, True)
    changed = api.call("PATCH", "/lists/weekly", json={"click_tracking": True})
    assert changed.json()["click_tracking"] is True and changed.json()["open_tracking"] is True
    shown = api.call("GET", "/lists/weekly", "viewer").json()
    assert (shown["click_tracking"], shown["open_tracking"]) == (True, True)


def test_a_tracking_flag_that_is_not_a_boolean_is_refused_naming_the_field(api: Api) -> None:
    api.call("POST", "/lists", json={"slug": "weekly", "name": "W"})
    refused = api.call("PATCH", "/lists/weekly", json={"click_tracking": "sometimes"})
    assert refused.status_code == 422
    assert "click_tracking" in refused.text


# --- Idempotency-Key, rate limit, body cap ---------------------------------------------------


def test_the_same_post_with_the_same_key_creates_one_subscriber(api: Api) -> None:
    body = {"email": "hanako@example.jp", "name": "花子", "language": "both"}
    key = {"Idempotency-Key": "add-hanako-1"}
    first = api.call("POST", "/subscribers", json=body, headers=key)
    api.call("POST", "/subscribers/hanako@example.jp/erase")  # what a second create would undo
    second = api.call("POST", "/subscribers", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    other = api.call("POST", "/subscribers", json={**body, "name": "別人"}, headers=key)
    assert other.status_code == 422
    assert "already used with a different request" in other.json()["detail"]
    with api.runtime.sessions() as session:
        adds = session.scalars(select(AuditEntry).where(AuditEntry.action == "subscriber.add"))
        assert len(adds.all()) == 1
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0  # erased once
    # Keys belong to a token: another token's same key is a new request.
    theirs = api.call("POST", "/lists", json={"slug": "x", "name": "x"}, headers=key)
    assert theirs.status_code == 422  # same token, other path: refused, not replayed
    assert api.call("POST", "/subscribers", "editor", json=body, headers=key).status_code == 403


def test_a_retried_send_starts_one_send(api: Api) -> None:
    _day(api)
    for index in range(3):
        api.call("POST", "/subscribers", json={"email": f"reader{index}@example.jp"})
    built = api.call("POST", "/issues", "editor", json={"date": "2026-06-13"}).json()
    issue_id = built["issue"]["id"]
    key = {"Idempotency-Key": "send-0613"}
    first = api.call("POST", f"/issues/{issue_id}/send", headers=key)
    assert first.status_code == 202, first.text
    second = api.call("POST", f"/issues/{issue_id}/send", headers=key)
    assert second.status_code == 202 and second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    status = _wait_sent(api, issue_id)
    assert status["issue_status"] == "sent"
    assert status["recipients"]["accepted"] == 3
    with api.runtime.sessions() as session:
        sends = session.scalars(select(AuditEntry).where(AuditEntry.action == "issue.send")).all()
        assert [(e.actor, e.role) for e in sends] == [("token:admin-script", "admin")]
        assert session.scalar(select(func.count()).select_from(Delivery)) == 3
    outbox = list((api.runtime.settings.outbox_dir).rglob("*.eml"))
    assert len(outbox) == 3


def test_rate_limit_headers_and_429(web_runtime: Runtime) -> None:
    with transaction(web_runtime.sessions) as session:
        secret = tokens.create_token(
            session, web_runtime.clock, cli_actor(), name="fast", role="viewer"
        ).secret
    api = create_api(web_runtime, limiter=RateLimiter(3, now=lambda: 1000.0))
    with TestClient(api, base_url=BASE) as client:
        headers = {"Authorization": f"Bearer {secret}"}
        answers = [client.get("/lists", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-policy"] == '"token";q=3;w=60'
    assert answers[0].headers["ratelimit"] == '"token";r=2;t=20'
    assert answers[3].headers["ratelimit"] == '"token";r=0;t=60'
    assert answers[3].headers["retry-after"] == "20"
    assert answers[3].json()["type"] == "/api/docs#problem-rate-limited"


def test_a_body_over_the_cap_is_413_before_it_is_read(api: Api) -> None:
    big = b'{"email": "' + b"a" * JSON_MAX_BYTES + b'"}'
    response = api.call(
        "POST", "/subscribers", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == f"request body larger than {JSON_MAX_BYTES} bytes"

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off while streaming
        yield big[: JSON_MAX_BYTES // 2]
        yield big[JSON_MAX_BYTES // 2 :]

    streamed = api.call(
        "POST", "/subscribers", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


# --- the operations ------------------------------------------------------------------------


def test_lists_are_created_shown_and_rescheduled(api: Api) -> None:
    created = api.call(
        "POST", "/lists", json={"slug": "weekly", "name": "週刊", "send_time": "08:00"}
    )
    assert created.status_code == 201
    changed = api.call(
        "PATCH", "/lists/weekly", json={"timezone": "Europe/Paris", "send_time": "09:30"}
    )
    assert changed.status_code == 200
    shown = api.call("GET", "/lists/weekly", "viewer").json()
    assert (shown["timezone"], shown["send_time"], shown["name"]) == (
        "Europe/Paris", "09:30", "週刊",
    )  # fmt: skip
    assert [item["slug"] for item in api.call("GET", "/lists", "viewer").json()] == ["weekly"]
    with api.runtime.sessions() as session:
        update = session.scalars(select(AuditEntry).where(AuditEntry.action == "list.update")).one()
        assert update.before == {"timezone": None, "send_time": "08:00"}
        assert update.actor == "token:admin-script"


def test_subscribers_are_searched_a_page_at_a_time(api: Api) -> None:
    for index in range(7):
        api.call("POST", "/subscribers", json={"email": f"reader{index}@example.jp"})
    api.call("POST", "/subscribers", json={"email": "other@example.com"})
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, "q": "reader"} | ({"cursor": cursor} if cursor else {})
        page = api.call("GET", "/subscribers", "viewer", params=params).json()
        seen += [item["email"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"reader{index}@example.jp" for index in range(7)] and pages == 3
    bad = api.call("GET", "/subscribers", "viewer", params={"cursor": "not-ours"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


def test_a_subscriber_is_updated_unsubscribed_exported_and_erased(api: Api) -> None:
    api.call("POST", "/lists", json={"slug": "weekly", "name": "週刊"})
    api.call("POST", "/subscribers", json={"email": "taro@example.jp", "language": "ja"})
    updated = api.call(
        "PATCH", "/subscribers/taro@example.jp", json={"language": "en", "lists": ["weekly"]}
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["language"] == "en"
    assert {s["list"]: s["status"] for s in body["subscriptions"]} == {
        "daily": "unsubscribed", "weekly": "active",
    }  # fmt: skip
    exported = api.call("GET", "/subscribers/taro@example.jp/export").json()
    assert exported and "taro@example.jp" in str(exported)
    assert api.call("GET", "/subscribers/taro@example.jp/export", "viewer").status_code == 403
    erased = api.call("POST", "/subscribers/taro@example.jp/erase")
    assert erased.json() == {"changed": 1, "detail": "erased; the address stays suppressed"}
    assert api.call("GET", "/subscribers/taro@example.jp").status_code == 404
    with api.runtime.sessions() as session:
        subjects = session.scalars(
            select(AuditEntry.subject).where(AuditEntry.action.like("subscriber.%"))
        ).all()
    assert subjects and all("taro@" not in (s or "") for s in subjects)  # masked


def test_a_csv_upload_gets_the_command_lines_per_line_report(api: Api) -> None:
    csv = "email,name,language\nhanako@example.jp,花子,ja\nnot-an-address,x,ja\n"
    response = api.call(
        "POST",
        "/subscribers/import",
        files={"file": ("people.csv", csv.encode("utf-8"), "text/csv")},
        data={"list": "daily"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["imported"], report["rejected"], report["file"]) == (1, 1, "people.csv")
    assert report["problems"][0]["line"] == 3
    assert report["problems"][0]["outcome"] == "rejected"


def test_an_issue_is_built_explained_edited_approved_and_previewed(api: Api) -> None:
    _day(api)
    built = api.call("POST", "/issues", "editor", json={"date": "2026-06-13"})
    assert built.status_code == 200
    assert [a["id"] for a in built.json()["issue"]["articles"]] == ["alpha", "beta", "gamma"]
    excluded = api.call("POST", "/lists/daily/issues/2026-06-13/exclude", "editor",
                        json={"article_id": "beta"})  # fmt: skip
    assert [a["id"] for a in excluded.json()["issue"]["articles"]] == ["alpha", "gamma"]
    ordered = api.call("PUT", "/lists/daily/issues/2026-06-13/order", "editor",
                       json={"article_ids": ["gamma", "alpha"]})  # fmt: skip
    assert [a["id"] for a in ordered.json()["issue"]["articles"]] == ["gamma", "alpha"]
    note = api.call("PUT", "/lists/daily/issues/2026-06-13/note", "editor",
                    json={"ja": "本日は特集です", "en": "A special"})  # fmt: skip
    assert note.json() == {"ja": "本日は特集です", "en": "A special"}
    shown = api.call("GET", "/issues/2026-06-13", "viewer").json()
    reasons = {row["id"]: row for row in shown["explain"]}
    assert reasons["beta"]["selected"] is False and reasons["beta"]["reason"]
    approved = api.call("POST", "/issues/2026-06-13/approve", "editor")
    assert approved.json()["issue"]["approved_by"] == "token:editor-script"
    preview = api.call("GET", "/issues/2026-06-13/preview/ja", "viewer")
    assert preview.status_code == 200 and preview.headers["content-type"].startswith("text/html")
    assert "本日は特集です" in preview.text and "script-src" not in preview.headers.get(
        "content-security-policy", ""
    )
    sent = api.call("POST", "/issues/2026-06-13/test-send", "editor",
                    json={"to": ["editor@example.jp"], "variant": "ja"})  # fmt: skip
    assert sent.json() == {"variants": {"ja": {"accepted": 1, "failed": []}}}
    log = api.call("GET", "/audit", "viewer", params={"issue": "2026-06-13"}).json()["items"]
    assert [e["action"] for e in log][:3] == ["issue.test_send", "issue.approve", "issue.note"]
    assert {e["actor"] for e in log} == {"token:editor-script"}


def test_sending_controls_and_statistics(api: Api) -> None:
    _day(api)
    api.call("POST", "/subscribers", json={"email": "reader@example.jp"})
    issue_id = api.call("POST", "/issues", "editor", json={"date": "2026-06-13"}).json()["issue"][
        "id"
    ]
    assert api.call("POST", f"/issues/{issue_id}/pause").status_code == 409  # not sending yet
    api.call("POST", f"/issues/{issue_id}/send")
    _wait_sent(api, issue_id)
    stats = api.call("GET", f"/issues/{issue_id}/stats", "viewer").json()
    assert stats["ledger"]["recipients"]["accepted"] == 1 and stats["events_total"] == 0
    per_list = api.call("GET", "/lists/daily/stats", "viewer").json()
    assert per_list["subscribers"]["status"]["active"] == 1
    assert [i["issue_id"] for i in per_list["issues"]] == [issue_id]
    retry = api.call("POST", f"/issues/{issue_id}/retry", json={"dry_run": True})
    assert retry.status_code == 409 and "can be retried" in retry.json()["detail"]


def test_metrics_match_the_ledger_after_a_send(api: Api) -> None:
    assert api.client.get("/metrics").status_code == 401
    _day(api)
    for index in range(4):
        api.call("POST", "/subscribers", json={"email": f"m{index}@example.jp"})
    issue_id = api.call("POST", "/issues", "editor", json={"date": "2026-06-13"}).json()["issue"][
        "id"
    ]
    api.call("POST", f"/issues/{issue_id}/send")
    _wait_sent(api, issue_id)
    scraped = api.client.get("/metrics", headers=api.headers("viewer"))
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    with api.runtime.sessions() as session:
        ledger = recipient_counts(session, issue_id)
    assert {k: v for k, v in ledger.items() if v} == {"accepted": 4}
    assert samples[("newsletter_recipients", (("outcome", "accepted"),))] == 4
    assert samples[("newsletter_recipients", (("outcome", "failed"),))] == 0
    assert samples[("newsletter_in_doubt_recipients", ())] == 0
    assert samples[("newsletter_batches_in_flight", ())] == 0
    assert samples[("newsletter_batch_retries_total", ())] == 0
    state = (("date", "2026-06-13"), ("list", "daily"), ("state", "sent"))
    assert samples[("newsletter_last_issue_state", state)] == 1
    assert samples[("newsletter_subscriptions", (("list", "daily"), ("status", "active")))] == 4
    answered = (("outcome", "answered"), ("provider", "outbox"))
    assert samples[("newsletter_provider_request_seconds_count", answered)] >= 1


def test_remove_expire_and_export_as_on_the_command_line(api: Api) -> None:
    for email in ("a@example.jp", "b@example.jp"):
        api.call("POST", "/subscribers", json={"email": email, "name": "名前"})
    api.call("POST", "/subscribers", json={"email": "p@example.jp", "status": "pending"})
    exported = api.call("GET", "/subscribers/export", params={"format": "jsonl"})
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/x-ndjson"
    lines = exported.text.splitlines()
    assert len(lines) == 3 and "名前" in exported.text
    csv = api.call("GET", "/subscribers/export")
    assert csv.headers["content-type"].startswith("text/csv") and csv.text.startswith("email")
    removed = api.call("DELETE", "/subscribers/a@example.jp")
    assert removed.json()["changed"] == 1
    api.runtime.clock.advance(days=8)  # type: ignore[attr-defined]
    expired = api.call("POST", "/subscribers/expire-pending", json={"days": 7})
    assert expired.json()["changed"] == 1


def test_issues_are_listed_newest_first_a_page_at_a_time(api: Api) -> None:
    from datetime import date, timedelta

    from newsletter.db.models import Issue, MailingList

    with transaction(api.runtime.sessions) as session:
        daily = MailingList(slug="daily", name="AI日報", created_at=api.runtime.clock.now())
        session.add(daily)
        session.flush()
        for n in range(5):
            session.add(
                Issue(
                    list_id=daily.id,
                    issue_date=date(2026, 6, 1) + timedelta(days=n),
                    status="sent" if n < 4 else "built",
                    window_start=api.runtime.clock.now(),
                    cutoff_at=api.runtime.clock.now(),
                    created_at=api.runtime.clock.now(),
                    built_at=api.runtime.clock.now(),
                )
            )
    first = api.call("GET", "/issues?limit=2", "viewer").json()
    assert [i["date"] for i in first["items"]] == ["2026-06-05", "2026-06-04"]
    rest = api.call("GET", f"/issues?limit=10&cursor={first['next_cursor']}", "viewer").json()
    assert [i["date"] for i in rest["items"]] == ["2026-06-03", "2026-06-02", "2026-06-01"]
    assert rest["next_cursor"] is None
    built = api.call("GET", "/issues?status=built", "viewer").json()["items"]
    assert [(i["date"], i["articles"]) for i in built] == [("2026-06-05", 0)]
    assert api.call("GET", "/issues?list=weekly", "viewer").status_code == 404
