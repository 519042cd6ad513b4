"""Predictions keep their P90: the hour's MAE can be estimated before any actual arrives.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("delay_p90_minutes", sa.Float))


def downgrade() -> None:
    op.drop_column("predictions", "delay_p90_minutes")
