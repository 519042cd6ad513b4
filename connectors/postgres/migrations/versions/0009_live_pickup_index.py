"""Label coverage reads live predictions by scheduled pickup: an index for it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_predictions_live_pickup",
        "predictions",
        ["scheduled_pickup_at"],
        postgresql_include=["arm"],
        postgresql_where=sa.text("NOT replay"),
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_live_pickup", table_name="predictions")
