"""Who is acting: the name the audit log records and the role the checks use."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from newsletter.accounts.roles import Permission, Role, require


@dataclass(frozen=True, slots=True)
class Actor:
    """`name` is an account's address, `token:NAME` for an API token or `cli:USER`."""

    name: str
    role: Role

    def require(self, permission: Permission) -> None:
        require(self.role, permission, who=self.name)


def cli_actor() -> Actor:
    """The command line runs on the server itself, as its operator: an admin."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return Actor(f"cli:{user}", Role.ADMIN)
