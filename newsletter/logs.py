"""Structured logging: one line per event, as JSON lines or readable text, addresses masked.

Entry points (the CLI, the scheduler, workers) call `configure_logging` once. Code logs events
with `log_event(logger, "pipeline.sent", list="daily", accepted=120)`: the message is the event
name and the keyword arguments are fields. With `NEWSLETTER_LOG_FORMAT=json` each record is one
JSON object `{"ts", "level", "logger", "event", ...fields}`; otherwise a readable line
`2026-06-13T07:00:00Z INFO newsletter.pipeline pipeline.sent list=daily accepted=120`.

Every record passes through `MaskingFilter`, which replaces any e-mail address in the message,
its arguments and its fields by `t***@example.com`: a last line of defence, so a careless
`log.info("sent to %s", email)` anywhere still never writes a full address.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

FIELDS_ATTR = "event_fields"
_HANDLER_NAME = "newsletter"

# Deliberately broad: better to mask something that only looks like an address.
_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+\-!#$&'*/=?^`{|}~]+)@([A-Za-z0-9](?:[A-Za-z0-9.\-]*\w)?)")


def mask_email(address: str) -> str:
    """`taro@example.com` -> `t***@example.com`: enough to recognise, not enough to mail."""
    local, sep, domain = address.rpartition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}" if local else f"***@{domain}"


def mask_text(text: str) -> str:
    """Mask every e-mail address inside free text."""
    return _EMAIL_RE.sub(lambda m: mask_email(m.group(0)), text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


class MaskingFilter(logging.Filter):
    """Rewrites the record so that no formatter or handler can see a full address."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: keep the template, never fail logging
            message = str(record.msg)
        record.msg = mask_text(message)
        record.args = None
        fields = getattr(record, FIELDS_ATTR, None)
        if isinstance(fields, dict):
            setattr(record, FIELDS_ATTR, _mask_value(fields))
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    at = datetime.fromtimestamp(record.created, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; field names never overwrite the four standard keys."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in (getattr(record, FIELDS_ATTR, None) or {}).items():
            data[key if key not in data else f"field_{key}"] = value
        if record.exc_text or record.exc_info:
            data["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(data, ensure_ascii=False, default=str)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return json.dumps(text, ensure_ascii=False) if (not text or " " in text) else text


class TextFormatter(logging.Formatter):
    """`<ts> <LEVEL> <logger> <event> key=value ...`, one line (tracebacks follow indented)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, FIELDS_ATTR, None) or {}
        parts = [_timestamp(record), record.levelname, record.name, record.getMessage()]
        parts += [f"{key}={_text_value(value)}" for key, value in fields.items()]
        line = " ".join(parts)
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if exc:
            line += "\n" + "\n".join("    " + row for row in exc.splitlines())
        return line


def configure_logging(
    log_format: str = "text", *, level: int | str = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Install our one handler on the root logger (replacing an earlier one: idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(MaskingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler logs every job run at INFO; our own events already say what happened.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl ..." on every start
    return handler


def log_event(
    logger: logging.Logger,
    event: str,
    *,
    level: int = logging.INFO,
    exc_info: bool = False,
    **fields: Any,
) -> None:
    """Log one structured event: `event` is a dotted name, `fields` its values.

    `exc_info=True` inside an `except` block adds the traceback (masked like the rest).
    """
    if logger.isEnabledFor(level):
        logger.log(level, event, exc_info=exc_info, extra={FIELDS_ATTR: fields})
