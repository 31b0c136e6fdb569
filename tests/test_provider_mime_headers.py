"""Headers as strict parsers read them: encoded words of at most 75 characters on lines of at
most 76, Content-Language per variant, Date with a numeric time zone."""

from __future__ import annotations

import email
import email.utils
import re
from email import policy
from email.header import decode_header, make_header

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    "values", [("", "", "", ""), ("https://x.example/u/tok", "p", "山田", "1f.tok")]
)
def test_a_base64_part_is_the_whole_filled_part_encoded(before, values):
    """The prefix encoded once per variant plus the rest per recipient: the same bytes."""
    from newsletter.providers.mime import _Body64
    from newsletter.providers.transfer import b64, crlf
    from newsletter.types import SLOTS

    content = (
        "日" * before + f"a{SLOTS[0]}b\n{SLOTS[1]}" + "本" * before + SLOTS[2] + "end\n"
        + f"/c/{SLOTS[3]}/1 /c/{SLOTS[3]}/2\n"
    )  # fmt: skip
    filled = content
    for marker, value in zip(SLOTS, values, strict=True):
        filled = filled.replace(marker, value)
    assert _Body64(content, escape_html=False).fill(values) == b64(crlf(filled).encode())
    plain = "語" * before
    assert _Body64(plain, escape_html=False).fill(values) == b64(plain.encode())


ATEXT = "abcXYZ019!#$%&'*+/^_`{|}~-=?.,;:<>@\"() \\"


@settings(max_examples=400, deadline=None)
@given(
    display=st.text(alphabet=ATEXT[:27] + " ", max_size=70) | st.text(alphabet=ATEXT, max_size=60),
    local=st.text(alphabet="abz09_+-.", min_size=1, max_size=30),
    domain=st.sampled_from(["example.com", "a-b.example.co.jp", "x.y", "-x.example"]),
)
def test_the_plain_address_header_is_what_the_email_policy_folds(display, local, domain):
    from email.utils import formataddr

    from newsletter.providers.mime import address_header, clean_display_name, fold_header

    address = f"{local}@{domain}"
    plain = fold_header("To", formataddr((clean_display_name(display), address)))
    assert address_header("To", display, address) == plain


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000))
def test_base64_lines_are_the_plain_line_by_line_construction(data):
    import binascii

    from newsletter.providers.transfer import b64

    encoded = binascii.b2a_base64(data, newline=False)
    plain = b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"
    assert b64(data) == plain


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(st.sampled_from([".", "..", ".x", "a.b", "", "text", "-subscriber_name-",
                                    ".-unsubscribe_url-", "日本語.", "=2E"]), max_size=12),
    name=st.sampled_from(["", ".dot", "Reader", "読者.", "."]),
    eightbit=st.booleans(),
)  # fmt: skip
def test_dot_stuffed_pieces_are_the_whole_message_stuffed(lines, name, eightbit):
    body = "\n".join(lines)
    message = make_message(text=body + "\n-unsubscribe_url-\n", html="<p>" + body + "</p>")
    template = template_for(message)
    recipient = make_recipient(1, name=name)
    pieces = template.render_pieces(recipient, eightbit=eightbit)
    whole = b"".join(pieces)
    plain = whole.replace(b"\r\n.", b"\r\n..")
    plain = b"." + plain if plain.startswith(b".") else plain
    assert b"".join(template.dot_stuffed(pieces)) == plain
