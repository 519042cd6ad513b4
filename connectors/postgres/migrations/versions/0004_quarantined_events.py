"""quarantined_events: what the recorder could not store, with the reason, instead of a crash.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantined_events",
        sa.Column("source_topic", sa.Text, primary_key=True),
        sa.Column("source_partition", sa.Integer, primary_key=True),
        sa.Column("source_offset", sa.BigInteger, primary_key=True),
        sa.Column("booking_id", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column(
            "quarantined_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    op.create_index(
        "ix_quarantined_events_quarantined_at", "quarantined_events", ["quarantined_at"]
    )


def downgrade() -> None:
    op.drop_table("quarantined_events")
