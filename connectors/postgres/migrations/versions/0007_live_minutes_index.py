"""The newest and oldest live minute from an index of live minute buckets alone.

Every window asks for them (``live_minute_range``); without this index, ``min(minute_start)``
of live rows walks the primary key past every replayed minute first.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_metric_minutes_live",
        "metric_minutes",
        ["minute_start"],
        postgresql_where=sa.text("NOT replay"),
    )


def downgrade() -> None:
    op.drop_index("ix_metric_minutes_live", table_name="metric_minutes")
