"""Review: k reviews per pair, undo rows, gold answers, the pending-queue index.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pairs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("review_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("reviews_needed", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("subpathology", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("not_histology", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # Partial: as small as the backlog, however many pairs are decided, so the review
    # queue's claim stays flat as pairs grow to millions.
    op.create_index(
        "ix_pairs_pending_queue",
        "pairs",
        ["priority", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    # Reviews that were already there count towards their pair's k.
    op.execute(
        "UPDATE pairs SET review_count = "
        "(SELECT count(*) FROM reviews WHERE reviews.pair_id = pairs.id)"
    )

    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="review", nullable=False)
        )
        batch_op.add_column(sa.Column("undoes_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pair_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("status_before", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("status_after", sa.String(length=16), nullable=True))
        batch_op.create_unique_constraint("uq_reviews_undoes_id", ["undoes_id"])
        batch_op.create_foreign_key("fk_reviews_undoes_id", "reviews", ["undoes_id"], ["id"])
        batch_op.create_index("ix_reviews_reviewer_history", ["reviewer_id", "id"], unique=False)

    op.create_table(
        "gold_answers",
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["pair_id"], ["pairs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("pair_id"),
    )


def downgrade() -> None:
    op.drop_table("gold_answers")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_reviews_reviewer_history")
        batch_op.drop_constraint("fk_reviews_undoes_id", type_="foreignkey")
        batch_op.drop_constraint("uq_reviews_undoes_id", type_="unique")
        for name in ("status_after", "status_before", "pair_version", "undoes_id", "kind"):
            batch_op.drop_column(name)
    op.drop_index("ix_pairs_pending_queue", table_name="pairs")
    with op.batch_alter_table("pairs", schema=None) as batch_op:
        batch_op.drop_column("not_histology")
        batch_op.drop_column("subpathology")
        batch_op.drop_column("reviews_needed")
        batch_op.drop_column("review_count")
