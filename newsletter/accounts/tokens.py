"""API tokens for admins' scripts: created by an admin, shown once, stored as a SHA-256 hash.

A token is `nl_` followed by 43 URL-safe random characters (256 bits): the prefix makes a
leaked token recognisable to secret scanners and in logs. Only its hash is stored (a random
256-bit secret needs no slow password hash: nobody can guess it, so a fast lookup by hash is
safe). `authenticate` answers every failure with the same words, so a guess learns nothing
about which names exist, which tokens were revoked or expired.

A token acts as `Actor("token:NAME", role)`: the audit log names it, the roles table checks it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.accounts import audit
from newsletter.accounts.actors import Actor
from newsletter.accounts.roles import Permission, Role, parse_role
from newsletter.clock import Clock
from newsletter.db.models import ApiToken
from newsletter.errors import AuthenticationError, NotFoundError, StateError, ValidationError

PREFIX = "nl_"
SHOWN_CHARS = 8  # "nl_" and the first characters, kept to recognise a token in a list
LAST_USED_RESOLUTION = timedelta(minutes=1)  # `last_used_at` is written at most this often
MAX_EXPIRY_DAYS = 3650
NAME_MAX = 100
AUTH_FAILED = "missing, unknown, expired or revoked API token"


@dataclass(frozen=True, slots=True)
class CreatedToken:
    """The one moment the secret exists outside the caller's hands: print it, then forget it."""

    name: str
    role: Role
    secret: str
    expires_at: datetime | None


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise ValidationError("name: must not be empty")
    if len(cleaned) > NAME_MAX or not all(c.isalnum() or c in "-_.@" for c in cleaned):
        raise ValidationError(
            f"name: expected up to {NAME_MAX} letters, digits, '-', '_', '.' or '@', got {name!r}"
        )
    return cleaned


def create_token(
    session: Session,
    clock: Clock,
    actor: Actor,
    *,
    name: str,
    role: str | Role,
    expires_days: int | None = None,
) -> CreatedToken:
    """A new token NAME with ROLE; the secret is in the result and nowhere else."""
    actor.require(Permission.MANAGE_ACCOUNTS)
    name = _check_name(name)
    role = parse_role(str(role))
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        raise ValidationError(f"expires: expected 1 to {MAX_EXPIRY_DAYS} days, got {expires_days}")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise StateError(f"a token named {name!r} already exists (names stay after a revoke)")
    secret = PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    expires_at = now + timedelta(days=expires_days) if expires_days else None
    session.add(
        ApiToken(
            name=name,
            role=role.value,
            token_hash=hash_token(secret),
            prefix=secret[:SHOWN_CHARS],
            created_by=actor.name,
            created_at=now,
            expires_at=expires_at,
        )
    )
    session.flush()
    audit.record(
        session,
        clock,
        actor,
        "token.create",
        subject=f"token:{name}",
        after={"role": role.value, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return CreatedToken(name=name, role=role, secret=secret, expires_at=expires_at)


def _state(token: ApiToken, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def token_dict(token: ApiToken, now: datetime) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "name": token.name,
        "role": token.role,
        "prefix": token.prefix,
        "state": _state(token, now),
        "created_by": token.created_by,
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "revoked_at": iso(token.revoked_at),
        "last_used_at": iso(token.last_used_at),
    }


def list_tokens(session: Session, clock: Clock) -> list[dict[str, Any]]:
    """Every token, revoked and expired ones included (by name); never a secret or a hash."""
    now = clock.now()
    return [token_dict(t, now) for t in session.scalars(select(ApiToken).order_by(ApiToken.name))]


def revoke_token(session: Session, clock: Clock, actor: Actor, name: str) -> bool:
    """Revoke NAME at once; False when it was already revoked. NotFoundError for no such name."""
    actor.require(Permission.MANAGE_ACCOUNTS)
    token = session.scalar(select(ApiToken).where(ApiToken.name == name).with_for_update())
    if token is None:
        raise NotFoundError(f"no token named {name!r}")
    if token.revoked_at is not None:
        return False
    token.revoked_at = clock.now()
    session.flush()
    audit.record(session, clock, actor, "token.revoke", subject=f"token:{name}")
    return True


def authenticate(session: Session, clock: Clock, secret: str | None) -> Actor:
    """The actor a bearer secret stands for; AuthenticationError (same words) otherwise.

    Looked up by hash, checked for revocation and expiry on every request, so a revoke
    takes effect on the next request. `last_used_at` is written only when it is more than
    a minute old: one small UPDATE a minute per token, not one per request.
    """
    if not secret or not secret.startswith(PREFIX) or len(secret) > 200:
        raise AuthenticationError(AUTH_FAILED)
    row = session.execute(
        select(
            ApiToken.id,
            ApiToken.name,
            ApiToken.role,
            ApiToken.expires_at,
            ApiToken.revoked_at,
            ApiToken.last_used_at,
        ).where(ApiToken.token_hash == hash_token(secret))
    ).one_or_none()
    now = clock.now()
    if row is None or row.revoked_at is not None:
        raise AuthenticationError(AUTH_FAILED)
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthenticationError(AUTH_FAILED)
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return Actor(f"token:{row.name}", Role(row.role))
