"""The P90 beside each predicted delay: a delay the actual one stays below 9 times in 10.

Every predictor gives a confidence, and every confidence is a spread in minutes turned into
[0, 1] (:mod:`models.confidence`): the forest's tree disagreement, the boosting model's
predicted absolute error, the heuristic's residual spread. The P90 is

    p90 = delay + scale × spread

with ``scale`` calibrated by split conformal prediction on held-out rows that the model never
saw: the smallest scale under which at least 90 % of those rows' actual delays stay at or below
their P90 (with the usual finite-sample correction). The scale served is calibrated on the
whole holdout (more days, a steadier scale). The coverage reported is measured out of sample:
calibrated on the first half of the holdout and counted on the second, later half, so it also
shows what a drift between the two does to the interval.

>>> y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
>>> scale = calibrate_scale(y, np.zeros(10), np.ones(10))
>>> scale, float(coverage(y, p90(np.zeros(10), np.full(10, 0.5), scale)))
(10.0, 1.0)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.confidence import CONFIDENCE_SCALE_MINUTES

LEVEL = 0.9
# The least spread a prediction is given (minutes), in calibration and in serving alike: a
# predictor sure to the second (trees that all agree) would otherwise blow the scale up.
SPREAD_FLOOR_MIN = 0.1
# Levels at which the normalised excess is recorded, to read the chance of any delay later.
SCORE_LEVELS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))


def spread_of(confidence: np.ndarray) -> np.ndarray:
    """The spread in minutes a confidence stands for (the inverse of confidence_from_spread)."""
    c = np.clip(np.asarray(confidence, dtype=np.float64), 1e-9, 1.0)
    return np.maximum(CONFIDENCE_SCALE_MINUTES * (1.0 / c - 1.0), SPREAD_FLOOR_MIN)


def calibrate_scale(
    y: np.ndarray, delay: np.ndarray, spread: np.ndarray, level: float = LEVEL
) -> float:
    """The conformal scale: the ``ceil((n + 1) level) / n`` quantile of the rows' normalised
    excess ``(y - delay) / spread`` (spreads floored at SPREAD_FLOOR_MIN)."""
    y, delay = np.asarray(y, dtype=np.float64), np.asarray(delay, dtype=np.float64)
    if y.shape != delay.shape or y.ndim != 1 or y.size == 0:
        raise ValueError("need one delay and one actual per row, at least one row")
    spread = np.maximum(np.asarray(spread, dtype=np.float64), SPREAD_FLOOR_MIN)
    scores = np.sort((y - delay) / spread)
    rank = min(len(scores), math.ceil((len(scores) + 1) * level))
    return float(scores[rank - 1])


def p90(delay: np.ndarray, confidence: np.ndarray, scale: float) -> np.ndarray:
    """The P90 of each prediction from its delay and confidence."""
    return np.asarray(delay, dtype=np.float64) + scale * spread_of(confidence)


def coverage(y: np.ndarray, upper: np.ndarray) -> float:
    """The share of actual delays at or below their P90."""
    return float(np.mean(np.asarray(y) <= np.asarray(upper)))


def score_quantiles(y: np.ndarray, delay: np.ndarray, spread: np.ndarray) -> tuple[float, ...]:
    """The normalised excess ``(y - delay) / spread`` at each of :data:`SCORE_LEVELS`."""
    scores = (np.asarray(y, np.float64) - np.asarray(delay, np.float64)) / np.maximum(
        np.asarray(spread, dtype=np.float64), SPREAD_FLOOR_MIN
    )
    return tuple(float(q) for q in np.quantile(scores, SCORE_LEVELS))


def exceedance(
    delay: np.ndarray, confidence: np.ndarray, minutes: float, quantiles: tuple[float, ...]
) -> np.ndarray:
    """The chance that each pickup is at least ``minutes`` late, read from the calibrated
    quantiles of the normalised excess (linear between them; outside, the nearest level's
    chance: at most 0.95, at least 0.05).

    >>> q = tuple(np.linspace(-1.8, 1.8, 19))  # a symmetric excess around the delay
    >>> chance = exceedance(np.array([5.0, 15.0, 30.0]), np.full(3, 0.5), 15.0, q)
    >>> [round(float(p), 2) for p in chance]
    [0.05, 0.5, 0.95]
    """
    z = (minutes - np.asarray(delay, dtype=np.float64)) / spread_of(confidence)
    below: np.ndarray = np.interp(z, quantiles, SCORE_LEVELS)
    return 1.0 - below


@dataclass(frozen=True)
class Interval:
    """A predictor's calibrated P90 scale and the coverage it reached on unseen rows, with the
    quantiles of its normalised excess (for the chance of exceeding a threshold)."""

    scale: float
    coverage: float  # on the evaluation part of the holdout
    calibration_rows: int
    evaluation_rows: int
    quantiles: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": LEVEL,
            "scale": self.scale,
            "coverage": self.coverage,
            "calibration_rows": self.calibration_rows,
            "evaluation_rows": self.evaluation_rows,
            "score_levels": list(SCORE_LEVELS),
            "score_quantiles": list(self.quantiles),
        }

    @classmethod
    def fitted(cls, y: np.ndarray, delay: np.ndarray, confidence: np.ndarray) -> Interval:
        """The scale and quantiles from all the rows; the coverage of a scale calibrated on the
        first half of the rows (in their order: time), counted on the second half."""
        half = len(y) // 2
        if half < 10:
            raise ValueError(f"need at least 20 rows to calibrate an interval, got {len(y)}")
        spread = spread_of(confidence)
        first_half = calibrate_scale(y[:half], delay[:half], spread[:half])
        measured = coverage(y[half:], delay[half:] + first_half * spread[half:])
        scale = calibrate_scale(y, delay, spread)
        quantiles = score_quantiles(y, delay, spread)
        return cls(scale, measured, half, len(y) - half, quantiles)


def quantiles_from_metadata(metadata: dict[str, Any], predictor: str) -> tuple[float, ...] | None:
    """The recorded excess quantiles of ``predictor`` in an artifact's metadata, or None when
    absent or not :data:`SCORE_LEVELS` finite, non-decreasing numbers."""
    p90_entry = metadata.get("p90")
    entry = p90_entry.get(predictor) if isinstance(p90_entry, dict) else None
    values = entry.get("score_quantiles") if isinstance(entry, dict) else None
    if not isinstance(values, list) or len(values) != len(SCORE_LEVELS):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in out) or any(b < a for a, b in itertools.pairwise(out)):
        return None
    return out


def scale_from_metadata(metadata: dict[str, Any], predictor: str) -> float | None:
    """The calibrated scale of ``predictor`` ("model" or "heuristic") in an artifact's
    metadata, or None when the artifact has none (trained before intervals) or it is bad."""
    entry = (
        metadata.get("p90", {}).get(predictor) if isinstance(metadata.get("p90"), dict) else None
    )
    scale = entry.get("scale") if isinstance(entry, dict) else None
    if isinstance(scale, int | float) and not isinstance(scale, bool) and math.isfinite(scale):
        return float(scale)
    return None


# Online tracking of the P90 (quantile tracking, the "P" of conformal PID control): every
# outcome with a P90 adds (miss - 0.1) to its served version's sum S, and the scale served is
# the calibrated one times exp(TRACKING_RATE × S). Misses above 1 in 10 widen the P90s, fewer
# narrow them, so their long-run coverage returns to 0.9 whatever drifts. The factor is bounded
# to [1/4, 4]: a lasting breach beyond that is for the coverage alert and a retraining.
TRACKING_RATE = 0.005
TRACKING_FACTOR_BOUND = 4.0


def tracking_limit(rate: float = TRACKING_RATE) -> float:
    """The bound on |S| that keeps the factor within [1/bound, bound] (none at rate 0)."""
    return math.log(TRACKING_FACTOR_BOUND) / rate if rate > 0 else math.inf


def tracking_factor(total: float | None, rate: float = TRACKING_RATE) -> float:
    """The factor on the calibrated scale for a version's tracked sum (1 when none or rate 0).

    >>> tracking_factor(None), tracking_factor(0.0), round(tracking_factor(100.0), 4)
    (1.0, 1.0, 1.6487)
    >>> tracking_factor(10**9) == TRACKING_FACTOR_BOUND
    True
    """
    if total is None or rate <= 0 or not math.isfinite(total):
        return 1.0
    limit = tracking_limit(rate)
    return math.exp(rate * min(max(total, -limit), limit))


def tracking_deltas(versions: Iterable[str], within: Iterable[bool | None]) -> dict[str, float]:
    """What a batch of outcomes adds to each served version's sum: (misses - 0.1 × n) over its
    outcomes with a P90 (``within`` None: no P90, not counted).

    >>> tracking_deltas(["a", "a", "b", "b"], [False, True, True, None])
    {'a': 0.8, 'b': -0.1}
    """
    deltas: dict[str, float] = {}
    for version, inside in zip(versions, within, strict=True):
        if inside is None:
            continue
        deltas[version] = deltas.get(version, 0.0) + (0.0 if inside else 1.0) - (1.0 - LEVEL)
    return {v: round(d, 9) for v, d in deltas.items()}


def tracked_coverage(
    y: np.ndarray,
    delay: np.ndarray,
    spread: np.ndarray,
    scale: float,
    predicted_at: np.ndarray,
    observed_at: np.ndarray,
    rate: float = TRACKING_RATE,
) -> float:
    """The coverage of P90s served with online tracking, replayed in time: each prediction
    uses the sum S as it stands at ``predicted_at``, and each outcome updates S at
    ``observed_at`` (pickup + actual delay), as the outcome path learns it."""
    upper = np.full(len(y), np.nan)
    observed_at = np.maximum(observed_at, predicted_at)  # an outcome follows its prediction
    # At equal times a prediction comes first (0): an outcome clamped to its own prediction's
    # time must find its P90 already served.
    events = sorted(
        [(float(t), 0, i) for i, t in enumerate(predicted_at)]
        + [(float(t), 1, i) for i, t in enumerate(observed_at)]
    )
    total, limit = 0.0, tracking_limit(rate)
    for _, kind, i in events:
        if kind == 0:
            upper[i] = delay[i] + scale * tracking_factor(total, rate) * spread[i]
        else:
            miss = 1.0 if y[i] > upper[i] else 0.0
            total = min(max(total + miss - (1.0 - LEVEL), -limit), limit)
    return coverage(y, upper)
