"""Confidence: how much to trust one predicted delay, as a number in [0, 1].

Both predictors turn a *spread* in minutes (how far the truth may plausibly be from the
prediction) into a confidence with the same formula, so their confidences can be compared:

    confidence = 1 / (1 + spread_minutes / CONFIDENCE_SCALE_MINUTES)

A spread of 0 gives 1; a spread of CONFIDENCE_SCALE_MINUTES gives 0.5; it tends to 0 as the
spread grows. What the spread is differs: the forest uses the disagreement between its trees for
that booking, the heuristic the residual spread of its fit (the same for every booking).

>>> confidence_from_spread(np.array([0.0, 5.0, 15.0])).tolist()
[1.0, 0.5, 0.25]
"""

from __future__ import annotations

import numpy as np

CONFIDENCE_SCALE_MINUTES = 5.0


def confidence_from_spread(
    spread_minutes: np.ndarray, scale_minutes: float = CONFIDENCE_SCALE_MINUTES
) -> np.ndarray:
    """Element-wise ``1 / (1 + spread / scale)``; negative spreads count as 0."""
    spread = np.maximum(np.asarray(spread_minutes, dtype=np.float64), 0.0)
    return 1.0 / (1.0 + spread / scale_minutes)
