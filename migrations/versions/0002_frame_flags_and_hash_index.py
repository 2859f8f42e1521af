"""Frames: pairable flag, magnification confidence, duplicate links, pHash band index

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pairable", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(sa.Column("magnification_confidence", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("duplicate_of_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_frames_duplicate_of_id"), ["duplicate_of_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_frames_duplicate_of_id_frames",
            "frames",
            ["duplicate_of_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "frame_hash_bands",
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["frame_id"], ["frames.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("frame_id", "band"),
    )
    with op.batch_alter_table("frame_hash_bands", schema=None) as batch_op:
        batch_op.create_index("ix_frame_hash_bands_band_value", ["band", "value"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("frame_hash_bands", schema=None) as batch_op:
        batch_op.drop_index("ix_frame_hash_bands_band_value")
    op.drop_table("frame_hash_bands")
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.drop_constraint("fk_frames_duplicate_of_id_frames", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_frames_duplicate_of_id"))
        batch_op.drop_column("duplicate_of_id")
        batch_op.drop_column("magnification_confidence")
        batch_op.drop_column("pairable")
