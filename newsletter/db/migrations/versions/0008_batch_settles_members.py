"""Send batches settle their members: `accepted_at` and `accepted` on the batch row

A batch the provider takes whole no longer rewrites its member rows: they stay `queued` and
the batch row says they were accepted (`models.delivery_status`), with how many (`accepted`,
so the counts stay index-only). Deliveries accepted before this revision keep their own rows.

`ix_deliveries_batch` (batch_id) becomes `ix_deliveries_batch_members` (batch_id, status,
subscriber_id): the batch load finds what it needs of a member in the index. The partial
`ix_deliveries_issue_open` (every status but accepted: now nearly every row) becomes
`ix_deliveries_issue_marked` (every status but queued): planning writes no entry in it.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import newsletter.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MARKED = "status <> 'queued'"
_UNACCEPTED = "status <> 'accepted'"


def upgrade() -> None:
    # Plain ADD COLUMN on both databases: the table is not rebuilt.
    op.add_column(
        "send_batches", sa.Column("accepted_at", newsletter.db.types.UTCDateTime(), nullable=True)
    )
    op.add_column(
        "send_batches",
        sa.Column("accepted", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.drop_index("ix_deliveries_batch", table_name="deliveries")
    op.create_index(
        "ix_deliveries_batch_members", "deliveries", ["batch_id", "status", "subscriber_id"]
    )
    op.drop_index("ix_deliveries_issue_open", table_name="deliveries")
    op.create_index(
        "ix_deliveries_issue_marked",
        "deliveries",
        ["issue_id", "status"],
        sqlite_where=sa.text(_MARKED),
        postgresql_where=sa.text(_MARKED),
    )


def downgrade() -> None:
    # Members an accepted batch settled get their own rows back before the batch forgets it.
    op.execute(
        "UPDATE deliveries SET status = 'accepted', accepted_at = ("
        "SELECT b.accepted_at FROM send_batches b WHERE b.id = deliveries.batch_id) "
        "WHERE status = 'queued' AND batch_id IN ("
        "SELECT id FROM send_batches WHERE status = 'accepted')"
    )
    op.drop_index("ix_deliveries_issue_marked", table_name="deliveries")
    op.create_index(
        "ix_deliveries_issue_open",
        "deliveries",
        ["issue_id", "status"],
        sqlite_where=sa.text(_UNACCEPTED),
        postgresql_where=sa.text(_UNACCEPTED),
    )
    op.drop_index("ix_deliveries_batch_members", table_name="deliveries")
    op.create_index("ix_deliveries_batch", "deliveries", ["batch_id"])
    # Native DROP COLUMN (SQLite 3.35+): rebuilding the table would trip the foreign keys.
    op.execute("ALTER TABLE send_batches DROP COLUMN accepted")
    op.execute("ALTER TABLE send_batches DROP COLUMN accepted_at")
