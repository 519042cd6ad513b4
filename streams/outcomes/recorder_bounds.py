"""What the recorder refuses to store: numbers no real event carries, which would overflow or
poison the history's sums.

A delay beyond ±1,000,000 minutes (almost two years) is not a pickup delay. Within that bound a
squared error is at most 1e12, so even a billion outcomes in one hourly bucket sum to 1e21, far
from float8's limit (1.8e308); a forged 1e200 would overflow ``sum_sq_error`` at once and fail
the whole batch on every restart.
"""

from __future__ import annotations

import math

from schemas import Alert, Outcome, Prediction

MAX_ABS_MINUTES = 1_000_000.0
MAX_MILLISECONDS = 1e9


def _bad(name: str, value: float | None, bound: float) -> str | None:
    if value is None:
        return None
    if not math.isfinite(value):
        return f"{name} is not finite ({value})"
    if abs(value) > bound:
        return f"{name} {value:.6g} is beyond ±{bound:.6g}"
    return None


def out_of_bounds(event: Prediction | Outcome | Alert) -> str | None:
    """Why ``event`` must not be stored, or None when it may be."""
    checks: list[tuple[str, float | None, float]] = []
    if isinstance(event, Prediction):
        checks = [
            ("predicted_delay_minutes", event.predicted_delay_minutes, MAX_ABS_MINUTES),
            ("processing_ms", event.processing_ms, MAX_MILLISECONDS),
            ("latency_ms", event.latency_ms, MAX_MILLISECONDS),
        ]
    elif isinstance(event, Outcome):
        checks = [
            (name, getattr(event, name), MAX_ABS_MINUTES)
            for name in (
                "predicted_delay_minutes",
                "predicted_p90_minutes",
                "actual_delay_minutes",
                "error",
                "abs_error",
            )
        ]
    for name, value, bound in checks:
        problem = _bad(name, value, bound)
        if problem is not None:
            return problem
    return None
