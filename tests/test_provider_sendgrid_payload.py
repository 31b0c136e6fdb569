"""The SendGrid payload builder is exactly the straightforward per-recipient construction.

`build_payload` is written for speed (one pass, per-batch values computed once, the exact
JSON size check only near the limit). The reference below is the plain form, written from the
provider's contract; both must give the same body, the same included recipients and the same
failures, including for awkward recipients.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from newsletter.providers.base import Batch, PreparedMessage, Recipient
from newsletter.providers.mime import (
    address_problem,
    clean_display_name,
    list_unsubscribe,
    transport_address,
)
from newsletter.providers.sendgrid import MAX_FIELD_BYTES, _shared_fields, build_payload
from newsletter.types import (
    SLOT_NAME,
    SLOT_PREFERENCES_URL,
    SLOT_TRACKING_TOKEN,
    SLOT_UNSUBSCRIBE_URL,
)
from tests.fixtures.providers import make_message, make_recipient

_HTML_SPECIAL = str.maketrans("", "", "<>&\"'")
_UNSAFE = (" ", "\t", "\n", "\r", "<", ">", '"', "'", "\f", "\v", "\u3000")


def _reference(
    batch: Batch, recipients: list[Recipient], sandbox: bool
) -> tuple[dict[str, Any], list[int], dict[int, str]]:
    personalizations = []
    included: list[int] = []
    failed: dict[int, str] = {}
    seen: dict[str, int] = {}
    for r in recipients:
        problem = address_problem(r.email)
        if problem is None and r.email.lower() in seen:
            problem = (
                f"the same address is already in this batch (delivery {seen[r.email.lower()]})"
            )
        tracked = batch.message.tracked
        if problem is None and tracked and not r.tracking_token:
            problem = "a tracked message needs the recipient's tracking token"
        if problem is None and any(
            url and any(c.isspace() or c in "<>\"'" for c in url)
            for url in (r.unsubscribe_url, r.preferences_url, r.tracking_token if tracked else "")
        ):
            problem = "a personal link contains whitespace, quotes or angle brackets"
        if problem is not None:
            failed[r.delivery_id] = problem
            continue
        name = clean_display_name(r.name)
        to = {"email": transport_address(r.email)}
        if name:
            to["name"] = name
        custom_args = {
            "batch_id": str(batch.batch_id),
            "delivery_id": str(r.delivery_id),
            "subscriber_id": str(r.subscriber_id),
        }
        if batch.message.issue_id is not None:
            custom_args["issue_id"] = str(batch.message.issue_id)
        item: dict[str, Any] = {
            "to": [to],
            "substitutions": {
                SLOT_UNSUBSCRIBE_URL: r.unsubscribe_url,
                SLOT_PREFERENCES_URL: r.preferences_url,
                SLOT_NAME: name.translate(_HTML_SPECIAL),
            },
            "custom_args": custom_args,
        }
        if tracked:
            item["substitutions"][SLOT_TRACKING_TOKEN] = r.tracking_token
        unsubscribe = list_unsubscribe(r)
        if batch.message.bulk and unsubscribe:
            headers = {"List-Unsubscribe": unsubscribe}
            if r.unsubscribe_url:
                headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            item["headers"] = headers
        too_big = [
            field
            for field in ("substitutions", "custom_args")
            if len(orjson.dumps(item[field])) >= MAX_FIELD_BYTES
        ]
        if too_big:
            failed[r.delivery_id] = f"{too_big[0]} reach SendGrid's 10,000-byte limit"
            continue
        seen[r.email.lower()] = r.delivery_id
        personalizations.append(item)
        included.append(r.delivery_id)
    body = _shared_fields(batch.message, sandbox)
    body["personalizations"] = personalizations
    return body, included, failed


def _awkward() -> list[Recipient]:
    limit = MAX_FIELD_BYTES
    return [
        make_recipient(1),
        make_recipient(2, name=""),
        make_recipient(3, name="  Ada \n Lovelace\t"),
        make_recipient(4, name="<b>Tom & \"Jerry\"</b> 'x'"),
        make_recipient(5, email="READER1@example.com"),  # the same address as 1
        make_recipient(6, email="not-an-address"),
        make_recipient(7, email="a b@example.com"),
        make_recipient(8, email="info@例え.jp"),
        make_recipient(9, email="名前@example.com"),
        make_recipient(10, unsubscribe_url="https://x.example/u/a b"),
        make_recipient(11, preferences_url='https://x.example/p/"q"'),
        make_recipient(12, unsubscribe_url="", unsubscribe_mailto=None),
        make_recipient(13, unsubscribe_url=""),
        make_recipient(14, unsubscribe_mailto=None),
        make_recipient(15, preferences_url=""),
        make_recipient(16, name="n" * (limit - 200)),  # long, but under the limit
        make_recipient(17, name="n" * limit),  # over the limit
        make_recipient(18, name="\x01" * (limit // 6 - 60)),  # escapes to 6 bytes a character
        make_recipient(19, name="\x01" * (limit // 6)),
        make_recipient(20, name="日本語" * (limit // 9 - 30)),
        make_recipient(21, name="日本語" * (limit // 9 + 10)),
        make_recipient(22, unsubscribe_url="https://x.example/u/" + "t" * (limit - 250)),
        make_recipient(23, delivery_id=10**4000, subscriber_id=10**4200),  # exactly checked
        make_recipient(24, name="😀" * 2600),
        make_recipient(25, email="reader25@EXAMPLE.com"),
        make_recipient(26, email="Reader25@example.COM"),  # the same as 25
    ]


@pytest.mark.parametrize(
    "message",
    [
        make_message(),
        make_message(issue_id=None, bulk=False, list_id=None),
        make_message(reply_to=None),
    ],
    ids=["bulk", "transactional", "no-reply-to"],
)
@pytest.mark.parametrize("sandbox", [False, True])
def test_the_payload_is_the_plain_per_recipient_construction(
    message: PreparedMessage, sandbox: bool
) -> None:
    recipients = _awkward() + [make_recipient(n) for n in range(100, 400)]
    batch = Batch(77, message, recipients)
    payload = build_payload(batch, recipients, sandbox=sandbox)
    body, included, failed = _reference(batch, recipients, sandbox)
    assert orjson.dumps(payload.body) == orjson.dumps(body)
    assert [r.delivery_id for r in payload.included] == included
    assert payload.failed == failed
    # The awkward cases did take the paths they are there for.
    assert "same address" in failed[1005] and "same address" in failed[1026]
    assert "10,000-byte" in failed[1017] and "10,000-byte" in failed[1019]
    assert "10,000-byte" in failed[1021] and "10,000-byte" in failed[1024]
    assert {1016, 1018, 1020, 1022, 10**4000} <= set(included)


def _awkward_text() -> list[Recipient]:
    """Values that JSON must escape or that are not ASCII, in every field a recipient fills."""
    names = [
        'say "hi"',
        "back\\slash\\",
        "ctl\x01\x08\x0e\x1f\x7f end",
        "emoji 😀 and 🇯🇵",
        "日本語の名前",
        "Zoë Ünïcødé",
        "line\u2028and\u2029paragraph",
        "<b>Tom & 'Jerry'</b>",
        "tab\tnew\nline\x0bvt\x0cff",
        "",
        "\x00",
    ]
    emails = [
        "info@例え.jp",
        "名前@example.jp",
        "ctl\x01@example.com",
        "del\x7f@example.com",
        "o'brien@example.com",
    ]
    links = [
        {"unsubscribe_url": "https://x.example/u/a\\b"},
        {"preferences_url": "https://例え.jp/p/トークン"},
        {"unsubscribe_url": "https://x.example/u/\x01"},
        {"unsubscribe_mailto": 'mailto:"q\\"@in.example?subject=unsubscribe'},
        {"unsubscribe_mailto": "mailto:unsubscribe+tök@in.example?subject=unsubscribe"},
        {"unsubscribe_mailto": "mailto:a b@in.example"},
        {"tracking_token": "tok\\en"},
        {"tracking_token": "tök"},
        {"tracking_token": ""},
        {"unsubscribe_url": ""},
    ]

    def person(n: int, **changes: str) -> Recipient:
        return make_recipient(n, **{"tracking_token": f"token-{n}", **changes})

    people = [person(n, name=name) for n, name in enumerate(names, start=1)]
    people += [person(n, email=email) for n, email in enumerate(emails, start=20)]
    people += [person(n, **link) for n, link in enumerate(links, start=40)]
    people += [person(n, name=names[n % len(names)]) for n in range(60, 120)]
    people += [person(n) for n in range(200, 260)]
    return people


@pytest.mark.parametrize("tracked", [False, True], ids=["untracked", "tracked"])
@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "transactional"])
@pytest.mark.parametrize("mailto", [True, False], ids=["mailto", "no-mailto"])
def test_the_directly_written_body_is_the_dict_form_byte_for_byte(
    tracked: bool, bulk: bool, mailto: bool
) -> None:
    """Most personalizations are written as JSON text, not serialised from dicts: for
    values that need escapes, are not ASCII or are refused, the bytes posted are exactly
    orjson's serialisation of the plain dict construction."""
    recipients = [r if mailto else replace(r, unsubscribe_mailto=None) for r in _awkward_text()]
    message = make_message(tracked=tracked, bulk=bulk)
    batch = Batch(9, message, recipients)
    payload = build_payload(batch, recipients, sandbox=False)
    body, included, failed = _reference(batch, recipients, sandbox=False)
    assert payload.data == orjson.dumps(body)
    assert [r.delivery_id for r in payload.included] == included
    assert payload.failed == failed


