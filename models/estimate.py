"""An MAE estimated from the predicted distribution, before any actual delay arrives.

A prediction carries its delay and its P90 (:mod:`models.interval`, calibrated on the training
holdout). Read as a normal distribution around the delay whose 90th percentile is the P90, its
expected absolute error is sigma * sqrt(2 / pi), with sigma = (P90 - delay) / z(0.9). An hour's
estimated MAE is the mean of that over its predictions; as actuals arrive, the realized MAE of
the same predictions replaces it, and the difference between the two (the estimate's error) is
tracked: a P90 that is honest but whose shape is not normal, or a P90 that is not honest, shows
there.
"""

from __future__ import annotations

import math

Z90 = 1.2815515655446004  # the standard normal's 90th percentile
ABS_ERROR_PER_SPREAD = math.sqrt(2.0 / math.pi) / Z90  # E|error| per minute of (P90 - delay)


def expected_abs_error(delay: float, p90: float) -> float:
    """The expected absolute error of a prediction with this delay and P90 (0 when the P90 is
    not above the delay).

    >>> round(expected_abs_error(10.0, 10.0 + Z90 * 2.0), 6)  # sigma 2: 2 * sqrt(2 / pi)
    1.595769
    >>> expected_abs_error(10.0, 9.0)
    0.0
    """
    return max(0.0, p90 - delay) * ABS_ERROR_PER_SPREAD
