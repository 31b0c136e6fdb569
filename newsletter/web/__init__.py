"""The public web endpoints (subscriber links, sign-up, archive), provider webhooks, and the
editor's preview and statistics pages. `create_app(runtime)` builds the Starlette app."""

from newsletter.web.app import create_app

__all__ = ["create_app"]