def test_whitespace_of_every_kind_in_a_link_is_refused() -> None:
    recipients = [
        make_recipient(n, unsubscribe_url=f"https://x.example/u/a{c}b")
        for n, c in enumerate(_UNSAFE, start=1)
    ]
    batch = Batch(1, make_message(), recipients)
    payload = build_payload(batch, recipients, sandbox=False)
    body, included, failed = _reference(batch, recipients, sandbox=False)
    assert payload.failed == failed
    assert len(failed) == len(_UNSAFE)
    assert orjson.dumps(payload.body) == orjson.dumps(body)


def test_a_link_is_refused_exactly_for_whitespace_quotes_and_angle_brackets() -> None:
    """Every character up to U+3100 (all of Unicode's whitespace, controls, Latin, CJK
    punctuation) in an ASCII and in a non-ASCII link: refused exactly when it is whitespace,
    a quote or an angle bracket, as the plain rule says."""
    for start in range(0, 0x3100, 1000):
        chars = [chr(c) for c in range(start, min(start + 1000, 0x3100))]
        for prefix in ("https://x.example/p/", "https://例え.jp/p/"):
            recipients = [
                make_recipient(n, preferences_url=f"{prefix}a{c}b") for n, c in enumerate(chars)
            ]
            payload = build_payload(Batch(1, make_message(), recipients), recipients, sandbox=False)
            refused = {r.delivery_id for r in recipients if r.delivery_id in payload.failed}
            expected = {
                r.delivery_id
                for r, c in zip(recipients, chars, strict=True)
                if c.isspace() or c in "<>\"'"
            }
            assert refused == expected


