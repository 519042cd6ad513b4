"""History: predictions, outcomes, hourly metric buckets, A/B results, alerts, monitor
checkpoints and pipeline counters.

Revision ID: 0002
Revises: 0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _timestamp(name: str, **kwargs: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, **kwargs)


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("booking_id", sa.Text, primary_key=True),
        sa.Column("predicted_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("served_by", sa.String(16), nullable=False),
        sa.Column("bucket", sa.Float, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("predicted_delay_minutes", sa.Float, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("risk_level", sa.String(16), nullable=False),
        sa.Column("fallback_reason", sa.String(32)),
        sa.Column("fallback_detail", sa.Text),
        sa.Column("ml_enabled", sa.Boolean, nullable=False),
        sa.Column("ml_traffic_percentage", sa.Float, nullable=False),
        sa.Column("flag_source", sa.String(16), nullable=False),
        sa.Column("weather_source", sa.String(16), nullable=False),
        sa.Column("features", JSONB, nullable=False),
        _timestamp("scheduled_pickup_at"),
        _timestamp("booking_created_at"),
        sa.Column("processing_ms", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("replay", sa.Boolean, nullable=False),
    )
    op.create_index("ix_predictions_predicted_at", "predictions", ["predicted_at"])
    op.create_index(
        "ix_predictions_live_assignment",
        "predictions",
        ["predicted_at"],
        postgresql_include=["arm", "ml_enabled", "ml_traffic_percentage"],
        postgresql_where=sa.text("NOT replay"),
    )

    op.create_table(
        "outcomes",
        sa.Column("booking_id", sa.Text, primary_key=True),
        sa.Column("replay", sa.Boolean, primary_key=True),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("served_by", sa.String(16), nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("bucket", sa.Float, nullable=False),
        sa.Column("ml_traffic_percentage", sa.Float, nullable=False),
        sa.Column("fallback_reason", sa.String(32)),
        sa.Column("predicted_delay_minutes", sa.Float, nullable=False),
        sa.Column("actual_delay_minutes", sa.Float, nullable=False),
        sa.Column("error", sa.Float, nullable=False),
        sa.Column("abs_error", sa.Float, nullable=False),
        _timestamp("scheduled_pickup_at"),
        _timestamp("predicted_at"),
        _timestamp("observed_at"),
    )
    op.create_index("ix_outcomes_observed_at", "outcomes", ["observed_at"])
    op.create_index(
        "ix_outcomes_live_arrivals",
        "outcomes",
        ["predicted_at"],
        postgresql_include=["arm"],
        postgresql_where=sa.text("NOT replay"),
    )

    op.create_table(
        "metric_buckets",
        sa.Column("hour_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("arm", sa.String(16), primary_key=True),
        sa.Column("model_version", sa.Text, primary_key=True),
        sa.Column("replay", sa.Boolean, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("sum_error", sa.Float, nullable=False),
        sa.Column("sum_abs_error", sa.Float, nullable=False),
        sa.Column("sum_sq_error", sa.Float, nullable=False),
        sa.Column("sum_actual", sa.Float, nullable=False),
        sa.Column("sum_actual_sq", sa.Float, nullable=False),
        sa.Column("n_underestimated", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "ab_test_results",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _timestamp("computed_at"),
        _timestamp("window_start"),
        _timestamp("window_end"),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("result", JSONB, nullable=False),
    )
    op.create_index("ix_ab_test_results_computed_at", "ab_test_results", ["computed_at"])

    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("evidence", JSONB, nullable=False),
        _timestamp("event_time"),
        _timestamp("raised_at"),
        _timestamp("stored_at", server_default=sa.func.now()),
    )
    op.create_index("ix_alerts_raised_at", "alerts", ["raised_at"])

    op.create_table(
        "monitor_checkpoints",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
        _timestamp("updated_at", server_default=sa.func.now()),
    )

    op.create_table(
        "pipeline_counters",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        _timestamp("updated_at", server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in (
        "pipeline_counters",
        "monitor_checkpoints",
        "alerts",
        "ab_test_results",
        "metric_buckets",
        "outcomes",
        "predictions",
    ):
        op.drop_table(table)
