"""Deliveries: the (issue, status) index without the accepted rows

`ix_deliveries_issue_status` held every delivery; accepting a batch moved a thousand entries
from `queued` to `accepted`, about half of the accepted UPDATE's cost. `ix_deliveries_issue_open`
holds every status but `accepted` (a partial index, SQLite and PostgreSQL): accepting now only
removes entries, and the accepted count is the issue's rows less the others.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNACCEPTED = "status <> 'accepted'"


def upgrade() -> None:
    op.drop_index("ix_deliveries_issue_status", table_name="deliveries")
    op.create_index(
        "ix_deliveries_issue_open",
        "deliveries",
        ["issue_id", "status"],
        sqlite_where=sa.text(_UNACCEPTED),
        postgresql_where=sa.text(_UNACCEPTED),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_issue_open", table_name="deliveries")
    op.create_index("ix_deliveries_issue_status", "deliveries", ["issue_id", "status"])