def test_the_plain_address_shortcut_is_address_problem_for_every_short_ascii_string() -> None:
    """`build_payload` skips `address_problem` for ASCII addresses its pattern accepts: every
    string of up to four characters from an alphabet of the characters that matter gets the
    same verdict both ways."""
    from itertools import product

    from newsletter.providers.mime import address_problem
    from newsletter.providers.sendgrid import _PLAIN_ADDRESS

    alphabet = "a@. \t\r\n<,;\"'()[]\\\x00\x7f-"
    for length in range(1, 5):
        for chars in product(alphabet, repeat=length):
            email = "".join(chars)
            for candidate in (email, f"x{email}y.z", f"{email}@d.jp"):
                fine = address_problem(candidate) is None
                assert (_PLAIN_ADDRESS.fullmatch(candidate) is not None) == fine, candidate


def test_an_address_is_refused_exactly_when_address_problem_says_so() -> None:
    """Most addresses are accepted by one pattern together with the links: every string of
    up to three characters from an alphabet of the characters that matter, alone and inside
    an address, is refused exactly when `address_problem` refuses it."""
    from itertools import product

    alphabet = "a@. \t\r\n<,;\"'()[]\\\x00\x7f-"
    candidates = [
        candidate
        for length in range(1, 4)
        for chars in product(alphabet, repeat=length)
        for candidate in ("".join(chars), f"x{''.join(chars)}y.z", f"{''.join(chars)}@d.jp")
    ]
    for start in range(0, len(candidates), 1000):
        chunk = candidates[start : start + 1000]
        recipients = [make_recipient(n, email=email) for n, email in enumerate(chunk)]
        payload = build_payload(Batch(1, make_message(), recipients), recipients, sandbox=False)
        for recipient in recipients:
            problem = payload.failed.get(recipient.delivery_id)
            expected = address_problem(recipient.email)
            if problem is None or "same address" not in problem:
                assert problem == expected, repr(recipient.email)
