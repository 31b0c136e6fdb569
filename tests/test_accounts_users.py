"""Desk accounts through the users service, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.accounts import audit, passwords, users
from newsletter.accounts.actors import Actor
from newsletter.accounts.roles import Role
from newsletter.clock import FixedClock
from newsletter.db.models import SignInLink, User
from newsletter.errors import (
    AuthenticationError,
    PermissionDeniedError,
    StateError,
    ValidationError,
)

ADMIN = Actor("cli:root", Role.ADMIN)
EDITOR = Actor("hanako@example.jp", Role.EDITOR)
PASSWORD = "correct horse battery staple"


def _add(sessions: sessionmaker[Session], clock: FixedClock, **kw: object) -> None:
    with sessions.begin() as session:
        users.add_user(
            session,
            clock,
            ADMIN,
            str(kw.get("email", "Hanako@Example.JP")),
            str(kw.get("role", "editor")),
            password=kw.get("password", PASSWORD),  # type: ignore[arg-type]
        )


def test_an_added_account_is_stored_normalised_with_an_argon2id_hash(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock)
    with sessions() as session:
        [user] = users.list_users(session)
        assert user.email == "hanako@example.jp"
        assert user.role == "editor"
        assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert "password_hash" not in users.user_dict(user)


def test_adding_an_account_is_audited_without_the_password(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock)
    with sessions() as session:
        [entry] = audit.entries(session)
        assert (entry.actor, entry.action, entry.subject) == (
            "cli:root",
            "user.add",
            "hanako@example.jp",
        )
        assert PASSWORD not in str(audit.entry_dict(entry))


def test_the_same_address_cannot_be_added_twice(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock)
    with pytest.raises(StateError, match="already exists"):
        _add(sessions, clock, email="HANAKO@example.jp")


def test_only_an_admin_manages_accounts(sessions: sessionmaker[Session], clock: FixedClock) -> None:
    with sessions.begin() as session, pytest.raises(PermissionDeniedError):
        users.add_user(session, clock, EDITOR, "x@example.com", "admin", password=PASSWORD)


def test_a_short_password_is_refused(sessions: sessionmaker[Session], clock: FixedClock) -> None:
    with pytest.raises(ValidationError, match="at least 12"):
        _add(sessions, clock, password="short")


def test_the_right_password_signs_in(sessions: sessionmaker[Session], clock: FixedClock) -> None:
    _add(sessions, clock)
    with sessions.begin() as session:
        user = users.authenticate(session, clock, "hanako@EXAMPLE.jp", PASSWORD)
        assert user.last_sign_in_at == clock.now()


@pytest.mark.parametrize(
    "email, password",
    [
        ("nobody@example.jp", PASSWORD),
        ("hanako@example.jp", "wrong password here"),
        ("not an address", PASSWORD),
    ],
    ids=["unknown", "wrong-password", "not-an-address"],
)
def test_unknown_account_and_wrong_password_raise_the_same_error(
    sessions: sessionmaker[Session], clock: FixedClock, email: str, password: str
) -> None:
    _add(sessions, clock)
    with sessions.begin() as session, pytest.raises(AuthenticationError) as caught:
        users.authenticate(session, clock, email, password)
    assert str(caught.value) == users.SIGN_IN_FAILED


def test_an_unknown_account_costs_a_password_verification_too() -> None:
    real = passwords.hash_password(PASSWORD)

    def timed(check: object) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            check()  # type: ignore[operator]
            best = min(best, time.perf_counter() - start)
        return best

    wrong = timed(lambda: passwords.verify(real, "wrong password here"))
    unknown = timed(lambda: passwords.dummy_verify("wrong password here"))
    assert 1 / 3 < unknown / wrong < 3  # the same Argon2 work, whatever the noise


def test_a_disabled_account_cannot_sign_in_and_its_sessions_end(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock)
    with sessions.begin() as session:
        users.disable(session, clock, ADMIN, "hanako@example.jp")
    with sessions.begin() as session:
        user = users.get(session, "hanako@example.jp")
        assert user.session_epoch == 1 and user.disabled_at == clock.now()
        assert users.active_user(session, user.id) is None
        with pytest.raises(AuthenticationError):
            users.authenticate(session, clock, "hanako@example.jp", PASSWORD)


def test_a_role_change_is_audited_with_before_and_after_and_bumps_the_epoch(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock)
    with sessions.begin() as session:
        users.set_role(session, clock, ADMIN, "hanako@example.jp", "admin")
    with sessions() as session:
        assert users.get(session, "hanako@example.jp").session_epoch == 1
        entry = audit.entries(session)[0]
        assert (entry.action, entry.before, entry.after) == (
            "user.set-role",
            {"role": "editor"},
            {"role": "admin"},
        )


def test_a_reset_password_replaces_the_old_one(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock)
    with sessions.begin() as session:
        users.reset_password(session, clock, ADMIN, "hanako@example.jp", "a brand new passphrase")
    with sessions.begin() as session:
        with pytest.raises(AuthenticationError):
            users.authenticate(session, clock, "hanako@example.jp", PASSWORD)
        user = users.authenticate(session, clock, "hanako@example.jp", "a brand new passphrase")
        assert user.session_epoch == 1
        assert audit.entries(session)[0].action == "user.reset-password"


def test_an_account_without_a_password_signs_in_by_link_only(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock, password=None)
    with sessions.begin() as session, pytest.raises(AuthenticationError):
        users.authenticate(session, clock, "hanako@example.jp", "")


def test_a_sign_in_link_stores_only_the_tokens_hash(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock)
    with sessions.begin() as session:
        link = users.issue_sign_in_link(session, clock, "hanako@example.jp")
        assert link is not None
    with sessions() as session:
        [row] = session.scalars(select(SignInLink)).all()
        assert link.token not in row.token_hash and len(row.token_hash) == 64
        assert row.expires_at == clock.now() + timedelta(minutes=15)


def test_a_sign_in_link_works_once(sessions: sessionmaker[Session], clock: FixedClock) -> None:
    _add(sessions, clock)
    with sessions.begin() as session:
        link = users.issue_sign_in_link(session, clock, "hanako@example.jp")
        assert link is not None
    with sessions.begin() as session:
        assert users.redeem_sign_in_link(session, clock, link.token).email == "hanako@example.jp"
    with sessions.begin() as session, pytest.raises(AuthenticationError):
        users.redeem_sign_in_link(session, clock, link.token)


def test_a_sign_in_link_expires_after_15_minutes(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock)
    with sessions.begin() as session:
        link = users.issue_sign_in_link(session, clock, "hanako@example.jp")
        assert link is not None
    clock.advance(minutes=15)
    with sessions.begin() as session, pytest.raises(AuthenticationError):
        users.redeem_sign_in_link(session, clock, link.token)


def test_no_sign_in_link_for_an_unknown_or_disabled_account(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock)
    with sessions.begin() as session:
        assert users.issue_sign_in_link(session, clock, "nobody@example.jp") is None
        users.disable(session, clock, ADMIN, "hanako@example.jp")
        assert users.issue_sign_in_link(session, clock, "hanako@example.jp") is None
        assert session.scalars(select(User)).one().disabled_at is not None


def test_disabling_an_account_spends_its_open_sign_in_links(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _add(sessions, clock)
    with sessions.begin() as session:
        link = users.issue_sign_in_link(session, clock, "hanako@example.jp")
        assert link is not None
        users.disable(session, clock, ADMIN, "hanako@example.jp")
    with sessions.begin() as session, pytest.raises(AuthenticationError):
        users.redeem_sign_in_link(session, clock, link.token)
