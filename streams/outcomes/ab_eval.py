"""The A/B evaluation of ML against the heuristic, and the figures of a window, from
PostgreSQL's history.

:func:`window_figures` is what every screen shows for a window (:mod:`streams.outcomes.windows`):
the API's summary and A/B report, the dashboard (through the API), ``delaycast ab report`` and the
demo's live line all call it, so for the same window they give the same counts, MAE and
verdict. The recorder evaluates the ``24h`` window every AB_INTERVAL_S; each stored result goes
to ``ab_test_results``, and a change of verdict is published on ``alerts``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from connectors.postgres import history
from connectors.postgres import monitoring as queries
from models.ab import ABResult, ArmCounts, compare_arms
from models.rolling import MetricSums
from schemas import Alert, AlertKind, Severity
from streams.outcomes.windows import Window, event_window, window_totals


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


def latest_window(bind: history.Bind, name: str, *, now: datetime) -> Window:
    """The named window as it stands: ending at the newest live outcome's minute."""
    newest, oldest = queries.live_minute_range(bind)
    return event_window(name, newest_minute=newest, oldest_minute=oldest, now=now)


@dataclass(frozen=True)
class WindowFigures:
    """What a window holds: the arms' outcome sums, the predictions assigned to each arm and
    the A/B result over them."""

    window: Window
    sums: dict[str, MetricSums]
    assigned: history.AssignmentCounts
    result: ABResult

    @property
    def outcomes(self) -> int:
        return sum(s.n for s in self.sums.values())


def assignment_end(window: Window, now: datetime) -> datetime:
    """Where a window's assignment counts end. A window that runs to the newest outcome counts
    its predictions to ``now``: predictions are stamped by the wall clock, outcomes at their
    observation (a pickup later, never in the future), so a window cut at the newest outcome
    would leave out the predictions of its own bookings and see a sample-ratio mismatch that is
    not there. A closed window (its end given) counts the predictions within it."""
    return window.end if window.closed else max(window.end, now)


def window_figures(
    bind: history.Bind, window: Window, *, min_samples: int, now: datetime
) -> WindowFigures:
    """The figures of outcomes observed (event time) in ``window``, without storing them."""
    rows = history.minute_sums_between(
        bind, start=window.read_start, end=window.end, hourly=window.hourly
    )
    sums = window_totals(rows)
    assigned = history.assignment_counts(
        bind, since=window.start, until=assignment_end(window, now)
    )
    result = compare(sums, assigned, min_samples=min_samples)
    return WindowFigures(window, sums, assigned, result)


@dataclass(frozen=True)
class ABEvaluation:
    figures: WindowFigures
    previous_verdict: str | None

    @property
    def result(self) -> ABResult:
        return self.figures.result

    @property
    def window_start(self) -> datetime:
        return self.figures.window.start

    @property
    def window_end(self) -> datetime:
        return self.figures.window.end

    @property
    def verdict_changed(self) -> bool:
        return (
            self.previous_verdict is not None and self.previous_verdict != self.result.verdict.value
        )


def evaluate(
    bind: history.Bind, window: Window, *, min_samples: int, now: datetime
) -> ABEvaluation:
    """:func:`window_figures`' A/B result, stored in ``ab_test_results``."""
    previous = history.latest_ab_result(bind)
    figures = window_figures(bind, window, min_samples=min_samples, now=now)
    result = figures.result
    history.write_ab_result(
        bind,
        result=result.to_dict(),
        verdict=result.verdict.value,
        computed_at=window.end,
        window_start=window.start,
        window_end=window.end,
    )
    return ABEvaluation(figures, previous["verdict"] if previous else None)


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
    engine: history.Bind,
    *,
    clock: Callable[[], datetime],
    publish: Callable[[list[Alert]], None],
    min_samples: int,
    window: str = "24h",
) -> Callable[[], None]:
    def run() -> None:
        now = clock()
        evaluation = evaluate(
            engine, latest_window(engine, window, now=now), min_samples=min_samples, now=now
        )
        if evaluation.verdict_changed:
            publish([verdict_alert(evaluation, now)])

    return run
