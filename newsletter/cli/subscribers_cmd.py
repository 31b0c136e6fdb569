"""`newsletter subscribers ...`: thin commands over the `subscribers` package."""

from __future__ import annotations

import click


@click.group()
def subscribers() -> None:
    """Add, import, export, show and unsubscribe subscribers."""
