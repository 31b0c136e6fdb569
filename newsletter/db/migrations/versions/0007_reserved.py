"""scheduler: the send claim that makes the daily send happen once per list and date.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import newsletter.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_claims",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("claimed_at", newsletter.db.types.UTCDateTime(), nullable=False),
        sa.Column("lease_until", newsletter.db.types.UTCDateTime(), nullable=False),
        sa.Column("released_at", newsletter.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_send_claims_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issue_id", name=op.f("pk_send_claims")),
    )


def downgrade() -> None:
    op.drop_table("send_claims")
