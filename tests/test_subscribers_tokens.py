"""Subscriber link tokens: genuine ones verify, anything else is refused, keys rotate."""

from __future__ import annotations

import hashlib

import pytest
from itsdangerous import Signer

from newsletter.config import Secret, load_settings
from newsletter.errors import TokenError
from subscribers.tokens import LINK_SALT, LinkSigner

NEW, OLD = "n" * 32, "o" * 32


def _signer(*keys: str) -> LinkSigner:
    settings = load_settings({}, create_secret=False, secret_keys=tuple(Secret(k) for k in keys))
    return LinkSigner(settings)


def test_a_token_is_exactly_what_itsdangerous_signs() -> None:
    reference = Signer([OLD, NEW], salt=LINK_SALT, digest_method=hashlib.sha256)
    assert _signer(NEW, OLD).token(123, 4) == reference.sign("7b.4").decode("ascii")


def test_a_token_verifies_to_its_subscriber_and_list() -> None:
    signer = _signer(NEW)
    claim = signer.verify(signer.token(123, 4))
    assert (claim.subscriber_id, claim.list_id) == (123, 4)


def test_a_token_signed_with_the_old_key_still_verifies_after_rotation() -> None:
    old_token = _signer(OLD).token(9, 1)
    assert _signer(NEW, OLD).verify(old_token).subscriber_id == 9


@pytest.mark.parametrize("token", ["", "7b.4", "7b.4.AAAA", "7c.4.{sig}", "garbage.{sig}"])
def test_a_tampered_token_is_refused(token: str) -> None:
    signer = _signer(NEW)
    sig = signer.token(123, 4).rsplit(".", 1)[1]
    with pytest.raises(TokenError):
        signer.verify(token.format(sig=sig))


def test_a_token_from_another_installation_is_refused() -> None:
    with pytest.raises(TokenError):
        _signer(NEW).verify(_signer("x" * 32).token(1, 1))
