"""A booking's live prediction is stored once: unique booking_id among live predictions.

A booking predicted again (a worker killed before its commit, a replay of the input, a consumer
group reset) used to add a row with a new predicted_at, inflating the assignment counts of the
sample-ratio check and the A/B report. The first stored prediction wins; later ones are dropped
by the writers' ON CONFLICT DO NOTHING. Replayed predictions (replay = true) keep one row per
predicted_at: each replay is a run of its own.

Existing duplicates are removed first, keeping each booking's earliest live prediction (the one
dispatch was shown first, and the one the writers now keep).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        sa.text(
            """
            DELETE FROM predictions AS later
            USING predictions AS earlier
            WHERE NOT later.replay AND NOT earlier.replay
              AND later.booking_id = earlier.booking_id
              AND later.predicted_at > earlier.predicted_at
            """
        )
    )
    op.create_index(
        "uq_predictions_live_booking",
        "predictions",
        ["booking_id"],
        unique=True,
        postgresql_where=sa.text("NOT replay"),
    )


def downgrade() -> None:
    op.drop_index("uq_predictions_live_booking", table_name="predictions")
