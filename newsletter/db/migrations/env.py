"""Alembic environment: the engine comes from `newsletter.db.migrate`, never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from newsletter.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # `alembic` CLI used directly: sqlalchemy.url must be configured
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


run_migrations_online()
