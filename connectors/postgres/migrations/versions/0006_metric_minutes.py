"""Minute buckets: the sums of ``metric_buckets`` per UTC minute of event time.

The monitoring windows (the last 15 minutes, hour, day, week) end at the newest outcome's
minute; hourly buckets alone would cut them at whole hours. Existing outcomes are summed into
the new table, so every window answers for the history written before it too.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SUMS = (
    ("n", sa.BigInteger),
    ("sum_error", sa.Float),
    ("sum_abs_error", sa.Float),
    ("sum_sq_error", sa.Float),
    ("sum_actual", sa.Float),
    ("sum_actual_sq", sa.Float),
    ("n_underestimated", sa.BigInteger),
    ("p90_n", sa.BigInteger),
    ("p90_covered", sa.BigInteger),
)

# The same sums as the outcome writer adds (connectors.postgres.history): an underestimate is
# an actual more than 5 minutes past the prediction; coverage counts actuals at most the P90.
BACKFILL = """
INSERT INTO metric_minutes
SELECT timezone('UTC', date_trunc('minute', timezone('UTC', observed_at))),
       arm, model_version, replay,
       count(*), sum(error), sum(abs_error), sum(error * error),
       sum(actual_delay_minutes), sum(actual_delay_minutes * actual_delay_minutes),
       count(*) FILTER (WHERE actual_delay_minutes - predicted_delay_minutes > 5),
       count(predicted_p90_minutes),
       count(*) FILTER (WHERE actual_delay_minutes <= predicted_p90_minutes)
FROM outcomes
GROUP BY 1, 2, 3, 4
"""


def upgrade() -> None:
    op.create_table(
        "metric_minutes",
        sa.Column("minute_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("arm", sa.String(16), primary_key=True),
        sa.Column("model_version", sa.Text, primary_key=True),
        sa.Column("replay", sa.Boolean, primary_key=True),
        *(sa.Column(name, kind, nullable=False) for name, kind in SUMS[:7]),
        # As in metric_buckets since 0005.
        *(
            sa.Column(name, kind, nullable=False, server_default=sa.text("0"))
            for name, kind in SUMS[7:]
        ),
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_table("metric_minutes")
