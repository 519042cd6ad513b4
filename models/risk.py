"""Risk level of a predicted delay, from two thresholds chosen by operations (settings).

With the chance of exceeding each threshold (:func:`models.interval.exceedance`, from the
predictor's calibrated interval): ``high`` when the chance of a delay of at least
``high_minutes`` reaches ``probability``, else ``medium`` when that of ``medium_minutes`` does,
else ``low``. Without a calibrated interval, from the predicted delay alone: ``low`` below
``medium_minutes``, ``medium`` from ``medium_minutes`` up to (not including) ``high_minutes``,
``high`` from ``high_minutes`` on.

>>> [r.value for r in risk_levels(np.array([1.0, 5.0, 14.9, 15.0]), 5.0, 15.0)]
['low', 'medium', 'medium', 'high']
"""

from __future__ import annotations

import numpy as np

from schemas.prediction import RiskLevel

_BY_CODE = (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH)


def risk_levels_by_chance(
    chance_medium: np.ndarray, chance_high: np.ndarray, probability: float
) -> list[RiskLevel]:
    """The risk level of each booking from its chances of exceeding the two thresholds.

    >>> medium, high = np.array([0.1, 0.4, 0.9]), np.array([0.0, 0.1, 0.35])
    >>> [r.value for r in risk_levels_by_chance(medium, high, 0.3)]
    ['low', 'medium', 'high']
    """
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    medium = np.asarray(chance_medium) >= probability
    high = np.asarray(chance_high) >= probability
    codes = np.where(high, 2, medium.astype(np.int64))
    return [_BY_CODE[c] for c in codes.tolist()]


def risk_levels(delays: np.ndarray, medium_minutes: float, high_minutes: float) -> list[RiskLevel]:
    """The risk level of each predicted delay (minutes), in order."""
    if high_minutes < medium_minutes:
        raise ValueError(f"high threshold {high_minutes} is below medium {medium_minutes}")
    values = np.asarray(delays, dtype=np.float64)
    codes = (values >= medium_minutes).astype(np.int64) + (values >= high_minutes)
    return [_BY_CODE[c] for c in codes.tolist()]
