"""The ASGI entry point for uvicorn: `uvicorn --factory newsletter.web.asgi:app_from_env`.

Each uvicorn worker process calls the factory once and gets its own Runtime (engine, pool).
"""

from __future__ import annotations

from starlette.applications import Starlette

from newsletter.config import load_settings
from newsletter.logs import configure_logging
from newsletter.runtime import Runtime
from newsletter.web.app import create_app


def app_from_env() -> Starlette:
    """Settings from the environment; the schema must be up to date (`newsletter init`)."""
    settings = load_settings(create_secret=False)
    configure_logging(settings.log_format)
    return create_app(Runtime.open(settings))
