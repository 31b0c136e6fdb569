"""The MIME builder shared by the preview and the test send (and open to the providers)."""

from __future__ import annotations

import email
from email import policy
from email.headerregistry import Address

from newsletter.providers.base import PreparedMessage
from newsletter.render.mime import build_mime, fill_slots
from newsletter.types import SLOT_NAME, SLOT_PREFERENCES_URL, SLOT_UNSUBSCRIBE_URL, RenderedVariant

HTML = f'<p>こんにちは</p><a href="{SLOT_UNSUBSCRIBE_URL}">配信停止</a>'
TEXT = f"こんにちは\n配信停止: {SLOT_UNSUBSCRIBE_URL}\n"
SLOTS = {
    SLOT_UNSUBSCRIBE_URL: "https://news.example.com/u/abc",
    SLOT_PREFERENCES_URL: "https://news.example.com/p/abc",
    SLOT_NAME: "",
}


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def test_fill_slots_replaces_every_marker() -> None:
    assert fill_slots(f"{SLOT_UNSUBSCRIBE_URL} {SLOT_UNSUBSCRIBE_URL}", SLOTS) == (
        "https://news.example.com/u/abc https://news.example.com/u/abc"
    )


def test_a_rendered_variant_becomes_text_then_html_alternatives() -> None:
    variant = RenderedVariant(1, "ja", "AI日報 2026年6月13日", "pre", HTML, TEXT)
    sender = Address("AI日報", "news", "ainippo.example")
    mail = parse(
        build_mime(variant, sender=sender, to="reader@example.com", slots=SLOTS).as_bytes()
    )
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert "https://news.example.com/u/abc" in text.get_content()
    assert 'href="https://news.example.com/u/abc"' in html.get_content()
    assert mail["Subject"] == "AI日報 2026年6月13日"
    assert mail["From"].addresses[0].display_name == "AI日報"
    assert mail["Message-ID"].endswith("@ainippo.example>")


def test_a_prepared_message_takes_a_subject_prefix_and_extra_headers() -> None:
    prepared = PreparedMessage(
        issue_id=None,
        variant="en",
        subject="Daily digest",
        html=HTML,
        text=TEXT,
        from_name="AI Nippo",
        from_email="news@ainippo.example",
    )
    mail = build_mime(
        prepared,
        sender="news@ainippo.example",
        to="editor@example.com",
        subject_prefix="[TEST] ",
        reply_to="desk@ainippo.example",
        headers={"X-Newsletter-Variant": "en"},
    )
    raw = mail.as_bytes()
    assert raw.isascii() and b"\r\n" in raw
    parsed = parse(raw)
    assert parsed["Subject"] == "[TEST] Daily digest"
    assert parsed["Reply-To"] == "desk@ainippo.example"
    assert parsed["X-Newsletter-Variant"] == "en"
