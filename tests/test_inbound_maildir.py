"""The unsubscribe and bounce addresses read from a Maildir: the same outcomes as over SMTP,
each message acted on once."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

from newsletter.errors import NotFoundError
from newsletter.runtime import Runtime
from subscribers.inbound_mailbox import read_maildir
from tests.fixtures.web import Seeded
from tests.test_bounces import dsn
from tests.test_inbound import DOMAIN, _address, _bounce_to, _status, _suppressed


def _box(tmp_path: Path, *messages: bytes) -> Path:
    path = tmp_path / "Maildir"
    box = mailbox.Maildir(path, create=True)
    for data in messages:
        box.add(data)
    return path


def _read(runtime: Runtime, path: Path):
    return read_maildir(path, runtime.sessions, runtime.settings, runtime.clock, DOMAIN)


def test_a_bounce_delivered_to_the_maildir_suppresses(
    tmp_path: Path, web_runtime: Runtime, web_seed: Seeded
) -> None:
    bounce = f"Delivered-To: {_bounce_to(web_runtime, web_seed)}\r\n".encode()
    path = _box(tmp_path, bounce + dsn("failed", "5.1.1", web_seed.email))
    report = _read(web_runtime, path)
    assert [o.outcome for o in report.outcomes] == ["suppressed"]
    assert _suppressed(web_runtime, web_seed) == "bounced"


def test_an_unsubscribe_found_in_x_original_to_unsubscribes(
    tmp_path: Path, web_runtime: Runtime, web_seed: Seeded
) -> None:
    message = (
        f"X-Original-To: {_address(web_runtime, web_seed)}\r\n"
        "From: reader@example.jp\r\nTo: list@example.jp\r\nSubject: unsubscribe\r\n\r\nstop\r\n"
    ).encode()
    report = _read(web_runtime, _box(tmp_path, message))
    assert [o.outcome for o in report.outcomes] == ["unsubscribed"]
    assert _status(web_runtime, web_seed) == "unsubscribed"


def test_each_message_is_read_once_and_kept_as_seen(
    tmp_path: Path, web_runtime: Runtime, web_seed: Seeded
) -> None:
    other = b"To: someone@example.jp\r\nSubject: hello\r\n\r\nnot for us\r\n"
    path = _box(tmp_path, other)
    first = _read(web_runtime, path)
    assert (first.read, first.not_ours) == (1, 1)
    assert _read(web_runtime, path).read == 0
    [key] = mailbox.Maildir(path).keys()
    kept = mailbox.Maildir(path).get_message(key)
    assert (kept.get_subdir(), "S" in kept.get_flags()) == ("cur", True)


def test_a_forged_bounce_address_changes_nothing(
    tmp_path: Path, web_runtime: Runtime, web_seed: Seeded
) -> None:
    forged = _bounce_to(web_runtime, web_seed).replace("bounces+", "bounces+x")
    path = _box(tmp_path, f"Delivered-To: {forged}\r\n".encode() + dsn("failed", "5.1.1"))
    assert [o.outcome for o in _read(web_runtime, path).outcomes] == ["forged"]
    assert _suppressed(web_runtime, web_seed) is None


def test_a_folder_that_is_not_a_maildir_is_named_in_the_error(
    tmp_path: Path, web_runtime: Runtime
) -> None:
    with pytest.raises(NotFoundError, match="not a Maildir"):
        _read(web_runtime, tmp_path)
