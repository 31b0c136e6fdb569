"""Headers as strict parsers read them: encoded words of at most 75 characters on lines of at
most 76, Content-Language per variant, Date with a numeric time zone."""

from __future__ import annotations

import email
import email.utils
import re
from email import policy
from email.header import decode_header, make_header

import pytest

from newsletter.providers.encoded_words import encoded_words
from newsletter.providers.mime import template_for
from tests.fixtures.providers import make_message, make_recipient

ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[QqBb]\?[^?\s]*\?=")
STRICT = policy.SMTP.clone(raise_on_defect=True)
LONG_SUBJECT = "AI日報 6月13日号: " + "生成AIの最新動向と規制の行方、" * 6
LONG_NAME = "山田太郎" * 12
LONG_LIST = "AI日報・デイリー版" * 6 + " <daily.ainippo.example>"


def rendered(**changes) -> bytes:
    message = make_message(subject=LONG_SUBJECT, list_id=LONG_LIST, **changes)
    return template_for(message).render(make_recipient(1, name=LONG_NAME))


def header_block(data: bytes) -> str:
    return data.split(b"\r\n\r\n", 1)[0].decode("ascii")


def test_every_encoded_word_is_at_most_75_characters_on_a_line_of_at_most_76():
    head = header_block(rendered())
    words = ENCODED_WORD.findall(head)
    assert len(words) > 10
    assert max(map(len, words)) <= 75
    for line in head.split("\r\n"):
        if ENCODED_WORD.search(line):
            assert len(line) <= 76, line


def test_the_strict_parser_reads_back_every_header_exactly():
    parsed = email.message_from_bytes(rendered(), policy=STRICT)
    assert parsed["Subject"] == " ".join(LONG_SUBJECT.split())
    # RFC 2047 6.2: the folding between adjacent encoded words is not part of the text.
    # (Python's structured address parser keeps a space there, so read the raw field.)
    raw_to = email.message_from_bytes(rendered(), policy=policy.compat32)["To"]
    display, address = email.utils.parseaddr(str(make_header(decode_header(raw_to))))
    assert (display, address) == (LONG_NAME, "reader1@example.com")
    assert parsed["To"].addresses[0].addr_spec == "reader1@example.com"
    assert parsed["From"].addresses[0].display_name == "AI日報"
    assert not parsed.defects
    for part in parsed.walk():
        assert not part.defects


@pytest.mark.parametrize(("variant", "language"), [("ja", "ja"), ("en", "en"), ("both", "ja, en")])
def test_content_language_names_the_variant_languages(variant, language):
    parsed = email.message_from_bytes(rendered(variant=variant), policy=STRICT)
    assert parsed["Content-Language"] == language


def test_the_date_has_a_numeric_time_zone():
    parsed = email.message_from_bytes(rendered(), policy=STRICT)
    assert re.fullmatch(
        r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000", str(parsed["Date"])
    )
    assert parsed["Date"].datetime.utcoffset().total_seconds() == 0
    assert "GMT" not in str(parsed["Date"])


def test_encoded_words_never_split_a_character_and_respect_the_first_room():
    text = "日本語🙂" * 30
    words = encoded_words(text, first_room=40)
    assert len(words[0]) <= 40
    assert all(len(w) <= 75 for w in words)
    decoded = "".join(str(email.header.make_header(email.header.decode_header(w))) for w in words)
    assert decoded == text


@pytest.mark.parametrize("before", [0, 1, 56, 57, 58, 114, 5000])
@pytest.mark.parametrize(
    "values", [("", "", "", ""), ("https://x.example/u/tok", "p", "山田", "7b.signature")]
)
def test_a_base64_part_is_the_whole_filled_part_encoded(before, values):
    """The prefix encoded once per variant plus the rest per recipient: the same bytes."""
    from newsletter.providers.mime import _Body64
    from newsletter.providers.transfer import b64, crlf
    from newsletter.types import SLOTS

    links = f"/c/{SLOTS[3]}/1 /c/{SLOTS[3]}/2\n"  # a tracked form: one slot many times a line
    content = (
        "日" * before + f"a{SLOTS[0]}b\n{SLOTS[1]}" + "本" * before + SLOTS[2] + links * 3 + "end\n"
    )
    filled = content
    for marker, value in zip(SLOTS, values, strict=True):
        filled = filled.replace(marker, value)
    assert _Body64(content, escape_html=False).fill(values) == b64(crlf(filled).encode())
    plain = "語" * before
    assert _Body64(plain, escape_html=False).fill(values) == b64(plain.encode())
