"""truthful send outcomes and automatic reconciliation

Issue statuses `sent_with_failures` and `failed` (wider column), the batch's `posted_at`, the
delivery's `failure_kind`, and an index to find the events of a batch.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import newsletter.db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _sqlite():
        # Widening a column makes batch mode copy `issues` and drop the original; with foreign
        # keys on, that drop would cascade into every table that references an issue. The
        # pragma only works outside a transaction, i.e. before this migration's first write;
        # `newsletter.db.migrate.upgrade` hands out fresh connections (keys on) afterwards.
        op.execute("PRAGMA foreign_keys=OFF")
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=16),
            type_=sa.String(length=24),
            existing_nullable=False,
        )
    with op.batch_alter_table("send_batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("posted_at", newsletter.db.types.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failure_kind", sa.String(length=16), nullable=True))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_batch", ["batch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_batch")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("failure_kind")
    with op.batch_alter_table("send_batches", schema=None) as batch_op:
        batch_op.drop_column("posted_at")
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=24),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
