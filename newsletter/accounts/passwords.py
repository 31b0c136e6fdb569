"""Password hashing: Argon2id (argon2-cffi, RFC 9106's low-memory profile: t=3, 64 MiB, p=4).

`verify` never says why a password failed; `dummy_verify` spends the same time on an unknown
account, so the answer's timing does not tell a guesser which addresses have accounts.
"""

from __future__ import annotations

import contextlib
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from newsletter.errors import ValidationError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # Argon2 takes any length; a megabyte "password" is an attack on the CPU


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


def check_strength(password: str) -> None:
    """Only the length is a rule (NIST SP 800-63B): at least 12 characters, at most 1024."""
    if len(password) < MIN_LENGTH:
        raise ValidationError(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValidationError(f"the password must have at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher().hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; an account without a password (link only) never matches."""
    if len(password) > MAX_LENGTH:
        dummy_verify()
        return False
    if not password_hash:
        dummy_verify(password)
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _hasher().hash("not a password of anyone: spends the time of a real check")


def dummy_verify(password: str = "") -> None:
    """The work of one verification, for an account that does not exist."""
    with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
        _hasher().verify(_dummy_hash(), password[:MAX_LENGTH] or "x")
