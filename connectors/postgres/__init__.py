"""PostgreSQL: engine, migrations and the repositories that read and write delaycast's tables."""

from connectors.postgres.engine import drop_database, make_engine
from connectors.postgres.flag_audit import recent_flag_changes, record_flag_change
from connectors.postgres.history import (
    AssignmentCounts,
    add_counters,
    arrived_counts,
    assignment_counts,
    latest_ab_result,
    load_checkpoint,
    metric_buckets_between,
    minute_sums_between,
    read_counters,
    save_checkpoint,
    write_ab_result,
    write_alerts,
    write_outcomes,
    write_predictions,
)
from connectors.postgres.migrate import current_revision, head_revision, upgrade
from connectors.postgres.quarantine import read_quarantine, write_quarantine
from connectors.postgres.retry import is_connection_error, is_data_error, write_until_done

__all__ = [
    "AssignmentCounts",
    "add_counters",
    "arrived_counts",
    "assignment_counts",
    "current_revision",
    "drop_database",
    "head_revision",
    "is_connection_error",
    "is_data_error",
    "latest_ab_result",
    "load_checkpoint",
    "make_engine",
    "metric_buckets_between",
    "minute_sums_between",
    "read_counters",
    "read_quarantine",
    "recent_flag_changes",
    "record_flag_change",
    "save_checkpoint",
    "upgrade",
    "write_ab_result",
    "write_alerts",
    "write_outcomes",
    "write_predictions",
    "write_quarantine",
    "write_until_done",
]
