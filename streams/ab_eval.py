"""The A/B evaluation of ML against the heuristic, from PostgreSQL's history.

The recorder runs it every AB_INTERVAL_S over the last 24 hours; ``delaycast ab report`` runs it
on demand. Each result is stored in ``ab_test_results``; a change of verdict is published on
``alerts``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from connectors.postgres import history
from models.ab import ABResult, ArmCounts, compare_arms
from models.rolling import MetricSums
from schemas import Alert, AlertKind, Severity


@dataclass(frozen=True)
class ABEvaluation:
    result: ABResult
    window_start: datetime
    window_end: datetime
    previous_verdict: str | None

    @property
    def verdict_changed(self) -> bool:
        return (
            self.previous_verdict is not None and self.previous_verdict != self.result.verdict.value
        )


def arm_sums(rows: list[dict]) -> dict[str, MetricSums]:
    sums = {"ml": MetricSums.zero(), "heuristic": MetricSums.zero()}
    for row in rows:
        sums[row["arm"]] = sums[row["arm"]] + MetricSums(
            *(row[name] for name in history.SUM_COLUMNS)
        )
    return sums


FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def compare(
    sums: dict[str, MetricSums], assigned: history.AssignmentCounts, *, min_samples: int
) -> ABResult:
    """The A/B result from the arms' outcome sums and the window's assignment counts."""
    share = assigned.expected_ml_share
    return compare_arms(
        sums["ml"],
        sums["heuristic"],
        expected_ml_share=share if share is not None else 0.0,
        assigned=ArmCounts(assigned.by_arm.get("ml", 0), assigned.by_arm.get("heuristic", 0)),
        min_samples=min_samples,
    )


def analyse(
    engine: sa.Engine, *, start: datetime, end: datetime | None, min_samples: int, now: datetime
) -> tuple[ABResult, datetime]:
    """Compare the arms over outcomes observed (event time) in [start, end), without storing
    the result; returns it with the window's end.

    Without ``end``, the window runs to the newest outcome's hour (or ``now`` when there is none),
    and its assignment counts to ``now``: predictions are stamped by the wall clock, outcomes
    at their observation, which can be hours earlier (an actual is never observed in the
    future), so a window ending at the newest outcome would leave out the predictions of its
    own bookings and see a sample-ratio mismatch that is not there.
    """
    hour = start.replace(minute=0, second=0, microsecond=0)
    rows = history.metric_buckets_between(engine, start=hour, end=end or FAR_FUTURE)
    assigned_until = end
    if end is None:
        end = max((r["hour_start"] for r in rows), default=now - timedelta(hours=1))
        end += timedelta(hours=1)
        assigned_until = max(end, now)
    assigned = history.assignment_counts(engine, since=start, until=assigned_until)
    return compare(arm_sums(rows), assigned, min_samples=min_samples), end


def evaluate(
    engine: sa.Engine, *, start: datetime, end: datetime | None, min_samples: int, now: datetime
) -> ABEvaluation:
    """:func:`analyse`, and store the result in ``ab_test_results``."""
    previous = history.latest_ab_result(engine)
    result, end = analyse(engine, start=start, end=end, min_samples=min_samples, now=now)
    history.write_ab_result(
        engine,
        result=result.to_dict(),
        verdict=result.verdict.value,
        computed_at=end,
        window_start=start,
        window_end=end,
    )
    return ABEvaluation(result, start, end, previous["verdict"] if previous else None)


def verdict_alert(evaluation: ABEvaluation, now: datetime) -> Alert:
    r = evaluation.result
    raw = f"{AlertKind.AB_VERDICT.value}|{evaluation.window_end.isoformat()}|{r.verdict.value}"
    mae = lambda e: "n/a" if e.mae is None else f"{e.mae:.2f}"  # noqa: E731
    return Alert(
        alert_id=hashlib.sha256(raw.encode()).hexdigest()[:24],
        kind=AlertKind.AB_VERDICT,
        severity=Severity.INFO,
        subject="ml_vs_heuristic",
        message=(
            f"A/B verdict changed from {evaluation.previous_verdict} to {r.verdict.value}: "
            f"MAE ML {mae(r.ml)} min (n={r.ml.n}) vs heuristic {mae(r.heuristic)} min "
            f"(n={r.heuristic.n}), p={'n/a' if r.p_value is None else f'{r.p_value:.3g}'}"
        ),
        evidence={
            "verdict": r.verdict.value,
            "previous": evaluation.previous_verdict or "",
            "n_ml": r.ml.n,
            "n_heuristic": r.heuristic.n,
        },
        event_time=evaluation.window_end,
        raised_at=now,
    )


def periodic_task(
    engine: sa.Engine,
    *,
    clock: Callable[[], datetime],
    publish: Callable[[list[Alert]], None],
    min_samples: int,
    window: timedelta = timedelta(hours=24),
) -> Callable[[], None]:
    def run() -> None:
        now = clock()
        evaluation = evaluate(
            engine, start=now - window, end=None, min_samples=min_samples, now=now
        )
        if evaluation.verdict_changed:
            publish([verdict_alert(evaluation, now)])

    return run
