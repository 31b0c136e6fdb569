"""What an editor checks before the send: preview files, the preview page, the test send."""

from __future__ import annotations

import email
import json
import threading
import urllib.request
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli.context import AppContext
from newsletter.cli.main import cli
from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import Delivery, SendBatch, Suppression
from newsletter.errors import SuppressedError, ValidationError
from newsletter.preview import make_server, send_test_email, write_preview
from newsletter.providers.outbox import OutboxProvider
from newsletter.render.renderer import render_issue_variants
from newsletter.render.view import issue_view_from_dicts
from newsletter.types import SLOTS, RenderedVariant
from subscribers.audience import is_mailable_address
from subscribers.hashing import EmailHasher
from tests.fixtures.render import ISSUE_DATE, make_article, store_issue


@pytest.fixture
def rendered(render_settings: Settings) -> dict[str, RenderedVariant]:
    view = issue_view_from_dicts(5, ISSUE_DATE, [make_article(1), make_article(2)])
    return render_issue_variants(view, render_settings)


def test_preview_writes_html_text_and_eml_per_variant(
    rendered: dict[str, RenderedVariant], render_settings: Settings, tmp_path: Path
) -> None:
    files, index = write_preview(
        rendered.values(), tmp_path / "p", render_settings, issue_label="2026-06-13"
    )
    assert [f.variant for f in files] == ["ja", "en", "both", "both-en"]
    for f in files:
        html = f.html.read_text(encoding="utf-8")
        assert "https://news.example.com/u/preview" in html
        assert not any(slot in html for slot in SLOTS)
        assert not any(slot in f.text.read_text(encoding="utf-8") for slot in SLOTS)
    assert index.name == "index.html"


def test_preview_eml_is_multipart_alternative_utf8_with_encoded_subject(
    rendered: dict[str, RenderedVariant], render_settings: Settings, tmp_path: Path
) -> None:
    files, _ = write_preview([rendered["ja"]], tmp_path, render_settings, issue_label="x")
    raw = files[0].eml.read_bytes()
    assert raw.isascii()  # RFC 2047 headers, encoded bodies
    assert b"\r\n" in raw
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == rendered["ja"].subject
    assert "=?utf-8?" in raw.decode("ascii").split("\r\n\r\n")[0]
    plain, html = message.iter_parts()
    assert plain.get_content_type() == "text/plain" and plain.get_content_charset() == "utf-8"
    assert html.get_content_type() == "text/html"
    assert "今日のまとめ" in plain.get_content() and "今日のまとめ" in html.get_content()


def test_preview_page_shows_each_variant_at_phone_and_desktop_width(
    rendered: dict[str, RenderedVariant], render_settings: Settings, tmp_path: Path
) -> None:
    _, index = write_preview(rendered.values(), tmp_path, render_settings, issue_label="x")
    page = index.read_text(encoding="utf-8")
    for variant in ("ja", "en", "both", "both-en"):
        assert f'class="phone" src="{variant}.html"' in page
        assert f'class="desktop" src="{variant}.html"' in page
    assert ".phone { width:375px; }" in page
    assert "https://news.example.com/u/preview" in page  # the text part, slots filled
    assert "== 今日のまとめ ==" in page


def test_preview_server_serves_the_page_on_localhost(
    rendered: dict[str, RenderedVariant], render_settings: Settings, tmp_path: Path
) -> None:
    write_preview(rendered.values(), tmp_path, render_settings, issue_label="x")
    server = make_server(tmp_path, port=0)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as resp:
            assert resp.status == 200 and b"<iframe" in resp.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ja.html", timeout=5) as resp:
            assert "今日のまとめ".encode() in resp.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ja.txt", timeout=5) as resp:
            assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    finally:
        server.shutdown()
        server.server_close()


