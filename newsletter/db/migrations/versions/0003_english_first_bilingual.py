"""English-first bilingual: the subscriber language and variant value `both-en`

`subscribers.language` and the `variant` of issue_variants, send_batches and deliveries widen
from 4 to 8 characters. Existing values are unchanged (`both` stays Japanese first).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("subscribers", "language"),
    ("issue_variants", "variant"),
    ("send_batches", "variant"),
    ("deliveries", "variant"),
)


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _alter(old: int, new: int) -> None:
    if _sqlite():
        # As in 0002: batch mode copies each table and drops the original; with foreign keys
        # on, that drop would cascade into the tables that reference it. The pragma only works
        # before this migration's first write.
        op.execute("PRAGMA foreign_keys=OFF")
    for table, column in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length=old),
                type_=sa.String(length=new),
                existing_nullable=False,
            )


def upgrade() -> None:
    _alter(4, 8)


def downgrade() -> None:
    # English-first readers read the Japanese-first bilingual email again; the ledger keeps
    # every row (who was sent what stays recorded), only the stored rendering is dropped.
    op.execute("UPDATE subscribers SET language = 'both' WHERE language = 'both-en'")
    op.execute("UPDATE send_batches SET variant = 'both' WHERE variant = 'both-en'")
    op.execute("UPDATE deliveries SET variant = 'both' WHERE variant = 'both-en'")
    op.execute("DELETE FROM issue_variants WHERE variant = 'both-en'")
    _alter(8, 4)
