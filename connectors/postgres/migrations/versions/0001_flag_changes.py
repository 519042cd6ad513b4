"""flag_changes: the audit trail of routing-flag changes.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flag_changes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("old_ml_enabled", sa.Boolean, nullable=False),
        sa.Column("old_ml_traffic_percentage", sa.Float, nullable=False),
        sa.Column("new_ml_enabled", sa.Boolean, nullable=False),
        sa.Column("new_ml_traffic_percentage", sa.Float, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
    )
    op.create_index("ix_flag_changes_changed_at", "flag_changes", ["changed_at"])


def downgrade() -> None:
    op.drop_table("flag_changes")
