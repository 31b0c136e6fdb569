"""Address normalisation: the fast path gives exactly what email-validator gives."""

from __future__ import annotations

import random
import string

import pytest
from email_validator import EmailNotValidError, validate_email

from newsletter.errors import ValidationError
from subscribers.addresses import mask_email, normalise_email


def _reference(address: str) -> str:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as err:
        return f"error: {err}"


def _ours(address: str) -> str:
    try:
        return normalise_email(address)
    except ValidationError as err:
        return f"error: {err}"


TRICKY = [
    "Taro@Example.COM",
    "INFO@example.com",  # a role name email-validator lower-cases
    "a..b@example.com",
    ".a@example.com",
    "a@localhost",
    "a@example.test",
    "a@例え.jp",
    "用户@例子.广告",
    "a@-bad.com",
    "a@1.2.3.4",
    "a@[127.0.0.1]",
    "x@example",
    '"quoted"@example.com',
    "Name <a@example.com>",
    "a@b@example.com",
    "a@xn--r8jz45g.jp",
    "a+tag@example.co.jp",
    "a" * 70 + "@example.com",
    "a@" + "b" * 64 + ".com",
    "a@example.com.",
    "a@ex_ample.com",
    "  padded@example.com  ",
]


@pytest.mark.parametrize("address", TRICKY)
def test_known_tricky_addresses_match_email_validator(address: str) -> None:
    assert _ours(address) == _reference(address)


def test_random_addresses_match_email_validator() -> None:
    rng = random.Random(20260613)
    alphabet = string.ascii_letters + string.digits + '.@-_+"<> ()[]!#é例'
    for _ in range(3000):
        address = "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 24)))
        if address.strip():
            assert _ours(address) == _reference(address), address


def test_an_empty_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="empty"):
        normalise_email("   ")


def test_masking_keeps_the_domain_and_two_letters() -> None:
    assert mask_email("taro.yamada@example.jp") == "t***@example.jp"
    assert mask_email("nonsense") == "***"
