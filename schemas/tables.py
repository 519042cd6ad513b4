"""PostgreSQL table shapes (SQLAlchemy Core). Migrations in connectors/postgres/migrations.

- ``flag_changes``: the audit trail of routing-flag changes.
- ``predictions``: one row per Prediction event, keyed by (booking_id, predicted_at): a redelivered
  event is stored once, a replay (a new predicted_at) adds a row. Live predictions are also
  unique by booking_id (``uq_predictions_live_booking``): a booking predicted again after a crash
  or a group reset keeps its first row, so it counts once in the assignment counts.
- ``outcomes``: one row per booking and replay flag (prediction ⋈ actual), with the prediction's
  P90 when it had one, and the shadow challenger's prediction and error when one was scored
  (predictions carry the challenger's version and prediction too).
- ``metric_buckets``: sums over outcomes per UTC hour of event time (observed_at), arm, model
  version and replay flag; buckets merge exactly by adding their columns. ``sum_error`` is over
  predicted − actual; ``n_underestimated`` counts actual − predicted > 5 minutes; ``p90_n``
  counts the outcomes with a P90 and ``p90_covered`` those whose actual was at most it (0 in
  rows written before P90s existed).
- ``metric_minutes``: the same sums per UTC minute of event time, for windows shorter than a day
  and for the edges of longer ones (``minute_start`` in place of ``hour_start``).
- ``ab_test_results``: every A/B analysis computed, with its full result.
- ``alerts``: every alert raised, once per alert_id.
- ``monitor_checkpoints``: the saved state of stateful monitors (drift detectors), by name.
- ``pipeline_counters``: named running totals, e.g. predictions that expired unmatched.
- ``quarantined_events``: events the recorder could not store (out of bounds, or refused by
  PostgreSQL as data), with the reason and the original bytes, once per source record.
- ``ramps``: each guarded ramp with its configuration and where it stands (status, step, whether
  its last move's flag change reached Redis, the controller's last evaluation); ``move_seq``
  numbers its moves so that a move is recorded once however often the controller restarts.
- ``ramp_moves``: every move of a ramp (start, advance, rollback, pause, resume, stop,
  complete), by whom, with its one-sentence reason and its evidence.

Arms, risk levels, fallback reasons and alert kinds are stored as their string values. The
partial indexes ``ix_predictions_live_assignment`` and ``ix_outcomes_live_arrivals`` cover the
dashboard's per-arm counts of live rows by predicted_at, answered from the index alone.
"""

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

