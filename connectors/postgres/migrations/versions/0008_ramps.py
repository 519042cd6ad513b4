"""The guarded ramp: its state and its moves.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ramps",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("config", JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("percentage", sa.Float, nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("move_seq", sa.Integer, nullable=False),
        sa.Column("flag_applied", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True)),
        sa.Column("evaluation", JSONB),
    )
    op.create_table(
        "ramp_moves",
        sa.Column("ramp_id", sa.BigInteger, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("from_percentage", sa.Float, nullable=False),
        sa.Column("to_percentage", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", JSONB, nullable=False),
    )
    op.create_index("ix_ramp_moves_at", "ramp_moves", ["at"])


def downgrade() -> None:
    op.drop_index("ix_ramp_moves_at", table_name="ramp_moves")
    op.drop_table("ramp_moves")
    op.drop_table("ramps")
