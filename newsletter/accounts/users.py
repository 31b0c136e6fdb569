"""Desk accounts: add, list, change role, disable, reset the password, sign in.

Every change an admin makes is written to the audit log in the same transaction. Disabling an
account, changing its role or its password bumps `session_epoch`, which every session cookie
carries: the account's older sessions stop working on their next request.

Signing in answers the same `AuthenticationError` for an unknown address, a disabled account
and a wrong password, after the same Argon2 work, so a guess learns nothing.

A sign-in link is the alternative to a password: 32 random bytes in the URL, only their
SHA-256 stored, valid for 15 minutes, used once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.accounts import audit, passwords
from newsletter.accounts.actors import Actor
from newsletter.accounts.roles import Permission, Role, parse_role
from newsletter.clock import Clock
from newsletter.db.models import SignInLink, User
from newsletter.errors import AuthenticationError, NotFoundError, StateError, ValidationError

SIGN_IN_LINK_TTL = timedelta(minutes=15)
LANGUAGES = ("ja", "en")
SIGN_IN_FAILED = "the address or the password is not right, or the account is disabled"


def normalise_email(email: str) -> str:
    """The address as stored: validated syntax (IDN domains in their ASCII form), lower case."""
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as err:
        raise ValidationError(f"{email!r} is not an email address: {err}") from None
    return f"{result.local_part}@{result.ascii_domain}".lower()


def _language(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in LANGUAGES:
        raise ValidationError(f"language {value!r} is not one of ja, en")
    return value


def find(session: Session, email: str) -> User | None:
    try:
        key = normalise_email(email)
    except ValidationError:
        return None
    return session.scalar(select(User).where(User.email == key))


def get(session: Session, email: str) -> User:
    user = find(session, email)
    if user is None:
        raise NotFoundError(f"no account {email!r}")
    return user


def active_user(session: Session, user_id: int) -> User | None:
    """The account behind a session, or None once it is gone or disabled."""
    user = session.get(User, user_id)
    if user is None or user.disabled_at is not None:
        return None
    return user


def actor_for(user: User) -> Actor:
    return Actor(user.email, Role(user.role))


def user_dict(user: User) -> dict[str, Any]:
    """What `users list --json` shows: never the password hash."""
    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "language": user.language,
        "password": user.password_hash is not None,
        "created_at": user.created_at.isoformat(),
        "disabled_at": user.disabled_at.isoformat() if user.disabled_at else None,
        "last_sign_in_at": user.last_sign_in_at.isoformat() if user.last_sign_in_at else None,
    }


def add_user(
    session: Session,
    clock: Clock,
    actor: Actor,
    email: str,
    role: Role | str,
    *,
    password: str | None = None,
    language: str | None = None,
) -> User:
    """A new account; without a password it signs in by emailed link only."""
    actor.require(Permission.MANAGE_ACCOUNTS)
    key = normalise_email(email)
    role = parse_role(str(role))
    if session.scalar(select(User.id).where(User.email == key)) is not None:
        raise StateError(f"an account {key} already exists")
    user = User(
        email=key,
        role=role.value,
        password_hash=passwords.hash_password(password) if password is not None else None,
        language=_language(language),
        session_epoch=0,
        created_at=clock.now(),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        clock,
        actor,
        "user.add",
        subject=key,
        after={"role": role.value, "password": password is not None},
    )
    return user


def list_users(session: Session, *, include_disabled: bool = True) -> list[User]:
    query = select(User).order_by(User.email)
    if not include_disabled:
        query = query.where(User.disabled_at.is_(None))
    return list(session.scalars(query))


def set_role(session: Session, clock: Clock, actor: Actor, email: str, role: Role | str) -> User:
    actor.require(Permission.MANAGE_ACCOUNTS)
    user = get(session, email)
    new = parse_role(str(role))
    before = user.role
    if before == new.value:
        return user
    user.role = new.value
    user.session_epoch += 1
    session.flush()
    audit.record(
        session,
        clock,
        actor,
        "user.set-role",
        subject=user.email,
        before={"role": before},
        after={"role": new.value},
    )
    return user


def disable(session: Session, clock: Clock, actor: Actor, email: str) -> User:
    """The account can no longer sign in, and its open sessions end at their next request."""
    actor.require(Permission.MANAGE_ACCOUNTS)
    user = get(session, email)
    if user.disabled_at is not None:
        return user
    user.disabled_at = clock.now()
    user.session_epoch += 1
    session.execute(
        update(SignInLink)
        .where(SignInLink.user_id == user.id, SignInLink.used_at.is_(None))
        .values(used_at=clock.now())
    )
    session.flush()
    audit.record(
        session,
        clock,
        actor,
        "user.disable",
        subject=user.email,
        before={"disabled": False},
        after={"disabled": True},
    )
    return user


def reset_password(
    session: Session, clock: Clock, actor: Actor, email: str, password: str | None
) -> User:
    """A new password (None: none, sign-in by link only); every open session ends."""
    actor.require(Permission.MANAGE_ACCOUNTS)
    user = get(session, email)
    user.password_hash = passwords.hash_password(password) if password is not None else None
    user.session_epoch += 1
    session.flush()
    audit.record(
        session,
        clock,
        actor,
        "user.reset-password",
        subject=user.email,
        after={"password": password is not None},
    )
    return user


def set_language(session: Session, user: User, language: str | None) -> None:
    """The desk's language for this account (None: the browser's); the user's own setting."""
    user.language = _language(language)
    session.flush()


def authenticate(session: Session, clock: Clock, email: str, password: str) -> User:
    """The account for this address and password, or AuthenticationError (the same for all)."""
    user = find(session, email)
    if user is None:
        passwords.dummy_verify(password)
        raise AuthenticationError(SIGN_IN_FAILED)
    ok = passwords.verify(user.password_hash, password)
    if not ok or user.disabled_at is not None:
        raise AuthenticationError(SIGN_IN_FAILED)
    user.last_sign_in_at = clock.now()
    session.flush()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedLink:
    user_id: int
    email: str
    language: str | None
    token: str  # only ever in the email; the database keeps its hash
    expires_at: datetime


def issue_sign_in_link(session: Session, clock: Clock, email: str) -> IssuedLink | None:
    """A new single-use token for an active account; None (send nothing) for anyone else."""
    user = find(session, email)
    if user is None or user.disabled_at is not None:
        return None
    token = secrets.token_urlsafe(32)
    now = clock.now()
    link = SignInLink(
        user_id=user.id,
        token_hash=_token_hash(token),
        created_at=now,
        expires_at=now + SIGN_IN_LINK_TTL,
    )
    session.add(link)
    session.flush()
    return IssuedLink(user.id, user.email, user.language, token, link.expires_at)


def redeem_sign_in_link(session: Session, clock: Clock, token: str) -> User:
    """The account the link was sent to; the link is spent. Expired, used, unknown: refused."""
    now = clock.now()
    link = session.scalar(
        select(SignInLink).where(SignInLink.token_hash == _token_hash(token)).with_for_update()
    )
    if link is None or link.used_at is not None or link.expires_at <= now:
        raise AuthenticationError("this sign-in link is not valid: it was used, or it expired")
    # Spent by exactly one request, even when two arrive together.
    spent = session.execute(
        update(SignInLink)
        .where(SignInLink.id == link.id, SignInLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    user = active_user(session, link.user_id)
    if not getattr(spent, "rowcount", 0) or user is None:
        raise AuthenticationError("this sign-in link is not valid: it was used, or it expired")
    user.last_sign_in_at = now
    session.flush()
    return user