flag_changes = Table(
    "flag_changes",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("old_ml_enabled", Boolean, nullable=False),
    Column("old_ml_traffic_percentage", Float, nullable=False),
    Column("new_ml_enabled", Boolean, nullable=False),
    Column("new_ml_traffic_percentage", Float, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("salt", String(64), nullable=False),
    Index("ix_flag_changes_changed_at", "changed_at"),
)

predictions = Table(
    "predictions",
    metadata,
    Column("booking_id", Text, primary_key=True),
    Column("predicted_at", DateTime(timezone=True), primary_key=True),
    Column("arm", String(16), nullable=False),
    Column("served_by", String(16), nullable=False),
    Column("bucket", Float, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("predicted_delay_minutes", Float, nullable=False),
    Column("delay_p90_minutes", Float),
    Column("confidence", Float, nullable=False),
    Column("risk_level", String(16), nullable=False),
    Column("fallback_reason", String(32)),
    Column("fallback_detail", Text),
    Column("shadow_model_version", Text),
    Column("shadow_delay_minutes", Float),
    Column("ml_enabled", Boolean, nullable=False),
    Column("ml_traffic_percentage", Float, nullable=False),
    Column("flag_source", String(16), nullable=False),
    Column("weather_source", String(16), nullable=False),
    Column("features", JSONB, nullable=False),
    Column("scheduled_pickup_at", DateTime(timezone=True), nullable=False),
    Column("booking_created_at", DateTime(timezone=True), nullable=False),
    Column("processing_ms", Float, nullable=False),
    Column("latency_ms", Float),
    Column("replay", Boolean, nullable=False),
    Index("ix_predictions_predicted_at", "predicted_at"),
    # Label coverage: live predictions by scheduled pickup, their arm beside it.
    Index(
        "ix_predictions_live_pickup",
        "scheduled_pickup_at",
        postgresql_include=["arm"],
        postgresql_where=text("NOT replay"),
    ),
    # Assignment counts of the live experiment (SRM) read only this index: no heap access.
    Index(
        "ix_predictions_live_assignment",
        "predicted_at",
        postgresql_include=["arm", "ml_enabled", "ml_traffic_percentage"],
        postgresql_where=text("NOT replay"),
    ),
    Index(
        "uq_predictions_live_booking",
        "booking_id",
        unique=True,
        postgresql_where=text("NOT replay"),
    ),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("booking_id", Text, primary_key=True),
    Column("replay", Boolean, primary_key=True),
    Column("arm", String(16), nullable=False),
    Column("served_by", String(16), nullable=False),
    Column("model_version", Text, nullable=False),
    Column("bucket", Float, nullable=False),
    Column("ml_traffic_percentage", Float, nullable=False),
    Column("fallback_reason", String(32)),
    Column("predicted_delay_minutes", Float, nullable=False),
    Column("predicted_p90_minutes", Float),
    Column("actual_delay_minutes", Float, nullable=False),
    Column("error", Float, nullable=False),
    Column("abs_error", Float, nullable=False),
    Column("shadow_model_version", Text),
    Column("shadow_predicted_delay_minutes", Float),
    Column("shadow_abs_error", Float),
    Column("scheduled_pickup_at", DateTime(timezone=True), nullable=False),
    Column("predicted_at", DateTime(timezone=True), nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Index("ix_outcomes_observed_at", "observed_at"),
    Index(
        "ix_outcomes_live_arrivals",
        "predicted_at",
        postgresql_include=["arm"],
        postgresql_where=text("NOT replay"),
    ),
)


def _bucket_columns(start: str) -> list[Column[Any]]:
    """A bucket's key (its period's ``start``, arm, model version, replay flag) and its sums,
    in the order of models.rolling.MetricSums' fields."""
    return [
        Column(start, DateTime(timezone=True), primary_key=True),
        Column("arm", String(16), primary_key=True),
        Column("model_version", Text, primary_key=True),
        Column("replay", Boolean, primary_key=True),
        Column("n", BigInteger, nullable=False),
        Column("sum_error", Float, nullable=False),
        Column("sum_abs_error", Float, nullable=False),
        Column("sum_sq_error", Float, nullable=False),
        Column("sum_actual", Float, nullable=False),
        Column("sum_actual_sq", Float, nullable=False),
        Column("n_underestimated", BigInteger, nullable=False),
        Column("p90_n", BigInteger, nullable=False, server_default=text("0")),
        Column("p90_covered", BigInteger, nullable=False, server_default=text("0")),
    ]


metric_buckets = Table("metric_buckets", metadata, *_bucket_columns("hour_start"))

metric_minutes = Table(
    "metric_minutes",
    metadata,
    *_bucket_columns("minute_start"),
    # The newest and oldest live minute of every window, past the replayed ones.
    Index("ix_metric_minutes_live", "minute_start", postgresql_where=text("NOT replay")),
)

ab_test_results = Table(
    "ab_test_results",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("verdict", Text, nullable=False),
    Column("result", JSONB, nullable=False),
    Index("ix_ab_test_results_computed_at", "computed_at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Text, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("subject", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("evidence", JSONB, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_alerts_raised_at", "raised_at"),
)

monitor_checkpoints = Table(
    "monitor_checkpoints",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("state", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

pipeline_counters = Table(
    "pipeline_counters",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

quarantined_events = Table(
    "quarantined_events",
    metadata,
    Column("source_topic", Text, primary_key=True),
    Column("source_partition", Integer, primary_key=True),
    Column("source_offset", BigInteger, primary_key=True),
    Column("booking_id", Text),
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("quarantined_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_quarantined_events_quarantined_at", "quarantined_at"),
)

ramps = Table(
    "ramps",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("started_by", String(200), nullable=False),
    Column("config", JSONB, nullable=False),
    Column("status", String(16), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("percentage", Float, nullable=False),
    Column("step_started_at", DateTime(timezone=True), nullable=False),
    Column("move_seq", Integer, nullable=False),
    Column("flag_applied", Boolean, nullable=False),
    Column("flag_version", BigInteger),
    Column("reason", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("evaluated_at", DateTime(timezone=True)),
    Column("evaluation", JSONB),
)

ramp_moves = Table(
    "ramp_moves",
    metadata,
    Column("ramp_id", BigInteger, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("from_percentage", Float, nullable=False),
    Column("to_percentage", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", JSONB, nullable=False),
    Index("ix_ramp_moves_at", "at"),
)
