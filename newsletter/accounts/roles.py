"""Roles and what each may do: one table, checked on the server by every entry point.

The desk, the HTTP API and the command line ask `require(actor, permission)` before acting;
hiding a button is never the check.
"""

from __future__ import annotations

from enum import StrEnum

from newsletter.errors import PermissionDeniedError


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"  # the desk, previews, statistics, the audit log
    EDIT = "edit"  # selection, editor's note, build, import articles, test send, approve
    SEND = "send"  # send, pause, resume, cancel, resolve, retry
    MANAGE_SUBSCRIBERS = "manage_subscribers"  # lists, subscribers, import, erase
    MANAGE_ACCOUNTS = "manage_accounts"  # users and API tokens


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.EDITOR: frozenset({Permission.READ, Permission.EDIT}),
    Role.ADMIN: frozenset(Permission),
}


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        from newsletter.errors import ValidationError

        choices = ", ".join(r.value for r in Role)
        raise ValidationError(f"role {value!r} is not one of {choices}") from None


def allows(role: Role | str, permission: Permission) -> bool:
    return permission in PERMISSIONS[Role(role)]


def require(role: Role | str, permission: Permission, *, who: str = "this account") -> None:
    """Refuse with `PermissionDeniedError` (HTTP 403, exit 77) unless the role allows it."""
    if not allows(role, permission):
        raise PermissionDeniedError(
            f"{who} ({Role(role).value}) may not {permission.value.replace('_', ' ')}: "
            f"that needs the {minimum_role(permission).value} role"
        )


def minimum_role(permission: Permission) -> Role:
    for role in (Role.VIEWER, Role.EDITOR, Role.ADMIN):
        if permission in PERMISSIONS[role]:
            return role
    raise AssertionError(permission)  # every permission belongs to admin
