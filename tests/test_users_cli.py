"""`newsletter users`: accounts from the command line; passwords never on the command line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from newsletter.cli.context import AppContext
from newsletter.cli.main import cli
from tests.test_articles_cli import app  # noqa: F401  (the `app` fixture)

PASSWORD = "correct horse battery staple"


def _run(app: AppContext, *args: str, stdin: str | None = None):  # noqa: F811
    return CliRunner().invoke(cli, list(args), obj=app, input=stdin)


def test_add_reads_the_password_from_stdin_and_never_prints_it(app: AppContext) -> None:  # noqa: F811
    result = _run(
        app, "users", "add", "Hanako@Example.jp", "--role", "editor", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "added hanako@example.jp (editor" in result.output
    assert PASSWORD not in result.output


def test_list_json_shows_role_and_state_but_no_hash(app: AppContext) -> None:  # noqa: F811
    _run(app, "users", "add", "a@example.com", "--role", "admin")
    _run(app, "users", "add", "b@example.com", "--role", "viewer")
    _run(app, "users", "disable", "b@example.com")
    rows = json.loads(_run(app, "users", "list", "--json").output)
    assert [(r["email"], r["role"], bool(r["disabled_at"])) for r in rows] == [
        ("a@example.com", "admin", False),
        ("b@example.com", "viewer", True),
    ]
    assert all("hash" not in key for row in rows for key in row)


def test_set_role_and_reset_password_are_in_the_audit_log(app: AppContext) -> None:  # noqa: F811
    _run(app, "users", "add", "a@example.com", "--role", "viewer")
    assert _run(app, "users", "set-role", "a@example.com", "editor").exit_code == 0
    reset = _run(
        app, "users", "reset-password", "a@example.com", "--password-stdin", stdin=PASSWORD
    )
    assert reset.exit_code == 0 and PASSWORD not in reset.output
    entries = json.loads(_run(app, "audit", "--json").output)
    assert [e["action"] for e in entries] == ["user.reset-password", "user.set-role", "user.add"]


def test_an_unknown_role_is_a_usage_error(app: AppContext) -> None:  # noqa: F811
    result = _run(app, "users", "add", "a@example.com", "--role", "owner")
    assert result.exit_code == 64


def test_an_unknown_account_exits_66(app: AppContext) -> None:  # noqa: F811
    assert _run(app, "users", "disable", "nobody@example.com").exit_code == 66
