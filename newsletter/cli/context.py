"""What every command shares: lazily loaded settings and runtime, JSON output, error exits."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any, TypeVar

import click
from sqlalchemy.exc import OperationalError

from newsletter.config import Settings, load_settings
from newsletter.db.session import require_database
from newsletter.errors import DatabaseError, NewsletterError, SecretKeyError
from newsletter.runtime import Runtime
from newsletter.wording import plural

__all__ = ["ISO_DATE", "AppContext", "emit_json", "handle_errors", "pass_app", "plural"]

F = TypeVar("F", bound=Callable[..., Any])


class AppContext:
    """Built on first use, so `--help` works without a database or settings."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._runtime: Runtime | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def runtime(self, *, migrate: bool = False) -> Runtime:
        """The database and its parts. Without `migrate` a missing database is an error.

        The check runs before the settings are loaded for real, because loading them creates
        `var/secret.key`: a read-only command tried in an empty folder leaves nothing behind.
        """
        if self._runtime is None:
            if not migrate:
                require_database(self.database_url())
            self._runtime = Runtime.open(self.settings, migrate=migrate)
        return self._runtime

    def database_url(self) -> str:
        """The database URL, loading the settings without creating a key: a weak key file is
        refused here (exit 78) before a missing database is reported."""
        if self._settings is not None:
            return self._settings.database_url
        try:
            return load_settings(create_secret=False).database_url
        except SecretKeyError as err:
            if not err.missing:
                raise
        return load_settings(create_secret=False, secret_keys=()).database_url

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def emit_json(data: Any) -> None:
    """One JSON document on stdout, for scripts (`--json`)."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def handle_errors(func: F) -> F:
    """Turn domain errors into a one-line message on stderr and the error's exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NewsletterError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(err.exit_code)
        except OperationalError as err:  # a database that went away or stayed locked
            reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
            click.secho(f"error: database unavailable: {reason}", fg="red", err=True)
            sys.exit(DatabaseError.exit_code)

    return wrapper  # type: ignore[return-value]


_DATE_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}")


class IsoDate(click.ParamType):
    """A calendar date typed as YYYY-MM-DD; an impossible one (2026-02-30) is a usage error."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        text = str(value).strip()
        if not _DATE_SHAPE.fullmatch(text):
            self.fail(f"{text!r} is not a date: expected YYYY-MM-DD", param, ctx)
        try:
            return date.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is not a real date: expected YYYY-MM-DD", param, ctx)


ISO_DATE = IsoDate()
