"""P90 coverage: each outcome keeps its prediction's P90, each hourly bucket counts how many
outcomes had one and how many of those stayed within it.

The bucket counts start at 0 (server default), so rows written before stay valid: their
outcomes had no P90 (predictions did not carry one), and they count as such.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BUCKET_COUNTS = ("p90_n", "p90_covered")


def upgrade() -> None:
    op.add_column("outcomes", sa.Column("predicted_p90_minutes", sa.Float))
    for name in BUCKET_COUNTS:
        op.add_column(
            "metric_buckets",
            sa.Column(name, sa.BigInteger, nullable=False, server_default=sa.text("0")),
        )


def downgrade() -> None:
    for name in reversed(BUCKET_COUNTS):
        op.drop_column("metric_buckets", name)
    op.drop_column("outcomes", "predicted_p90_minutes")
