"""The JSON shapes of the monitoring API (the contract the dashboard reads), as pydantic models.

They feed both the answers and the OpenAPI document. Every time is serialized in UTC; numbers
that cannot be computed are null.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_to_utc)]
ArmName = Literal["ml", "heuristic"]
Status = Literal["ok", "degraded", "down"]


class ErrorDetail(BaseModel):
    detail: str


class ArmMetrics(BaseModel):
    n: int
    mae: float | None
    rmse: float | None
    r2: float | None
    bias: float | None = Field(description="Mean signed error, predicted − actual (minutes).")
    underestimate_share: float | None = Field(
        description="Share of outcomes underestimated by more than 5 minutes."
    )
    p90_n: int = Field(description="Outcomes whose prediction carried a P90.")
    p90_coverage: float | None = Field(
        description="Share of those outcomes whose actual delay was at most the P90 (0.9 when "
        "the interval is honest); null when none had a P90."
    )


class Arms(BaseModel):
    ml: ArmMetrics
    heuristic: ArmMetrics


class FlagChange(BaseModel):
    changed_at: UtcTime
    actor: str
    old_ml_enabled: bool
    old_ml_traffic_percentage: float
    new_ml_enabled: bool
    new_ml_traffic_percentage: float


class Flags(BaseModel):
    ml_enabled: bool
    ml_traffic_percentage: float
    source: Literal["redis", "settings"] = Field(
        description="settings when Redis is unreachable or holds no flags yet."
    )
    version: int | None
    recent_changes: list[FlagChange] = Field(description="Newest first, at most 20.")


class ArmCounts(BaseModel):
    ml: int
    heuristic: int


class Split(BaseModel):
    percentage: float = Field(
        description="The ML share (%) the flags asked for over the window's predictions; "
        "the flags in force when the window has none."
    )
    assigned: ArmCounts
    arrived: ArmCounts


class ABArm(BaseModel):
    n: int
    mae: float | None
    ci_low: float | None
    ci_high: float | None


class ABArms(BaseModel):
    ml: ABArm
    heuristic: ABArm


class ABDifference(BaseModel):
    mae_ml_minus_heuristic: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


class SampleRatio(BaseModel):
    observed_ml: int
    observed_heuristic: int
    expected_ml_share: float
    chi_square: float | None
    p_value: float | None
    flagged: bool


class SampleRatioChecks(BaseModel):
    assigned: SampleRatio | None
    with_actual: SampleRatio


class ABReport(BaseModel):
    verdict: Literal["ml_better", "heuristic_better", "inconclusive"]
    window: str = Field(
        description="The window's name (15m, 1h, 24h, 7d, all) or custom for the last N hours."
    )
    window_start: UtcTime
    window_end: UtcTime
    arms: ABArms
    difference: ABDifference
    srm: SampleRatioChecks
    min_samples: int
    reasons: list[str]


class Summary(BaseModel):
    as_of: UtcTime
    window_start: UtcTime
    window: str = Field(
        description="The window's name (15m, 1h, 24h, 7d, all) or custom for the last N hours."
    )
    window_label: str
    outcomes: int = Field(description="Live outcomes in the window, both arms.")
    arms: Arms
    flags: Flags
    split: Split
    ab: ABReport | None = Field(description="null when the window has no outcomes.")
    alerts: int
    predictions: int


class PeriodMetrics(ArmMetrics):
    period_start: UtcTime
    arm: ArmName
    few: bool = Field(
        description="Fewer outcomes than a figure needs (MIN_POINT_OUTCOMES): drawn as such."
    )


class PeriodSeries(BaseModel):
    as_of: UtcTime
    window_start: UtcTime
    window: str = Field(
        description="The window's name (15m, 1h, 24h, 7d, all) or custom for the last N hours."
    )
    window_label: str
    step_seconds: int = Field(description="The length of each period.")
    min_point_outcomes: int
    series: list[PeriodMetrics] = Field(
        description="Every period and arm of the window, oldest first."
    )


class DayMetrics(ArmMetrics):
    day: date
    arm: ArmName


class DailySeries(BaseModel):
    as_of: UtcTime
    window_start: UtcTime
    days: int
    series: list[DayMetrics] = Field(description="Every UTC day and arm, oldest first.")


class Anomaly(BaseModel):
    booking_id: str
    arm: ArmName
    model_version: str
    predicted_delay_minutes: float
    actual_delay_minutes: float
    error: float
    abs_error: float
    observed_at: UtcTime


class Anomalies(BaseModel):
    threshold_mae: float
    as_of: UtcTime
    window_start: UtcTime
    items: list[Anomaly]


class PredictionItem(BaseModel):
    booking_id: str
    predicted_at: UtcTime
    scheduled_pickup_at: UtcTime
    predicted_delay_minutes: float
    confidence: float
    risk_level: str
    arm: ArmName
    served_by: ArmName
    model_version: str
    fallback_reason: str | None
    latency_ms: float | None
    replay: bool


class Predictions(BaseModel):
    items: list[PredictionItem]


class AlertItem(BaseModel):
    alert_id: str
    kind: str
    severity: str
    subject: str
    message: str
    event_time: UtcTime
    raised_at: UtcTime
    evidence: dict[str, Any]


class Alerts(BaseModel):
    items: list[AlertItem]


class Dependency(BaseModel):
    status: Status
    detail: str
    latency_ms: float | None


class Dependencies(BaseModel):
    postgres: Dependency
    redis: Dependency
    kafka: Dependency
    model: Dependency


class Health(BaseModel):
    status: Status
    checked_at: UtcTime
    dependencies: Dependencies


class ArmLabels(BaseModel):
    arm: ArmName
    due: int = Field(description="Live predictions whose actual delay is due.")
    arrived: int = Field(description="Of those, the ones whose actual delay arrived.")
    coverage: float | None = Field(description="arrived / due; null when none is due.")
    missing_share: float | None = Field(description="1 - coverage: the share still missing.")
    below_target: bool


class LabelCoverageReport(BaseModel):
    as_of: UtcTime
    wait_minutes: float = Field(description="An actual is due this long after the pickup.")
    pickups_from: UtcTime
    pickups_until: UtcTime
    target: float
    arms: list[ArmLabels]


class RampCheck(BaseModel):
    name: str
    kind: Literal["guardrail", "signal", "gate"]
    ok: bool
    judged: bool = Field(default=True, description="False: too little evidence yet to judge.")
    detail: str
    value: float | None


class RampBlocker(BaseModel):
    name: str
    kind: Literal["guardrail", "signal", "gate"]
    detail: str


class RampMove(BaseModel):
    seq: int
    at: UtcTime
    kind: str
    actor: str
    from_percentage: float
    to_percentage: float
    reason: str


class RampStatus(BaseModel):
    ramp: dict[str, Any] | None = Field(
        description="The newest ramp (status, steps, step, percentage, configuration); null "
        "when none was ever started."
    )
    flags: dict[str, Any]
    next_step_allowed: bool
    summary: str = Field(description="One sentence: what the next look would do, and why.")
    decision: Literal["advance", "complete", "rollback", "hold", "wait"] | None = None
    blockers: list[RampBlocker] = []
    checks: list[RampCheck] = []
    evidence: dict[str, Any] | None = None
    controller: dict[str, Any] | None = None
    moves: list[RampMove] = []


class ShadowComparison(BaseModel):
    challenger: str
    against: Literal["champion", "heuristic", "served"] = Field(
        description="champion: bookings ML served; heuristic: bookings it served; served: all."
    )
    n: int
    mae_challenger: float
    mae_against: float
    difference: float = Field(description="MAE(challenger) - MAE(against), paired (minutes).")
    ci_low: float
    ci_high: float
    p_value: float


class ShadowHour(BaseModel):
    hour_start: UtcTime
    comparisons: list[ShadowComparison]


class ShadowReport(BaseModel):
    window: str
    window_start: UtcTime
    window_end: UtcTime
    challengers: list[str]
    comparisons: list[ShadowComparison]
    hours: list[ShadowHour]


class TimelineEntry(BaseModel):
    at: UtcTime
    source: Literal["flags", "models", "ramp", "alerts"]
    kind: str
    title: str
    detail: str
    actor: str | None
    link: str = Field(description="The API path that shows this entry's evidence in full.")
    evidence: dict[str, Any]


class Timeline(BaseModel):
    since: UtcTime
    until: UtcTime
    items: list[TimelineEntry] = Field(description="Oldest first.")


class EstimatedHour(BaseModel):
    hour_start: UtcTime = Field(description="The hour of the bookings' scheduled pickups.")
    arm: ArmName
    n: int = Field(description="Live predictions of the hour and arm.")
    estimated_mae: float | None = Field(
        description="Mean expected absolute error from each prediction's P90 (normal reading)."
    )
    n_estimated: int
    realized_mae: float | None = Field(description="MAE of those whose actual arrived.")
    n_realized: int
    mae: float | None = Field(description="The realized MAE once settled, else the estimate.")
    status: Literal["estimated", "realized"]
    estimate_error: float | None = Field(
        description="Estimated minus realized MAE over the predictions that have both."
    )
    n_both: int


class EstimateError(BaseModel):
    hours: int = Field(description="Hours with at least 30 predictions having both.")
    mean_abs: float | None
    bias: float | None


class EstimatedMae(BaseModel):
    since: UtcTime
    until: UtcTime
    hours: list[EstimatedHour]
    estimate_error: EstimateError
