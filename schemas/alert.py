"""Alert: something an operator must look at, on ``alerts``, in PostgreSQL and in the log."""

from enum import StrEnum
from typing import Final, Literal

from pydantic import AwareDatetime, Field

from schemas._base import Event

ALERT_SCHEMA_VERSION: Final = 1


class AlertKind(StrEnum):
    ERROR_DRIFT = "error_drift"  # concept drift: an arm's absolute error changed
    FEATURE_DRIFT = "feature_drift"  # incoming bookings differ from the training data
    PREDICTION_DRIFT = "prediction_drift"  # the distribution of predictions moved
    MAE_THRESHOLD = "mae_threshold"
    ML_ERROR_RATE = "ml_error_rate"
    FALLBACK_STORM = "fallback_storm"
    INTERVAL_COVERAGE = "interval_coverage"  # an arm's P90 coverage left its band
    AB_VERDICT = "ab_verdict"  # the A/B verdict changed
    LABEL_COVERAGE = "label_coverage"  # an arm's due actual delays did not arrive
    RAMP = "ramp"  # the guarded ramp moved ML's share (advance, rollback, complete)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Alert(Event):
    schema_version: Literal[1] = ALERT_SCHEMA_VERSION
    alert_id: str = Field(description="Deterministic: the same condition gives the same id.")
    kind: AlertKind
    severity: Severity
    subject: str = Field(description="What it is about: an arm, a feature, a model version.")
    message: str = Field(max_length=1000)
    evidence: dict[str, float | str] = Field(default_factory=dict)
    event_time: AwareDatetime = Field(description="Event time of what triggered it.")
    raised_at: AwareDatetime
