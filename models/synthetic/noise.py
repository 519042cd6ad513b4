"""Random numbers keyed by (seed, stream, index), so any part of the world can be regenerated
alone: the weather of one hour, the day effect of one date, without replaying the rest.

Streams used (any distinct integers): the weather's shared processes 0–7, the day effect 8,
the incidents 9, each station's own processes 100 + 10 × station index + component.
"""

from __future__ import annotations

import numpy as np


def unit_normal(seed: int, stream: int, index: int) -> float:
    """A standard normal number determined by (seed, stream, index)."""
    # The offset keeps the index non-negative for dates and hours before 1970.
    return float(np.random.default_rng([seed, stream, index + 1_000_000]).standard_normal())


def smooth_noise(seed: int, stream: int, hours: np.ndarray, knot_hours: int) -> np.ndarray:
    """A smooth process over integer hours: a :func:`unit_normal` at every ``knot_hours``-th
    hour, cosine-interpolated in between (so its value at an hour never depends on the range
    asked for)."""
    knots = np.floor_divide(hours, knot_hours)
    first, last = int(knots.min()), int(knots.max()) + 1
    values = np.array([unit_normal(seed, stream, k) for k in range(first, last + 1)])
    frac = (hours - knots * knot_hours) / knot_hours
    weight = (1.0 - np.cos(np.pi * frac)) / 2.0
    i = knots - first
    return np.asarray(values[i] * (1.0 - weight) + values[i + 1] * weight)
