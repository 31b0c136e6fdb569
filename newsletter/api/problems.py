"""Errors as RFC 9457 problem details: `application/problem+json` with type, title, status,
detail, and for invalid input the field paths, in the same words as the CLI's one-line errors.

Each domain exception of `newsletter.errors` has one status; `type` is a URI reference to the
problem's section of the reference page (`/api/docs#problem-not-found`).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from newsletter.errors import (
    ArticleError,
    AuthenticationError,
    ConfigError,
    DatabaseError,
    NewsletterError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    StateError,
    SuppressedError,
    TokenError,
    UsageError,
    ValidationError,
)
from newsletter.logs import log_event

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
DOCS = "/api/docs"

# status -> (slug, title): the problem types this API answers with, documented on /api/docs.
PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not permitted"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict with the current state"),
    413: ("too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid", "Invalid request"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal", "Internal error"),
    502: ("provider", "The mail provider failed"),
    503: ("unavailable", "Service unavailable"),
}

# The most specific class wins: ArticleError before ValidationError, and so on.
STATUS_OF: tuple[tuple[type[NewsletterError], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (SuppressedError, 409),
    (StateError, 409),
    (UsageError, 400),
    (TokenError, 400),
    (ValidationError, 422),
    (ProviderError, 502),
    (DatabaseError, 503),
    (ConfigError, 503),
)


def problem_type(status: int) -> str:
    slug = PROBLEMS.get(status, ("error", ""))[0]
    return f"{DOCS}#problem-{slug}"


def problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    title: str | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": problem_type(status),
        "title": title or PROBLEMS.get(status, ("", "Error"))[1],
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def status_of(err: NewsletterError) -> int:
    for kind, status in STATUS_OF:
        if isinstance(err, kind):
            return status
    return 500


def field_of(message: str) -> str | None:
    """The field a domain ValidationError names first (`timezone: unknown time zone ...`)."""
    head, sep, _ = message.partition(": ")
    if sep and head and len(head) <= 40 and all(c.isalnum() or c in " _-." for c in head):
        return head.strip().replace(" ", "_").lstrip("-")
    return None


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NewsletterError)
    status = status_of(exc)
    detail = str(exc)
    errors = None
    if isinstance(exc, ArticleError):
        errors = [{"field": exc.field, "detail": detail}]
    elif isinstance(exc, ValidationError) and (name := field_of(detail)):
        errors = [{"field": name, "detail": detail}]
    headers = {"WWW-Authenticate": 'Bearer realm="newsletter api"'} if status == 401 else None
    if status >= 500:
        log_event(logger, "api.error", level=logging.ERROR, error=type(exc).__name__)
    return problem(status, detail, errors=errors, headers=headers)


# Pattern -> what it means, so a mismatch reads like the CLI's errors.
PATTERN_WORDS = {
    r"^([01]\d|2[0-3]):[0-5]\d$": "HH:MM (24-hour)",
    r"^[a-z0-9][a-z0-9-]{0,63}$": "lower-case letters, digits and hyphens (e.g. weekly-en)",
}


def _location(loc: tuple[Any, ...]) -> str:
    """`('body', 'send_time')` -> `send_time`; `('body', 'list[...]', 0, 'id')` -> `[0].id`;
    a query or header parameter by its name."""
    parts = [p for p in loc if not (isinstance(p, str) and "[" in p)]  # pydantic's type names
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:] or [parts[0]]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "body"


def _words(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    got = error.get("input")
    shown = f", got {got!r}" if isinstance(got, str | int | float) and len(repr(got)) < 80 else ""
    if kind == "missing":
        return "required"
    if kind in ("enum", "literal_error"):
        return f"expected {ctx.get('expected', 'one of the listed values')}{shown}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        return f"expected {PATTERN_WORDS.get(pattern, f'text matching {pattern}')}{shown}"
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    return (message[:1].lower() + message[1:]) + ("" if "got" in message else shown)


async def request_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        field = _location(tuple(error.get("loc", ())))
        errors.append({"field": field, "detail": f"{field}: {_words(error)}"})
    detail = "; ".join(e["detail"] for e in errors) or "invalid request"
    return problem(422, detail, errors=errors)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else PROBLEMS.get(status, ("", ""))[1]
    if status == 404 and detail == "Not Found":
        detail = f"no such path {request.url.path}"
    return problem(status, detail, headers=headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log_event(
        logger, "api.error", level=logging.ERROR, path=request.url.path, error=type(exc).__name__
    )
    return problem(500, "internal error; the server log has the details")


def exception_handlers() -> dict[Any, Any]:
    return {
        NewsletterError: domain_error,
        RequestValidationError: request_validation_error,
        HTTPException: http_error,
        Exception: server_error,
    }
