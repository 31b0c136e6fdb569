"""API tokens: shown once, stored hashed, checked on every use; `newsletter tokens`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.accounts import tokens
from newsletter.accounts.actors import Actor, cli_actor
from newsletter.accounts.roles import Role
from newsletter.cli.context import AppContext
from newsletter.clock import FixedClock
from newsletter.db.models import ApiToken, AuditEntry
from newsletter.db.session import transaction
from newsletter.errors import AuthenticationError, PermissionDeniedError, StateError
from tests.test_articles_cli import app, run  # noqa: F401  (the `app` fixture)


def _create(sessions: sessionmaker[Session], clock: FixedClock, **kwargs: object) -> str:
    with transaction(sessions) as session:
        return tokens.create_token(session, clock, cli_actor(), **kwargs).secret  # type: ignore[arg-type]


def _auth(sessions: sessionmaker[Session], clock: FixedClock, secret: str | None) -> Actor:
    with transaction(sessions) as session:
        return tokens.authenticate(session, clock, secret)


def test_a_token_is_stored_as_its_hash_and_acts_with_its_role(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    secret = _create(sessions, clock, name="crm-sync", role="editor")
    assert secret.startswith("nl_") and len(secret) > 40
    with sessions() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == tokens.hash_token(secret) and secret not in row.token_hash
        assert row.prefix == secret[:8]
        assert row.created_by.startswith("cli:")
    assert _auth(sessions, clock, secret) == Actor("token:crm-sync", Role.EDITOR)


@pytest.mark.parametrize("offered", [None, "", "nl_wrong", "Bearer x", "nl_" + "a" * 300])
def test_anything_but_a_known_token_fails_with_the_same_words(
    sessions: sessionmaker[Session], clock: FixedClock, offered: str | None
) -> None:
    _create(sessions, clock, name="a", role="admin")
    with pytest.raises(AuthenticationError) as caught:
        _auth(sessions, clock, offered)
    assert str(caught.value) == tokens.AUTH_FAILED


def test_revoked_and_expired_tokens_stop_working(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    revoked = _create(sessions, clock, name="old", role="admin")
    expiring = _create(sessions, clock, name="temp", role="viewer", expires_days=1)
    with transaction(sessions) as session:
        assert tokens.revoke_token(session, clock, cli_actor(), "old") is True
        assert tokens.revoke_token(session, clock, cli_actor(), "old") is False
    with pytest.raises(AuthenticationError):
        _auth(sessions, clock, revoked)
    assert _auth(sessions, clock, expiring).role is Role.VIEWER
    clock.advance(days=1)
    with pytest.raises(AuthenticationError):
        _auth(sessions, clock, expiring)
    with sessions() as session:
        states = {t["name"]: t["state"] for t in tokens.list_tokens(session, clock)}
    assert states == {"old": "revoked", "temp": "expired"}


def test_last_use_is_written_at_most_once_a_minute(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    secret = _create(sessions, clock, name="busy", role="viewer")
    _auth(sessions, clock, secret)
    first = clock.now()
    clock.advance(seconds=30)
    _auth(sessions, clock, secret)
    with sessions() as session:
        assert session.scalars(select(ApiToken.last_used_at)).one() == first
    clock.advance(seconds=31)
    _auth(sessions, clock, secret)
    with sessions() as session:
        assert session.scalars(select(ApiToken.last_used_at)).one() == first + timedelta(seconds=61)


def test_only_an_admin_manages_tokens_and_names_are_unique(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _create(sessions, clock, name="one", role="viewer")
    with transaction(sessions) as session, pytest.raises(StateError, match="already exists"):
        tokens.create_token(session, clock, cli_actor(), name="one", role="admin")
    editor = Actor("token:ed", Role.EDITOR)
    with transaction(sessions) as session, pytest.raises(PermissionDeniedError):
        tokens.create_token(session, clock, editor, name="two", role="admin")
    with transaction(sessions) as session, pytest.raises(PermissionDeniedError):
        tokens.revoke_token(session, clock, editor, "one")


def test_creating_and_revoking_are_audited(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    _create(sessions, clock, name="audited", role="admin", expires_days=30)
    with transaction(sessions) as session:
        tokens.revoke_token(session, clock, cli_actor(), "audited")
    with sessions() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(e.action, e.subject) for e in entries] == [
            ("token.create", "token:audited"),
            ("token.revoke", "token:audited"),
        ]
        assert entries[0].after is not None and entries[0].after["role"] == "admin"
        assert all(e.actor.startswith("cli:") for e in entries)


def test_the_command_line_creates_lists_and_revokes(app: AppContext) -> None:  # noqa: F811
    created = run(app, "tokens", "create", "--name", "ci", "--role", "viewer", "--expires", "7")
    assert created.exit_code == 0, created.output
    secret = created.output.splitlines()[0]
    assert secret.startswith("nl_")
    listed = json.loads(run(app, "tokens", "list", "--json").output)
    assert [(t["name"], t["role"], t["state"]) for t in listed] == [("ci", "viewer", "active")]
    assert secret not in run(app, "tokens", "list").output
    assert run(app, "tokens", "revoke", "ci").exit_code == 0
    assert json.loads(run(app, "tokens", "list", "--json").output)[0]["state"] == "revoked"
    missing = run(app, "tokens", "revoke", "nobody")
    assert missing.exit_code == 66 and "no token named 'nobody'" in missing.output
    bad = run(app, "tokens", "create", "--name", "x", "--role", "owner")
    assert bad.exit_code == 64


def test_the_command_line_reschedules_a_list(app: AppContext) -> None:  # noqa: F811
    assert run(app, "lists", "create", "weekly", "--name", "週刊").exit_code == 0
    changed = run(app, "lists", "update", "weekly", "--send-time", "09:15", "--timezone", "UTC")
    assert changed.exit_code == 0, changed.output
    assert "send_time 09:15" in changed.output
    shown = json.loads(run(app, "lists", "list", "--json").output)
    assert (shown[0]["send_time"], shown[0]["timezone"]) == ("09:15", "UTC")
    assert run(app, "lists", "update", "weekly", "--timezone", "default").exit_code == 0
    assert json.loads(run(app, "lists", "list", "--json").output)[0]["timezone"] is None
    bad = run(app, "lists", "update", "weekly", "--send-time", "25:00")
    assert bad.exit_code == 65 and "send time: expected HH:MM (24-hour), got '25:00'" in bad.output