def test_test_send_goes_only_to_the_editors_with_a_test_subject(
    rendered: dict[str, RenderedVariant], render_settings: Settings, tmp_path: Path
) -> None:
    provider = OutboxProvider(tmp_path / "outbox")
    results = send_test_email(
        {"ja": rendered["ja"]},
        ["editor@example.com", "chief@example.com"],
        render_settings,
        provider,
        is_mailable=lambda address: True,
    )
    assert len(results["ja"].accepted) == 2
    files = sorted((tmp_path / "outbox" / "transactional").glob("*.eml"))
    assert len(files) == 2
    message = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert message["Subject"] == "[TEST] " + rendered["ja"].subject
    assert not (tmp_path / "outbox" / "issue-5").exists()  # nothing in the issue's mail


def test_test_send_refuses_a_suppressed_address(
    rendered,
    render_settings: Settings,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    with sessions.begin() as session:
        hasher = EmailHasher.load(session)
        session.add(
            Suppression(
                email_hash=hasher("Bounced@Example.com"), reason="bounced", created_at=clock.now()
            )
        )
    provider = OutboxProvider(tmp_path / "outbox")
    with sessions() as session, pytest.raises(SuppressedError, match=r"b\*\*\*@example.com"):
        send_test_email(
            {"ja": rendered["ja"]},
            ["editor@example.com", "bounced@example.com"],
            render_settings,
            provider,
            is_mailable=lambda address: is_mailable_address(session, hasher(address)),
        )
    assert not (tmp_path / "outbox").exists()  # nobody got it, not even the first editor


def test_test_send_needs_an_address(
    rendered: dict[str, RenderedVariant], render_settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="--to"):
        send_test_email(
            rendered, [], render_settings, OutboxProvider(tmp_path), is_mailable=lambda a: True
        )


def test_preview_command_writes_files_for_an_issue(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    with sessions.begin() as session:
        issue = store_issue(session, [make_article(1)], built_at=clock.now())
        issue_id = issue.id
    app = AppContext()
    app._settings = settings
    out = tmp_path / "preview"
    result = CliRunner().invoke(
        cli, ["issue", "preview", str(issue_id), "--out", str(out), "--json"], obj=app
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [v["variant"] for v in report["variants"]] == ["ja", "en", "both", "both-en"]
    assert (out / "both.eml").exists() and (out / "index.html").exists()


def test_preview_command_names_a_missing_issue(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    app = AppContext()
    app._settings = settings
    result = CliRunner().invoke(cli, ["issue", "preview", "999"], obj=app)
    assert result.exit_code == 66
    assert "999" in result.output


def test_commands_have_help() -> None:
    for command in ("preview", "test-send"):
        result = CliRunner().invoke(cli, ["issue", command, "--help"])
        assert result.exit_code == 0 and "--lang" in result.output


def test_test_send_command_mails_the_editor_and_leaves_the_ledger_alone(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue_id = store_issue(session, [make_article(1)], built_at=clock.now()).id
    app = AppContext()
    app._settings = settings  # provider "outbox" into the test's tmp dir
    result = CliRunner().invoke(
        cli,
        ["issue", "test-send", str(issue_id), "--to", "editor@example.com", "--lang", "en"],
        obj=app,
    )
    assert result.exit_code == 0, result.output
    assert "en: 1 accepted" in result.output
    [sent] = (settings.outbox_dir / "transactional").glob("*.eml")
    message = email.message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert message["Subject"].startswith("[TEST] AI日報 June 13, 2026")
    assert message["To"] == "editor@example.com"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.scalar(select(func.count()).select_from(SendBatch)) == 0


def test_test_send_command_refuses_a_suppressed_address(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue_id = store_issue(session, [make_article(1)], built_at=clock.now()).id
        hasher = EmailHasher.load(session)
        session.add(
            Suppression(
                email_hash=hasher("gone@example.com"), reason="complained", created_at=clock.now()
            )
        )
    app = AppContext()
    app._settings = settings
    result = CliRunner().invoke(
        cli, ["issue", "test-send", str(issue_id), "--to", "gone@example.com"], obj=app
    )
    assert result.exit_code == 65
    assert "suppression list" in result.output and "gone@example.com" not in result.output
    assert not settings.outbox_dir.exists()
