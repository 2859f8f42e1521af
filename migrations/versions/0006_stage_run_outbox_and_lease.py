"""Stage runs: the outbox (enqueued_at) and the running stage's lease and holder;
the outbox of a channel's listing.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stage_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("worker", sa.String(length=255), nullable=True))
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
    # The reconciler looks for queued and running runs on every pass.
    op.create_index("ix_stage_runs_status", "stage_runs", ["status"])


def downgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("enqueued_at")
    op.drop_index("ix_stage_runs_status", table_name="stage_runs")
    with op.batch_alter_table("stage_runs", schema=None) as batch_op:
        batch_op.drop_column("worker")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("enqueued_at")
