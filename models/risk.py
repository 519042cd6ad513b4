"""Risk level of a predicted delay, from two thresholds chosen by operations (settings).

``low`` below ``medium_minutes``, ``medium`` from ``medium_minutes`` up to (not including)
``high_minutes``, ``high`` from ``high_minutes`` on.

>>> [r.value for r in risk_levels(np.array([1.0, 5.0, 14.9, 15.0]), 5.0, 15.0)]
['low', 'medium', 'medium', 'high']
"""

from __future__ import annotations

import numpy as np

from schemas.prediction import RiskLevel

_BY_CODE = (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH)


def risk_levels(delays: np.ndarray, medium_minutes: float, high_minutes: float) -> list[RiskLevel]:
    """The risk level of each predicted delay (minutes), in order."""
    if high_minutes < medium_minutes:
        raise ValueError(f"high threshold {high_minutes} is below medium {medium_minutes}")
    values = np.asarray(delays, dtype=np.float64)
    codes = (values >= medium_minutes).astype(np.int64) + (values >= high_minutes)
    return [_BY_CODE[c] for c in codes.tolist()]
