"""The desk's sign-in, session cookie and CSRF checks, through the real app."""

from __future__ import annotations

from starlette.testclient import TestClient

from newsletter.accounts import users
from newsletter.clock import FixedClock
from newsletter.db.session import transaction
from newsletter.runtime import Runtime
from newsletter.web.desk.sessions import COOKIE, DeskState
from newsletter.web.security import SignupThrottle
from tests.desk_support import ADMIN, PASSWORD, csrf_of, desk_csrf, make_user, sign_in


def test_the_desk_sends_a_visitor_without_a_session_to_sign_in(web_client: TestClient) -> None:
    response = web_client.get("/desk/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/desk/sign-in?next=")


def test_signing_in_sets_an_http_only_same_site_secure_cookie(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    form = web_client.get("/desk/sign-in")
    response = web_client.post(
        "/desk/sign-in",
        data={"email": "Editor@Example.com", "password": PASSWORD, "csrf": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    assert "Path=/desk" in cookie
    assert web_client.get("/desk/").status_code == 200


def test_unknown_account_and_wrong_password_get_the_same_answer(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    make_user(web_runtime, "editor@example.com", "editor")

    def attempt(email: str, password: str) -> tuple[int, str]:
        form = web_client.get("/desk/sign-in")
        response = web_client.post(
            "/desk/sign-in",
            data={"email": email, "password": password, "csrf": csrf_of(form.text)},
        )
        start = response.text.index('role="alert"')
        end = response.text.index("</p>", start)  # the message, not the form's fresh CSRF token
        return response.status_code, response.text[start:end]

    assert attempt("nobody@example.com", "whatever-password") == attempt(
        "editor@example.com", "wrong-password-123"
    )
    assert attempt("nobody@example.com", "x")[0] == 401


def test_a_disabled_account_is_refused_the_same_way(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    make_user(web_runtime, "gone@example.com", "editor")
    with transaction(web_runtime.sessions) as session:
        users.disable(session, web_runtime.clock, ADMIN, "gone@example.com")
    form = web_client.get("/desk/sign-in")
    response = web_client.post(
        "/desk/sign-in",
        data={"email": "gone@example.com", "password": PASSWORD, "csrf": csrf_of(form.text)},
    )
    assert response.status_code == 401


def test_a_disabled_users_session_stops_at_once(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    sign_in(web_client, "editor@example.com")
    assert web_client.get("/desk/").status_code == 200
    with transaction(web_runtime.sessions) as session:
        users.disable(session, web_runtime.clock, ADMIN, "editor@example.com")
    response = web_client.get("/desk/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/desk/sign-in")


def test_a_role_change_ends_the_open_sessions(web_client: TestClient, web_runtime: Runtime) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    sign_in(web_client, "editor@example.com")
    with transaction(web_runtime.sessions) as session:
        users.set_role(session, web_runtime.clock, ADMIN, "editor@example.com", "viewer")
    assert web_client.get("/desk/", follow_redirects=False).status_code == 303


def test_a_session_idle_for_more_than_8_hours_has_ended(
    web_client: TestClient, web_runtime: Runtime, clock: FixedClock
) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    sign_in(web_client, "editor@example.com")
    clock.advance(hours=7, minutes=59)
    assert web_client.get("/desk/").status_code == 200  # and the idle clock starts again
    clock.advance(hours=7, minutes=59)
    assert web_client.get("/desk/").status_code == 200
    clock.advance(hours=8, minutes=1)
    assert web_client.get("/desk/", follow_redirects=False).status_code == 303


def test_a_session_ends_after_7_days_however_active(
    web_client: TestClient, web_runtime: Runtime, clock: FixedClock
) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    sign_in(web_client, "editor@example.com")
    for _ in range(7 * 4):  # used every 6 hours: open for 7 days
        clock.advance(hours=6)
        assert web_client.get("/desk/", follow_redirects=False).status_code == 200
    clock.advance(hours=6)
    assert web_client.get("/desk/", follow_redirects=False).status_code == 303


def test_signing_out_ends_the_session(web_client: TestClient, web_runtime: Runtime) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    sign_in(web_client, "editor@example.com")
    cookie = web_client.cookies.get(COOKIE)
    response = web_client.post(
        "/desk/sign-out", data={"csrf": desk_csrf(web_client)}, follow_redirects=False
    )
    assert response.status_code == 303
    web_client.cookies.set(COOKIE, cookie, path="/desk")  # even a copy of the old cookie
    assert web_client.get("/desk/", follow_redirects=False).status_code == 303


def test_a_form_posted_without_its_csrf_token_is_refused(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    sign_in(web_client, "editor@example.com")
    response = web_client.post("/desk/sign-out", data={})
    assert response.status_code == 403
    assert web_client.get("/desk/").status_code == 200  # still signed in


def test_a_sign_in_form_posted_without_its_csrf_token_is_refused(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    response = web_client.post(
        "/desk/sign-in", data={"email": "editor@example.com", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert COOKIE not in response.cookies


def test_sign_in_is_rate_limited_per_account(web_client: TestClient, web_runtime: Runtime) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    web_client.app.state.desk = DeskState(
        web_runtime.settings,
        account_limiter=SignupThrottle(capacity=3, per_s=0),
        address_limiter=SignupThrottle(capacity=100, per_s=0),
    )
    form = web_client.get("/desk/sign-in")
    data = {"email": "editor@example.com", "password": "wrong-password-1", "csrf": ""}
    data["csrf"] = csrf_of(form.text)
    codes = [web_client.post("/desk/sign-in", data=data).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    data["password"] = PASSWORD  # the right password does not get through the limit either
    assert web_client.post("/desk/sign-in", data=data).status_code == 429
    data["email"] = "other@example.com"
    assert web_client.post("/desk/sign-in", data=data).status_code == 401


def test_sign_in_is_rate_limited_per_client_address(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    web_client.app.state.desk = DeskState(
        web_runtime.settings,
        account_limiter=SignupThrottle(capacity=100, per_s=0),
        address_limiter=SignupThrottle(capacity=2, per_s=0),
    )
    csrf = csrf_of(web_client.get("/desk/sign-in").text)
    codes = [
        web_client.post(
            "/desk/sign-in", data={"email": f"u{i}@example.com", "password": "x", "csrf": csrf}
        ).status_code
        for i in range(3)
    ]
    assert codes == [401, 401, 429]


def test_next_never_leads_off_the_desk(web_client: TestClient, web_runtime: Runtime) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    form = web_client.get("/desk/sign-in")
    response = web_client.post(
        "/desk/sign-in",
        data={
            "email": "editor@example.com",
            "password": PASSWORD,
            "csrf": csrf_of(form.text),
            "next": "//evil.example/desk/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/desk/"


def _emailed_link(runtime: Runtime) -> str:
    import email
    import re
    from email.policy import default as default_policy
    from pathlib import Path

    [path] = list(Path(runtime.settings.outbox_dir).rglob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(r"https://news\.example\.com(/desk/sign-in/link/\S+)", text)
    assert match, text
    return match.group(1)


def test_a_sign_in_link_is_emailed_and_signs_in_once(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    make_user(web_runtime, "editor@example.com", "editor", password=None)
    csrf = csrf_of(web_client.get("/desk/sign-in").text)
    asked = web_client.post(
        "/desk/sign-in/link", data={"email": "editor@example.com", "csrf": csrf}
    )
    assert asked.status_code == 200 and 'role="status"' in asked.text
    path = _emailed_link(web_runtime)
    page = web_client.get(path)  # a mail scanner's GET spends nothing
    assert page.status_code == 200 and "Set-Cookie" not in page.headers.get("set-cookie", "")
    token = csrf_of(web_client.get(path).text)
    used = web_client.post(path, data={"csrf": token}, follow_redirects=False)
    assert used.status_code == 303 and used.headers["location"] == "/desk/"
    assert web_client.get("/desk/").status_code == 200
    web_client.cookies.delete(COOKIE, path="/desk")
    token = csrf_of(web_client.get(path).text)
    again = web_client.post(path, data={"csrf": token}, follow_redirects=False)
    assert again.status_code == 400


def test_asking_a_link_for_an_unknown_address_gets_the_same_answer_and_sends_nothing(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    from pathlib import Path

    make_user(web_runtime, "editor@example.com", "editor")
    csrf = csrf_of(web_client.get("/desk/sign-in").text)
    unknown = web_client.post("/desk/sign-in/link", data={"email": "no@example.com", "csrf": csrf})
    assert not list(Path(web_runtime.settings.outbox_dir).rglob("*.eml"))
    known = web_client.post(
        "/desk/sign-in/link", data={"email": "editor@example.com", "csrf": csrf}
    )
    assert unknown.status_code == known.status_code == 200
    marker = 'role="status">'
    assert unknown.text.split(marker)[1][:80] == known.text.split(marker)[1][:80]


def test_an_expired_sign_in_link_does_not_sign_in(
    web_client: TestClient, web_runtime: Runtime, clock: FixedClock
) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    csrf = csrf_of(web_client.get("/desk/sign-in").text)
    web_client.post("/desk/sign-in/link", data={"email": "editor@example.com", "csrf": csrf})
    path = _emailed_link(web_runtime)
    clock.advance(minutes=16)
    token = csrf_of(web_client.get(path).text)
    assert web_client.post(path, data={"csrf": token}).status_code == 400
    assert web_client.get("/desk/", follow_redirects=False).status_code == 303


def test_a_desk_form_larger_than_the_cap_is_refused_with_413(
    web_client: TestClient, web_runtime: Runtime
) -> None:
    make_user(web_runtime, "editor@example.com", "editor")
    sign_in(web_client, "editor@example.com")
    big = {"csrf": desk_csrf(web_client), "note_en": "x" * (70 * 1024)}
    assert web_client.post("/desk/lists/daily/2026-06-13/note", data=big).status_code == 413
    csrf = csrf_of(web_client.get("/desk/sign-in").text)
    big_sign_in = {"csrf": csrf, "email": "e@example.com", "password": "p" * (70 * 1024)}
    assert web_client.post("/desk/sign-in", data=big_sign_in).status_code == 413
