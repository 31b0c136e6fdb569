"""Per-recipient MIME messages: what a mail client sees when it opens one."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

from newsletter.providers.mime import address_problem, build_message, template_for
from newsletter.render.mime import fill_slots
from newsletter.types import SLOT_NAME, SLOT_PREFERENCES_URL, SLOT_UNSUBSCRIBE_URL
from tests.fixtures.providers import JA_SUBJECT, make_message, make_recipient


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = list(message.iter_parts())
    return text.get_content(), html.get_content()


def test_message_is_multipart_alternative_with_text_first_then_html():
    message = parse(build_message(make_message(), make_recipient(1)))
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in message.iter_parts())


def test_japanese_subject_and_sender_survive_rfc2047_encoding():
    data = build_message(make_message(), make_recipient(1))
    message = parse(data)
    assert message["Subject"] == JA_SUBJECT
    assert message["From"].addresses[0].display_name == "AI日報"
    assert data.isascii(), "the wire format is 7-bit: no server needs 8BITMIME"


def test_slots_are_filled_with_the_recipients_own_links_and_name():
    text, html = parts(parse(build_message(make_message(), make_recipient(3))))
    assert "読者3さん、おはようございます。" in text
    assert "配信停止: https://news.example.com/u/token-3" in text
    assert 'href="https://news.example.com/p/token-3"' in html
    assert "-unsubscribe_url-" not in text + html


def test_values_are_html_escaped_in_the_html_part_only():
    recipient = make_recipient(
        1, name="<b>Ann & Bob</b>", unsubscribe_url="https://x.example/u?a=1&b=2"
    )
    text, html = parts(parse(build_message(make_message(), recipient)))
    assert "<b>Ann & Bob</b>さん" in text
    assert "&lt;b&gt;Ann &amp; Bob&lt;/b&gt;さん" in html
    assert 'href="https://x.example/u?a=1&amp;b=2"' in html


def test_bulk_headers_carry_one_click_unsubscribe_and_list_id():
    message = parse(build_message(make_message(), make_recipient(5)))
    assert message["List-Unsubscribe"] == (
        "<https://news.example.com/u/token-5>, <mailto:unsubscribe@ainippo.example?subject=u5>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "AI日報 <daily.ainippo.example>"
    assert message["Precedence"] == "bulk"
    assert message["X-Newsletter-Delivery"] == "1005"
    assert message["To"].addresses[0].addr_spec == "reader5@example.com"
    assert message["Reply-To"] == "editors@ainippo.example"
    assert message["Date"] is not None


def test_transactional_mail_is_auto_submitted_without_list_headers():
    message = parse(build_message(make_message(bulk=False, list_id=None), make_recipient(1)))
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"] is None
    assert message["Precedence"] is None


def test_message_ids_are_unique_per_recipient_and_per_send():
    message = make_message()
    ids = {parse(build_message(message, make_recipient(n)))["Message-ID"] for n in range(50)}
    ids.add(parse(build_message(message, make_recipient(1)))["Message-ID"])
    assert len(ids) == 51
    assert all(i.endswith("@ainippo.example>") for i in ids)


def test_no_line_exceeds_smtp_limits_even_with_long_lines_and_long_links():
    long_url = "https://news.example.com/u/" + "t" * 300
    message = make_message(html="<p>" + "長" * 5000 + f'</p><a href="{SLOT_UNSUBSCRIBE_URL}">x</a>')
    data = build_message(message, make_recipient(1, unsubscribe_url=long_url))
    head, _, body = data.partition(b"\r\n\r\n")
    assert max(len(line) for line in body.split(b"\r\n")) <= 78  # QP keeps body lines short
    assert max(len(line) for line in head.split(b"\r\n")) <= 998  # a link cannot be folded
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert long_url in parts(parse(data))[1]


def test_a_line_break_in_a_name_cannot_inject_headers():
    recipient = make_recipient(1, name="Eve\r\nBcc: victim@example.com")
    message = parse(build_message(make_message(), recipient))
    assert message["Bcc"] is None
    assert message["To"].addresses[0].display_name == "Eve Bcc: victim@example.com"


def test_subject_slots_are_filled_per_recipient():
    message = make_message(subject=f"{SLOT_NAME}さんへ: AI日報")
    assert parse(build_message(message, make_recipient(2)))["Subject"] == "読者2さんへ: AI日報"


def test_content_matches_the_preview_builder_for_the_same_values():
    message = make_message()
    recipient = make_recipient(1)
    values = {
        SLOT_UNSUBSCRIBE_URL: recipient.unsubscribe_url,
        SLOT_PREFERENCES_URL: recipient.preferences_url,
        SLOT_NAME: recipient.name,
    }
    text, html = parts(parse(build_message(message, recipient)))
    assert text.replace("\r\n", "\n") == fill_slots(message.text, values)
    assert html == fill_slots(message.html, values)


def test_the_compiled_template_is_shared_by_every_batch_of_a_variant():
    message = make_message()
    assert template_for(message) is template_for(make_message())


def test_addresses_that_could_break_a_header_are_refused():
    assert address_problem("reader@example.com") is None
    assert address_problem("a@b.example\r\nBcc: x@y.example") is not None
    assert address_problem("no-at-sign") is not None
    assert address_problem("two words@example.com") is not None


def test_eightbit_bodies_are_raw_utf8_with_the_minified_html_folded_between_attributes():
    template = template_for(make_message())
    data = template.render(make_recipient(1), eightbit=True)
    text, html = parse(data).iter_parts()
    assert text["Content-Transfer-Encoding"] == "8bit"
    # One line + 3 slots > 998 octets: folded at the spaces inside the <a> tags instead.
    assert html["Content-Transfer-Encoding"] == "8bit"
    assert "読者1さん、おはようございます。".encode() in data
    assert "配信停止: https://news.example.com/u/token-1" in text.get_content()
    assert 'href="https://news.example.com/u/token-1"' in html.get_content()
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_html_that_cannot_be_folded_within_998_octets_keeps_its_seven_bit_encoding():
    template = template_for(make_message(html="<p>" + "長" * 400 + "</p>"))
    data = template.render(make_recipient(1), eightbit=True)
    html = list(parse(data).iter_parts())[1]
    assert html["Content-Transfer-Encoding"] == template.encodings[1] == "base64"
    assert html.get_content() == "<p>" + "長" * 400 + "</p>"


def test_without_eightbit_everything_is_seven_bit():
    template = template_for(make_message(html="<p>" + "長" * 400 + "</p>"))
    assert template.render(make_recipient(1)).isascii()


def test_a_value_too_long_for_an_8bit_line_falls_back_to_seven_bit():
    recipient = make_recipient(1, unsubscribe_url="https://news.example.com/u/" + "t" * 400)
    template = template_for(make_message())
    data = template.render(recipient, eightbit=True)
    text_encoding = template.encodings[0]  # by size: base64 for this mostly Japanese text
    assert f"Content-Transfer-Encoding: {text_encoding}".encode() in data
    assert b"Content-Transfer-Encoding: 8bit" not in data
    assert "https://news.example.com/u/" + "t" * 400 in parts(parse(data))[0]


def test_an_internationalised_domain_goes_out_in_its_ascii_form() -> None:
    from newsletter.providers.mime import address_problem, transport_address

    assert address_problem("info@例え.jp") is None
    assert transport_address("info@例え.jp") == "info@xn--r8jz45g.jp"
    assert transport_address("taro@example.jp") == "taro@example.jp"


def test_a_non_ascii_local_part_is_refused_with_a_reason() -> None:
    from newsletter.providers.mime import address_problem

    assert "SMTPUTF8" in (address_problem("たろう@example.jp") or "")
