"""The confirmation email: its parts, and how it looks in a real browser at phone width."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Secret, Settings, load_settings
from newsletter.types import SLOT_UNSUBSCRIBE_URL
from subscribers.mailer import render_confirmation

URL = "https://news.example.com/confirm/token-123"


@pytest.fixture
def mail_settings(tmp_path: Path) -> Settings:
    return load_settings(
        {},
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        var_dir=tmp_path / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
    )


def _render(settings: Settings, language: str, name: str | None = "山田") -> Any:
    return render_confirmation(
        settings,
        language=language,
        name=name,
        list_name="AI日報",
        confirm_url=URL,
        expires_at=datetime(2026, 6, 19, 21, 30, tzinfo=UTC),
    )


def test_the_expiry_is_shown_in_the_newsletter_time_zone(mail_settings: Settings) -> None:
    mail = _render(mail_settings, "ja")
    assert "2026年6月20日 6:30 まで有効" in mail.text  # 21:30 UTC is 06:30 in Tokyo


def test_the_text_part_has_the_link_and_the_postal_address(mail_settings: Settings) -> None:
    mail = _render(mail_settings, "en", name=None)
    assert URL in mail.text
    assert mail_settings.postal_address in mail.text
    assert mail.text.splitlines()[2] == "Hello,"


def test_a_name_cannot_smuggle_a_slot_marker_or_a_header_break(mail_settings: Settings) -> None:
    mail = _render(mail_settings, "en", name=f"Eve\r\nBcc: x {SLOT_UNSUBSCRIBE_URL}")
    assert SLOT_UNSUBSCRIBE_URL not in mail.text and SLOT_UNSUBSCRIBE_URL not in mail.html
    assert "Hello Eve Bcc: x," in mail.text


@pytest.mark.browser
@pytest.mark.parametrize("language", ["ja", "en", "both"])
def test_the_confirm_button_is_visible_on_a_phone_and_links_to_the_token(
    browser_page: Any, mail_settings: Settings, language: str, tmp_path: Path
) -> None:
    page = browser_page
    html = tmp_path / f"confirm-{language}.html"
    html.write_text(_render(mail_settings, language).html, encoding="utf-8")
    page.goto(html.as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    buttons = page.locator(f'a[href="{URL}"]')
    assert buttons.count() == (2 if language == "both" else 1)
    box = buttons.first.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 20
    page.screenshot(path=str(tmp_path / f"confirm-{language}.png"))
