"""Estimated, then realized: each pickup hour's MAE from the predicted distribution as soon as
the predictions are made (:mod:`models.estimate`), beside the realized MAE as the actuals arrive,
and how far the estimate was from it on the predictions that have both."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.postgres.history import Bind
from connectors.postgres.monitoring import estimate_sums
from models.estimate import ABS_ERROR_PER_SPREAD

MIN_REALIZED = 30  # actuals in an hour before its estimate's error is counted


def _ratio(total: float, n: int) -> float | None:
    return total / n if n else None


def estimated_then_realized(
    bind: Bind, *, since: datetime, until: datetime, realized_share: float
) -> dict[str, Any]:
    """Per pickup hour and arm: the estimated MAE, the realized MAE, which one stands (realized
    once ``realized_share`` of the hour's predictions have their actual), and the estimate's
    error on the predictions with both; with the mean error and bias over the hours that have
    at least MIN_REALIZED of them."""
    rows = estimate_sums(bind, since=since, until=until, factor=ABS_ERROR_PER_SPREAD)
    hours, errors = [], []
    for r in rows:
        n, n_realized, n_both = int(r["n"]), int(r["n_realized"]), int(r["n_both"])
        estimated = _ratio(float(r["sum_estimated"]), int(r["n_estimated"]))
        realized = _ratio(float(r["sum_realized"]), n_realized)
        error = None
        if n_both:
            error = (float(r["sum_estimated_both"]) - float(r["sum_realized_both"])) / n_both
            if n_both >= MIN_REALIZED:
                errors.append(error)
        settled = realized is not None and n_realized >= realized_share * n
        hours.append(
            {
                "hour_start": r["hour_start"],
                "arm": r["arm"],
                "n": n,
                "estimated_mae": estimated,
                "n_estimated": int(r["n_estimated"]),
                "realized_mae": realized,
                "n_realized": n_realized,
                "mae": realized if settled else estimated,
                "status": "realized" if settled else "estimated",
                "estimate_error": error,
                "n_both": n_both,
            }
        )
    return {
        "since": since,
        "until": until,
        "hours": hours,
        "estimate_error": {
            "hours": len(errors),
            "mean_abs": sum(abs(e) for e in errors) / len(errors) if errors else None,
            "bias": sum(errors) / len(errors) if errors else None,
        },
    }
