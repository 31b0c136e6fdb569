"""The outbox provider: one real, parseable `.eml` per recipient, written atomically."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest

from newsletter.providers.base import Batch
from newsletter.providers.outbox import OutboxProvider, write_atomically
from tests.fixtures.providers import JA_SUBJECT, make_batch, make_message, make_recipient


def read(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


def test_one_eml_per_recipient_in_the_issues_folder(tmp_path):
    result = OutboxProvider(tmp_path).send_batch(make_batch(3))
    files = sorted(p.name for p in (tmp_path / "issue-42").iterdir())
    assert files == [
        "1001-r___@example.com.eml",
        "1002-r___@example.com.eml",
        "1003-r___@example.com.eml",
    ]
    assert result.accepted == [1001, 1002, 1003]


def test_file_names_never_hold_a_full_address(tmp_path):
    OutboxProvider(tmp_path).send_batch(make_batch(2))
    names = " ".join(p.name for p in tmp_path.rglob("*.eml"))
    assert "reader1" not in names and "reader2" not in names


def test_each_file_is_a_complete_multipart_message_for_its_recipient(tmp_path):
    OutboxProvider(tmp_path).send_batch(make_batch(2))
    message = read(tmp_path / "issue-42" / "1002-r___@example.com.eml")
    assert message["Subject"] == JA_SUBJECT
    assert message["To"].addresses[0].addr_spec == "reader2@example.com"
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert "https://news.example.com/u/token-2" in text.get_content()
    assert "読者2さん" in html.get_content()
    assert message["List-Unsubscribe"].startswith("<https://news.example.com/u/token-2>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_transactional_mail_goes_to_its_own_folder_without_overwriting(tmp_path):
    outbox = OutboxProvider(tmp_path)
    message = make_message(issue_id=None, bulk=False, list_id=None)
    for _ in range(2):
        outbox.send_batch(Batch(0, message, [make_recipient(1, delivery_id=0)]))
    assert len(list((tmp_path / "transactional").glob("*.eml"))) == 2


def test_a_resend_replaces_the_file_whole_and_leaves_no_temporary_files(tmp_path):
    outbox = OutboxProvider(tmp_path)
    outbox.send_batch(make_batch(1))
    outbox.send_batch(make_batch(1))
    folder = tmp_path / "issue-42"
    assert [p.name for p in folder.iterdir()] == ["1001-r___@example.com.eml"]
    assert read(folder / "1001-r___@example.com.eml")["Subject"] == JA_SUBJECT


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "a.eml"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        write_atomically(target, None)  # type: ignore[arg-type]  # fails mid-write
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.eml"]


def test_an_unusable_address_is_failed_not_written(tmp_path):
    bad = make_recipient(2, email="broken address@example.com")
    result = OutboxProvider(tmp_path).send_batch(Batch(7, make_message(), [make_recipient(1), bad]))
    assert result.accepted == [1001]
    assert 1002 in result.failed
    assert len(list(tmp_path.rglob("*.eml"))) == 1
