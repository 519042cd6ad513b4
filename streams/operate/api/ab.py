"""``/api/ab/report``: the A/B outcome of ML against the heuristic over an event-time window,
computed as ``delaycast ab report`` does (:mod:`streams.outcomes.ab_eval`), but not stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from models.ab import ABResult, ArmEstimate, SampleRatioCheck
from streams.operate.api.params import OptionalHours, WindowName
from streams.operate.api.resources import Resources, get_resources
from streams.operate.api.responses import (
    ABArm,
    ABArms,
    ABDifference,
    ABReport,
    SampleRatio,
    SampleRatioChecks,
)
from streams.operate.api.window_query import requested_window
from streams.outcomes.ab_eval import window_figures
from streams.outcomes.windows import Window

router = APIRouter(prefix="/api/ab", tags=["A/B"])
Res = Annotated[Resources, Depends(get_resources)]


def _arm(estimate: ArmEstimate) -> ABArm:
    return ABArm(n=estimate.n, mae=estimate.mae, ci_low=estimate.ci_low, ci_high=estimate.ci_high)


def _ratio(check: SampleRatioCheck) -> SampleRatio:
    return SampleRatio(
        observed_ml=check.observed_ml,
        observed_heuristic=check.observed_heuristic,
        expected_ml_share=check.expected_ml_share,
        chi_square=check.chi_square,
        p_value=check.p_value,
        flagged=check.flagged,
    )


def ab_report(result: ABResult, window: Window) -> ABReport:
    """The API's shape of an A/B result over ``window``."""
    return ABReport(
        verdict=result.verdict.value,
        window=window.name,
        window_start=window.start,
        window_end=window.end,
        arms=ABArms(ml=_arm(result.ml), heuristic=_arm(result.heuristic)),
        difference=ABDifference(
            mae_ml_minus_heuristic=result.difference,
            ci_low=result.difference_ci_low,
            ci_high=result.difference_ci_high,
            p_value=result.p_value,
        ),
        srm=SampleRatioChecks(
            assigned=None if result.srm_assigned is None else _ratio(result.srm_assigned),
            with_actual=_ratio(result.srm_with_actual),
        ),
        min_samples=result.min_samples,
        reasons=list(result.reasons),
    )


@router.get("/report", response_model=ABReport)
def report(resources: Res, window: WindowName = None, hours: OptionalHours = None) -> ABReport:
    """MAE per arm with 95 % intervals, their difference with a Welch test, the sample-ratio
    checks and the verdict, over an event-time ``window`` (or the last ``hours``)."""
    with resources.engine.connect() as connection:
        now = resources.clock()
        chosen = requested_window(connection, window=window, hours=hours, now=now)
        figures = window_figures(
            connection, chosen, min_samples=resources.settings.ab_min_samples, now=now
        )
    return ab_report(figures.result, chosen)
