"""Roles: one table of what each may do, the same for the desk, the API and the CLI."""

from __future__ import annotations

import pytest

from newsletter.accounts.actors import Actor, cli_actor
from newsletter.accounts.roles import Permission, Role, allows, parse_role, require
from newsletter.errors import PermissionDeniedError, ValidationError


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        (Role.VIEWER, Permission.READ, True),
        (Role.VIEWER, Permission.EDIT, False),
        (Role.VIEWER, Permission.SEND, False),
        (Role.EDITOR, Permission.EDIT, True),
        (Role.EDITOR, Permission.SEND, False),
        (Role.EDITOR, Permission.MANAGE_ACCOUNTS, False),
        (Role.EDITOR, Permission.MANAGE_SUBSCRIBERS, False),
        (Role.ADMIN, Permission.SEND, True),
        (Role.ADMIN, Permission.MANAGE_ACCOUNTS, True),
    ],
)
def test_each_role_may_do_what_the_permissions_table_says(
    role: Role, permission: Permission, allowed: bool
) -> None:
    assert allows(role, permission) is allowed


def test_a_refusal_names_the_account_and_the_role_it_would_need() -> None:
    with pytest.raises(PermissionDeniedError, match=r"editor@example\.jp \(editor\) may not send"):
        Actor("editor@example.jp", Role.EDITOR).require(Permission.SEND)
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):
        require("editor", Permission.SEND)


def test_a_refusal_exits_77_like_any_permission_error() -> None:
    assert PermissionDeniedError.exit_code == 77


def test_an_unknown_role_is_a_validation_error_listing_the_roles() -> None:
    with pytest.raises(ValidationError, match="viewer, editor, admin"):
        parse_role("owner")
    assert parse_role(" Editor ") is Role.EDITOR


def test_the_command_line_acts_as_an_admin_named_for_the_operating_system_user() -> None:
    actor = cli_actor()
    assert actor.name.startswith("cli:")
    assert actor.role is Role.ADMIN
