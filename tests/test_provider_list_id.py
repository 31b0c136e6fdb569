"""List-Id stays well-formed (RFC 2919) whatever the list is called.

The list's name is a phrase in front of `<namespace>`; a name with `<`, `>`, quotes, commas or
non-ASCII text must not move where a reader finds the namespace. Checked with the standard
library's strict parser: the whole message, and the header by the RFC 5322 phrase grammar.
"""

from __future__ import annotations

import email
from email import policy
from email._header_value_parser import get_phrase  # the stdlib's RFC 5322 phrase grammar
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr

import pytest

from newsletter.providers.base import Batch
from newsletter.providers.mime import build_message
from newsletter.providers.sendgrid import build_payload
from tests.fixtures.providers import make_message, make_recipient

NAMESPACE = "daily.news.example.com"
NAMES = [
    'Evil <x>, "AI日報"',
    'Weekly, "AI" <digest>',
    'back\\slash "quoted"',
    "semi; colon: (comment) @at",
    "AI日報 <editors@example.com> 週刊, 特別号 " * 4,
    "line\r\nBcc: victim@example.com",
]


def check_list_id(value: str, name: str) -> None:
    """`value` is `phrase <NAMESPACE>`; the phrase decodes to the list's name."""
    assert "\r" not in value.replace("\r\n ", "") and "\n" not in value.replace("\r\n ", "")
    unfolded = value.replace("\r\n ", " ")
    phrase, rest = get_phrase(unfolded)
    assert phrase.all_defects == []
    assert rest == f"<{NAMESPACE}>"
    raw_phrase = unfolded[: -len(rest)].strip()
    decoded = str(make_header(decode_header(raw_phrase)))
    if raw_phrase.startswith('"'):
        decoded = phrase.value.strip()
    assert decoded == " ".join(name.split())
    assert parseaddr(unfolded)[1] == NAMESPACE


@pytest.mark.parametrize("name", NAMES)
def test_the_mime_header_parses_strictly_with_the_namespace_intact(name: str) -> None:
    data = build_message(make_message(list_id=f"{name} <{NAMESPACE}>"), make_recipient(1))
    message = email.message_from_bytes(data, policy=policy.strict)
    assert isinstance(message, EmailMessage)
    assert message.defects == []
    assert len(message.get_all("List-Id") or []) == 1
    assert message.get_all("Bcc") is None
    raw = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    header = raw.split("\r\nList-Id: ", 1)[1]
    value = header.split("\r\n")[0]
    for continuation in header.split("\r\n")[1:]:
        if not continuation.startswith(" "):
            break
        value += "\r\n" + continuation
    assert all(len(line) <= 78 for line in ("List-Id: " + value).split("\r\n"))
    check_list_id(value, name)


@pytest.mark.parametrize("name", [*NAMES, "AI日報"])  # SendGrid wants non-ASCII encoded
def test_the_sendgrid_header_is_the_same_well_formed_value(name: str) -> None:
    message = make_message(list_id=f"{name} <{NAMESPACE}>")
    recipients = [make_recipient(1)]
    payload = build_payload(Batch(1, message, recipients), recipients, sandbox=False)
    value = payload.body["headers"]["List-Id"]
    assert value.isascii()
    check_list_id(value, name)


def test_a_unicode_namespace_goes_in_its_idna_form() -> None:
    data = build_message(make_message(list_id="AI日報 <daily.例え.jp>"), make_recipient(1))
    message = email.message_from_bytes(data, policy=policy.strict)
    assert parseaddr(str(message["List-Id"]))[1] == "daily.xn--r8jz45g.jp"
