"""Helpers for the desk's tests: accounts made through the users service, signing in through
the real sign-in form, and the CSRF token read from a page as a browser would post it."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from newsletter.accounts import users
from newsletter.accounts.actors import Actor
from newsletter.accounts.roles import Role
from newsletter.db.session import transaction
from newsletter.runtime import Runtime

PASSWORD = "correct horse battery staple"
ADMIN = Actor("cli:test", Role.ADMIN)

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def make_user(runtime: Runtime, email: str, role: str, password: str | None = PASSWORD) -> int:
    with transaction(runtime.sessions) as session:
        user = users.add_user(session, runtime.clock, ADMIN, email, role, password=password)
        return user.id


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    form = client.get("/desk/sign-in")
    response = client.post(
        "/desk/sign-in",
        data={"email": email, "password": password, "csrf": csrf_of(form.text), "next": "/desk/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/desk/"


def desk_csrf(client: TestClient) -> str:
    """A signed-in page's token (every desk page has the sign-out form)."""
    return csrf_of(client.get("/desk/audit").text)
