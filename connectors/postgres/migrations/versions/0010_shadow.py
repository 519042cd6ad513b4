"""A challenger in shadow: its prediction beside the served one, and its error in the outcome.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("shadow_model_version", sa.Text))
    op.add_column("predictions", sa.Column("shadow_delay_minutes", sa.Float))
    op.add_column("outcomes", sa.Column("shadow_model_version", sa.Text))
    op.add_column("outcomes", sa.Column("shadow_predicted_delay_minutes", sa.Float))
    op.add_column("outcomes", sa.Column("shadow_abs_error", sa.Float))


def downgrade() -> None:
    for column in ("shadow_abs_error", "shadow_predicted_delay_minutes", "shadow_model_version"):
        op.drop_column("outcomes", column)
    op.drop_column("predictions", "shadow_delay_minutes")
    op.drop_column("predictions", "shadow_model_version")
