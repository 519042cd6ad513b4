"""Two predictors compared on identical rows: the difference of their mean absolute errors.

Each row gives both predictors' absolute errors on the same booking, so the comparison is
paired: the interval and the test are those of the mean of the per-row differences (Student's
t), which removes the variation between bookings that two independent samples would keep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedDifference:
    """``a`` against ``b`` on ``n`` identical rows: MAE(a) - MAE(b), negative when ``a`` errs
    less, with its two-sided interval at ``confidence`` and the p-value of "no difference"."""

    a: str
    b: str
    n: int
    mae_a: float
    mae_b: float
    difference: float
    low: float
    high: float
    p_value: float
    confidence: float

    def describe(self) -> str:
        """One line for a terminal.

        >>> d = paired_difference("champion", np.array([1.0, 2.0, 3.0, 2.5]),
        ...                       "heuristic", np.array([2.0, 2.5, 3.5, 3.0]))
        >>> d.describe()
        'champion - heuristic: -0.625 min (95 % CI -1.023 to -0.227), p = 0.015, n = 4'
        """
        return (
            f"{self.a} - {self.b}: {self.difference:+.3f} min ({self.confidence:.0%} CI "
            f"{self.low:.3f} to {self.high:.3f}), p = {self.p_value:.2g}, n = {self.n}"
        ).replace("%", " %", 1)

    def as_dict(self) -> dict[str, object]:
        return {
            "a": self.a,
            "b": self.b,
            "n": self.n,
            "mae_a": self.mae_a,
            "mae_b": self.mae_b,
            "mae_difference": self.difference,
            "interval": [self.low, self.high],
            "confidence": self.confidence,
            "p_value": self.p_value,
        }


def paired_from_sums(
    a: str,
    b: str,
    *,
    n: int,
    sum_a: float,
    sum_b: float,
    sum_d: float,
    sum_d2: float,
    confidence: float = 0.95,
) -> PairedDifference | None:
    """The paired comparison from sums (as a database aggregates them): ``sum_d`` and
    ``sum_d2`` over the rows' differences of absolute errors a - b. None below two rows.

    >>> ea, eb = np.array([1.0, 2.0, 3.0, 2.5]), np.array([2.0, 2.5, 3.5, 3.0])
    >>> d = ea - eb
    >>> s = paired_from_sums("x", "y", n=4, sum_a=ea.sum(), sum_b=eb.sum(), sum_d=d.sum(),
    ...                      sum_d2=(d * d).sum())
    >>> s == paired_difference("x", ea, "y", eb)
    True
    """
    if n < 2:
        return None
    mean = sum_d / n
    variance = max(0.0, (sum_d2 - n * mean * mean) / (n - 1))
    se = math.sqrt(variance / n)
    # Sums lose precision: a spread at rounding level is no spread.
    low, high, p_value = _t_interval(mean, 0.0 if se <= 1e-12 * max(1.0, abs(mean)) else se, n,
                                     confidence)  # fmt: skip
    return PairedDifference(
        a=a,
        b=b,
        n=n,
        mae_a=sum_a / n,
        mae_b=sum_b / n,
        difference=mean,
        low=low,
        high=high,
        p_value=p_value,
        confidence=confidence,
    )


def paired_difference(
    a: str,
    abs_errors_a: np.ndarray,
    b: str,
    abs_errors_b: np.ndarray,
    confidence: float = 0.95,
) -> PairedDifference:
    """Compare two predictors by their absolute errors on the same rows, in the same order.

    Needs at least two rows. When every row has the same difference the interval is that
    difference alone, and the p-value 1 when it is zero, else 0.

    >>> d = paired_difference("x", np.array([1.0, 1.0]), "y", np.array([2.0, 2.0]))
    >>> (d.difference, d.low, d.high, d.p_value)
    (-1.0, -1.0, -1.0, 0.0)
    """
    ea = np.asarray(abs_errors_a, dtype=np.float64)
    eb = np.asarray(abs_errors_b, dtype=np.float64)
    if ea.shape != eb.shape or ea.ndim != 1:
        raise ValueError(f"expected two rows of the same length, got {ea.shape} and {eb.shape}")
    n = int(ea.size)
    if n < 2:
        raise ValueError(f"a paired comparison needs at least 2 rows, got {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    diff = ea - eb
    mean = float(diff.mean())
    se = float(diff.std(ddof=1)) / math.sqrt(n)
    low, high, p_value = _t_interval(mean, se, n, confidence)
    return PairedDifference(
        a=a,
        b=b,
        n=n,
        mae_a=float(ea.mean()),
        mae_b=float(eb.mean()),
        difference=mean,
        low=low,
        high=high,
        p_value=p_value,
        confidence=confidence,
    )


def _t_interval(mean: float, se: float, n: int, confidence: float) -> tuple[float, float, float]:
    """Student's t interval of a mean with standard error ``se`` over ``n`` rows, and the
    p-value of a zero mean; with no spread, the mean alone (p 1 when it is 0, else 0)."""
    if se == 0.0:
        return mean, mean, 1.0 if mean == 0.0 else 0.0
    q = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    return mean - q * se, mean + q * se, float(2 * stats.t.sf(abs(mean) / se, n - 1))
