"""Structured logs: one line per event, JSON or text, and never a full e-mail address."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from newsletter.logs import configure_logging, log_event, mask_email, mask_text


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    configure_logging("text")  # leave a harmless handler behind for other tests


def _configure(stream: io.StringIO, log_format: str) -> None:
    configure_logging(log_format, stream=stream)


def test_mask_email_keeps_the_first_letter_and_the_domain() -> None:
    assert mask_email("taro.yamada@example.com") == "t***@example.com"


def test_mask_text_masks_every_address_in_free_text() -> None:
    text = mask_text("bounced: taro@example.com, hanako@example.co.jp (twice)")
    assert text == "bounced: t***@example.com, h***@example.co.jp (twice)"


def test_json_format_writes_one_object_per_event_with_its_fields(captured: io.StringIO) -> None:
    stream = captured
    _configure(stream, "json")
    log_event(logging.getLogger("newsletter.pipeline"), "pipeline.sent", list="daily", accepted=3)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "info"
    assert record["logger"] == "newsletter.pipeline"
    assert record["event"] == "pipeline.sent"
    assert record["list"] == "daily" and record["accepted"] == 3
    assert record["ts"].endswith("Z")


def test_text_format_is_one_readable_line(captured: io.StringIO) -> None:
    stream = captured
    _configure(stream, "text")
    log_event(logging.getLogger("newsletter.scheduler"), "scheduler.started", lists=2, note="a b")
    line = stream.getvalue().rstrip("\n")
    assert "\n" not in line
    assert ' INFO newsletter.scheduler scheduler.started lists=2 note="a b"' in line


def test_addresses_in_messages_and_arguments_are_masked(captured: io.StringIO) -> None:
    stream = captured
    _configure(stream, "json")
    logging.getLogger("anything").warning("could not send to %s", "taro@example.com")
    assert "taro@example.com" not in stream.getvalue()
    assert json.loads(stream.getvalue())["event"] == "could not send to t***@example.com"


def test_addresses_in_event_fields_are_masked(captured: io.StringIO) -> None:
    stream = captured
    _configure(stream, "text")
    log_event(logging.getLogger("x"), "delivery.failed", recipient="hanako@example.jp")
    assert "hanako@example.jp" not in stream.getvalue()
    assert "recipient=h***@example.jp" in stream.getvalue()


def test_addresses_in_tracebacks_are_masked(captured: io.StringIO) -> None:
    stream = captured
    _configure(stream, "json")
    try:
        raise ValueError("bad recipient jiro@example.com")
    except ValueError:
        logging.getLogger("x").exception("send failed")
    record = json.loads(stream.getvalue())
    assert "jiro@example.com" not in record["exception"]
    assert "j***@example.com" in record["exception"]


def test_configuring_twice_keeps_one_handler(captured: io.StringIO) -> None:
    stream = captured
    _configure(stream, "json")
    _configure(stream, "json")
    logging.getLogger("x").info("once")
    assert len(stream.getvalue().splitlines()) == 1


def test_an_event_can_carry_its_traceback_on_the_same_json_line(captured: io.StringIO) -> None:
    _configure(captured, "json")
    try:
        raise RuntimeError("boom for saburo@example.com")
    except RuntimeError:
        log_event(logging.getLogger("x"), "job.failed", level=logging.ERROR, exc_info=True, n=1)
    [line] = captured.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "job.failed" and record["n"] == 1
    assert "RuntimeError: boom for s***@example.com" in record["exception"]
