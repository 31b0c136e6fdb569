"""First-party engagement: tracked links, click and open events, totals, subject-line tests

New tables: issue_links, click_events, open_events, engagement_totals, subject_tests.
`lists` gains click_tracking and open_tracking, `subscribers` tracking_off; issue_variants,
send_batches and deliveries gain `tracked` (and the last two `subject_arm`), all defaulting to
what every existing row already is: untracked, the issue's own subject.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import newsletter.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "click_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("link_no", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("variant", sa.String(length=8), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("at", newsletter.db.types.UTCDateTime(), nullable=False),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_click_events_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_click_events_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_click_events")),
    )
    with op.batch_alter_table("click_events", schema=None) as batch_op:
        batch_op.create_index("ix_click_events_at", ["at"], unique=False)
        batch_op.create_index(
            "ix_click_events_issue_counts",
            ["issue_id", "machine", "article_id", "variant", "kind", "position", "delivery_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_click_events_subscriber_id"), ["subscriber_id"], unique=False
        )

    op.create_table(
        "engagement_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("variant", sa.String(length=8), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("people", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_engagement_totals_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_totals")),
        sa.UniqueConstraint(
            "issue_id",
            "metric",
            "variant",
            "article_id",
            "kind",
            "position",
            name=op.f("uq_engagement_totals_issue_id_metric_variant_article_id_kind_position"),
        ),
    )
    op.create_table(
        "issue_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("link_no", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=8), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_links_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_links")),
        sa.UniqueConstraint("issue_id", "link_no", name=op.f("uq_issue_links_issue_id_link_no")),
    )
    op.create_table(
        "open_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("variant", sa.String(length=8), nullable=False),
        sa.Column("at", newsletter.db.types.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_open_events_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_open_events_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_events")),
    )
    with op.batch_alter_table("open_events", schema=None) as batch_op:
        batch_op.create_index("ix_open_events_at", ["at"], unique=False)
        batch_op.create_index("ix_open_events_issue", ["issue_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_open_events_subscriber_id"), ["subscriber_id"], unique=False
        )

    op.create_table(
        "subject_tests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column(
            "subjects",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sample_percent", sa.Integer(), nullable=False),
        sa.Column("wait_seconds", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", newsletter.db.types.UTCDateTime(), nullable=False),
        sa.Column("decide_at", newsletter.db.types.UTCDateTime(), nullable=True),
        sa.Column("decided_at", newsletter.db.types.UTCDateTime(), nullable=True),
        sa.Column("winner_arm", sa.Integer(), nullable=True),
        sa.Column(
            "results",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_subject_tests_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_tests")),
        sa.UniqueConstraint("issue_id", name=op.f("uq_subject_tests_issue_id")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tracked", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("subject_arm", sa.Integer(), nullable=True))

    with op.batch_alter_table("issue_variants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tracked", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.drop_constraint(batch_op.f("uq_issue_variants_issue_id_variant"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_issue_variants_issue_id_variant_tracked"),
            ["issue_id", "variant", "tracked"],
        )

    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("click_tracking", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("open_tracking", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("send_batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tracked", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("subject_arm", sa.Integer(), nullable=True))

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tracking_off", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("tracking_off")

    with op.batch_alter_table("send_batches", schema=None) as batch_op:
        batch_op.drop_column("subject_arm")
        batch_op.drop_column("tracked")

    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.drop_column("open_tracking")
        batch_op.drop_column("click_tracking")

    with op.batch_alter_table("issue_variants", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_issue_variants_issue_id_variant_tracked"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_issue_variants_issue_id_variant"), ["issue_id", "variant"]
        )
        batch_op.drop_column("tracked")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("subject_arm")
        batch_op.drop_column("tracked")

    op.drop_table("subject_tests")
    with op.batch_alter_table("open_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_open_events_subscriber_id"))
        batch_op.drop_index("ix_open_events_issue")
        batch_op.drop_index("ix_open_events_at")

    op.drop_table("open_events")
    op.drop_table("issue_links")
    op.drop_table("engagement_totals")
    with op.batch_alter_table("click_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_click_events_subscriber_id"))
        batch_op.drop_index("ix_click_events_issue_counts")
        batch_op.drop_index("ix_click_events_at")

    op.drop_table("click_events")
