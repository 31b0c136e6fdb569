"""What every command shares: lazily loaded settings and runtime, JSON output, error exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from sqlalchemy.exc import OperationalError

from newsletter.config import Settings, load_settings
from newsletter.errors import DatabaseError, NewsletterError
from newsletter.runtime import Runtime

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
        if self._runtime is None:
            self._runtime = Runtime.open(self.settings, migrate=migrate)
        return self._runtime

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
