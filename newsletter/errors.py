"""The project's exception tree. Every error a user can cause is one of these.

    NewsletterError
    ├── ConfigError            a setting is missing or invalid (names the variable)
    │   └── SecretKeyError     the link-signing key is missing, short or unreadable
    ├── DatabaseError          the database is unreachable or its schema is out of date
    ├── ValidationError        input (article file, CSV row, form) is not what was expected
    │   └── ArticleError       one article in one file is invalid
    ├── NotFoundError          an issue, article, list, subscriber or input file does not exist
    ├── StateError             the operation is not allowed in the object's current state
    │                          (e.g. rebuilding an issue that was already sent)
    ├── UsageError             the command line itself is wrong (e.g. the date 2026-02-30)
    ├── SuppressedError        the address is suppressed and must never be mailed
    ├── RenderError            a template failed to render or the output broke a budget
    ├── ProviderError          a provider failed in a way the sending core must handle
    │   ├── TransientProviderError   retry later (429/5xx answers; nothing of the request sent)
    │   ├── InDoubtProviderError     the request went out and no answer came: never retry blindly
    │   └── PermanentProviderError   do not retry (400, 401, 403, 413 ...)
    ├── TokenError             a subscriber link token is tampered, unknown or expired
    ├── AuthenticationError    no valid account, session or API token (the same words whatever
    │                          was wrong, so a guess learns nothing)
    ├── PermissionDeniedError  the account's role does not allow the action
    └── WebhookError           a webhook request failed verification or parsing

The CLI maps them to exit codes (`EXIT_CODES`) and the web app to HTTP statuses.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Base class: the message is written for the person who ran the command."""

    exit_code = 1


class ConfigError(NewsletterError):
    exit_code = 78  # EX_CONFIG


class SecretKeyError(ConfigError):
    """The signing key is unusable; `missing` separates "none yet" from "weak" for health."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class DatabaseError(NewsletterError):
    exit_code = 69  # EX_UNAVAILABLE


class ValidationError(NewsletterError):
    exit_code = 65  # EX_DATAERR


class ArticleError(ValidationError):
    """One invalid article: where it came from, which one, which field, and what was wrong."""

    def __init__(self, source: str, article: str, field: str, problem: str) -> None:
        self.source = source
        self.article = article
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: article {article}: {field}: {problem}")


class NotFoundError(NewsletterError):
    exit_code = 66  # EX_NOINPUT


class StateError(NewsletterError):
    exit_code = 64


class UsageError(NewsletterError):
    """What was typed cannot mean anything (an impossible date, an unreadable reference)."""

    exit_code = 64  # EX_USAGE


class SuppressedError(NewsletterError):
    exit_code = 65


class RenderError(NewsletterError):
    exit_code = 70  # EX_SOFTWARE


class ProviderError(NewsletterError):
    """A provider failure. `status` is the provider's HTTP or SMTP code when there is one."""

    exit_code = 69

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class TransientProviderError(ProviderError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class InDoubtProviderError(ProviderError):
    """The request (or an SMTP message's end of DATA) was sent, then the answer never came:
    a read timeout, a reset, a protocol error. The provider may have taken it, so the batch is
    `in_doubt` and settled by reconciliation, never posted again on a guess.

    `failed` holds recipients the provider had already refused in an earlier round of the
    same call (SendGrid's 400 corrections): those were certainly not sent.
    """

    def __init__(
        self, message: str, *, status: int | None = None, failed: dict[int, str] | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.failed = dict(failed or {})


class PermanentProviderError(ProviderError):
    pass


class SendIncomplete(NewsletterError):
    """A send ended without settling everyone: some recipients are in doubt or failed.

    Exit codes (for `issue send`, `issue retry`, `run`): 75 in doubt (EX_TEMPFAIL: the
    reconciliation may still settle them), 3 sent with failures, 69 failed for everyone.
    """

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


EXIT_IN_DOUBT = 75
EXIT_SENT_WITH_FAILURES = 3
EXIT_FAILED = 69


class TokenError(NewsletterError):
    exit_code = 65


class AuthenticationError(NewsletterError):
    exit_code = 77  # EX_NOPERM


class PermissionDeniedError(NewsletterError):
    exit_code = 77  # EX_NOPERM


class WebhookError(NewsletterError):
    """`status` is the HTTP status the endpoint answers with (403 bad signature, 400 bad body)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
