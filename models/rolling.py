"""Rolling metrics per arm: mergeable sums in hourly event-time buckets.

A :class:`MetricSums` holds sufficient statistics of a set of outcomes, so that the MAE, RMSE,
R², bias, share of underestimates and P90 coverage of any union of sets follow from adding their
sums: an hour's bucket, a day, the last seven days, one arm across model versions.

The sums are exact rational numbers (:class:`fractions.Fraction`): the exact sum of the float64
values given, and of their exact squares. Merging is therefore associative and commutative to
the last bit, so a window or a day has the same value whichever way its buckets are grouped
(incrementally, by a replay, or recomputed from the database), and R² has no cancellation error
when the actual delays are nearly constant. Derived metrics are the correctly rounded floats of
the exact values. Adding a 500-row batch costs a few hundred microseconds.

Buckets are keyed by :class:`BucketKey` ``(arm, model_version, hour)``: ``arm`` is the arm the
booking was assigned to (intention to treat, so a fallback still counts for the ML arm),
``model_version`` the predictor that served it, ``hour`` the UTC hour of ``observed_at`` (the
actual's event time), so a replay of last year's outcomes lands in last year's hours and days.

>>> import numpy as np
>>> s = MetricSums.from_arrays(np.array([1.0, -2.0, -7.0]), np.array([10.0, 12.0, 20.0]))
>>> s.n, s.mae, s.bias, s.n_underestimated
(3, 3.3333333333333335, -2.6666666666666665, 1)
>>> c = MetricSums.from_arrays(np.zeros(3), np.array([4.0, 9.0, 2.0]), np.array([5.0, 8.0, np.nan]))
>>> c.p90_n, c.p90_covered, c.p90_coverage
(2, 1, 0.5)
>>> a, b = MetricSums.from_arrays(np.array([1.0]), np.array([10.0])), MetricSums.zero()
>>> (a + b) == a == MetricSums.merge_all([b, a, b])
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from fractions import Fraction
from math import sqrt
from typing import Any, NamedTuple

import numpy as np

from schemas.outcome import UNDERESTIMATE_MINUTES, Outcome
from schemas.prediction import Arm

_DEKKER_SPLIT = 134_217_729.0  # 2**27 + 1: splits a float64 into two 26-bit halves
_SQUARE_LIMIT = 2.0**500  # beyond this the exact-square split could overflow
_COUNTS = ("n", "n_underestimated", "p90_n", "p90_covered")


def _exact_sum(values: np.ndarray) -> Fraction:
    """The exact sum of float64 values, with no rounding at all."""
    values = values[values != 0]
    if values.size == 0:
        return Fraction(0)
    mantissa, exponent = np.frexp(values)  # value = mantissa * 2**exponent, 0.5 <= |m| < 1
    ints = (mantissa * 2.0**53).astype(np.int64)  # exact: a mantissa has at most 53 bits
    order = np.argsort(exponent, kind="stable")
    exponent, ints = exponent[order], ints[order]
    starts = np.flatnonzero(np.r_[True, exponent[1:] != exponent[:-1]])
    # Split each 53-bit integer so that per-exponent sums cannot overflow int64.
    high, low = ints >> 26, ints & ((1 << 26) - 1)
    high_sums, low_sums = np.add.reduceat(high, starts), np.add.reduceat(low, starts)
    lowest = int(exponent[0])
    numerator = 0
    for e, h, lo in zip(
        exponent[starts].tolist(), high_sums.tolist(), low_sums.tolist(), strict=True
    ):
        numerator += ((h << 26) + lo) << (e - lowest)
    scale = lowest - 53
    return Fraction(numerator << scale) if scale >= 0 else Fraction(numerator, 1 << -scale)


def _exact_sum_of_squares(values: np.ndarray) -> Fraction:
    """The exact sum of the squares (each square split into its float64 product and the
    product's rounding error, Dekker's TwoProduct)."""
    if values.size and float(np.max(np.abs(values))) > _SQUARE_LIMIT:
        return sum((Fraction(v) ** 2 for v in values.tolist()), Fraction(0))
    product = values * values
    c = _DEKKER_SPLIT * values
    high = c - (c - values)
    low = values - high
    error = ((high * high - product) + 2.0 * high * low) + low * low
    return _exact_sum(product) + _exact_sum(error)


def _ratio(numerator: Fraction, n: int) -> float | None:
    return float(numerator / n) if n else None


@dataclass(frozen=True)
class MetricSums:
    """Sufficient statistics of a set of outcomes, in minutes (squares in minutes²).

    ``error`` is predicted − actual as in :class:`schemas.outcome.Outcome`; an outcome is
    underestimated when actual − predicted > 5 minutes. ``p90_n`` counts the outcomes whose
    prediction carried a P90, ``p90_covered`` those of them whose actual delay was at most that
    P90 (:attr:`schemas.outcome.Outcome.within_p90`). Build with :meth:`from_arrays`,
    :meth:`from_outcomes` or :meth:`from_dict`; combine with ``+`` or :meth:`merge_all`.
    Derived metrics are ``None`` when undefined (no outcomes; R² also when the actual delays do
    not vary).
    """

    n: int
    sum_error: Fraction
    sum_abs_error: Fraction
    sum_sq_error: Fraction
    sum_actual: Fraction
    sum_actual_sq: Fraction
    n_underestimated: int
    p90_n: int = 0
    p90_covered: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _COUNTS:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{f.name} must be a non-negative int, got {value!r}")
            elif not isinstance(value, Fraction):
                # Floats and ints are exact rationals too; a frozen dataclass sets via object.
                object.__setattr__(self, f.name, Fraction(value))
        if self.n_underestimated > self.n:
            raise ValueError("n_underestimated cannot exceed n")
        if not self.p90_covered <= self.p90_n <= self.n:
            raise ValueError("need p90_covered <= p90_n <= n")

    @classmethod
    def zero(cls) -> MetricSums:
        """The sums of no outcomes: the neutral element of ``+``."""
        return cls(0, Fraction(0), Fraction(0), Fraction(0), Fraction(0), Fraction(0), 0)

    @classmethod
    def from_arrays(
        cls, errors: np.ndarray, actuals: np.ndarray, p90s: np.ndarray | None = None
    ) -> MetricSums:
        """Sums of outcomes given as ``errors`` (predicted − actual), ``actual`` delays and,
        optionally, their predicted ``p90s`` (NaN where an outcome has none).

        Raises ValueError on arrays of different shapes, on NaN or infinity in ``errors`` or
        ``actuals``, and on infinity in ``p90s``.
        """
        e = np.asarray(errors, dtype=np.float64).ravel()
        y = np.asarray(actuals, dtype=np.float64).ravel()
        if e.shape != y.shape:
            raise ValueError(f"{e.size} errors but {y.size} actuals")
        if not (np.isfinite(e).all() and np.isfinite(y).all()):
            raise ValueError("errors and actuals must be finite")
        p90_n = p90_covered = 0
        if p90s is not None:
            q = np.asarray(p90s, dtype=np.float64).ravel()
            if q.shape != y.shape:
                raise ValueError(f"{q.size} P90s but {y.size} actuals")
            if np.isinf(q).any():
                raise ValueError("a P90 must be finite (NaN stands for none)")
            p90_n = int(np.count_nonzero(~np.isnan(q)))
            # The comparison of Outcome.within_p90 and of the buckets' SQL; false against NaN.
            p90_covered = int(np.count_nonzero(y <= q))
        return cls(
            n=int(e.size),
            sum_error=_exact_sum(e),
            sum_abs_error=_exact_sum(np.abs(e)),
            sum_sq_error=_exact_sum_of_squares(e),
            sum_actual=_exact_sum(y),
            sum_actual_sq=_exact_sum_of_squares(y),
            # actual − predicted > 5  ⇔  −error > 5 (negation is exact in floating point)
            n_underestimated=int(np.count_nonzero(-e > UNDERESTIMATE_MINUTES)),
            p90_n=p90_n,
            p90_covered=p90_covered,
        )

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[Outcome]) -> MetricSums:
        rows = [_row(o) for o in outcomes]
        if not rows:
            return cls.zero()
        data = np.array(rows, dtype=np.float64)
        return cls.from_arrays(data[:, 0], data[:, 1], data[:, 2])

    def __add__(self, other: MetricSums) -> MetricSums:
        if not isinstance(other, MetricSums):
            return NotImplemented
        return MetricSums(
            n=self.n + other.n,
            sum_error=self.sum_error + other.sum_error,
            sum_abs_error=self.sum_abs_error + other.sum_abs_error,
            sum_sq_error=self.sum_sq_error + other.sum_sq_error,
            sum_actual=self.sum_actual + other.sum_actual,
            sum_actual_sq=self.sum_actual_sq + other.sum_actual_sq,
            n_underestimated=self.n_underestimated + other.n_underestimated,
            p90_n=self.p90_n + other.p90_n,
            p90_covered=self.p90_covered + other.p90_covered,
        )

    def merge(self, other: MetricSums) -> MetricSums:
        """The sums of both sets of outcomes (the same as ``self + other``)."""
        return self + other

    @staticmethod
    def merge_all(sums: Iterable[MetricSums]) -> MetricSums:
        total = MetricSums.zero()
        for s in sums:
            total = total + s
        return total

    @property
    def mae(self) -> float | None:
        return _ratio(self.sum_abs_error, self.n)

    @property
    def rmse(self) -> float | None:
        mse = _ratio(self.sum_sq_error, self.n)
        return None if mse is None else sqrt(mse)

    @property
    def bias(self) -> float | None:
        """Mean signed error (predicted − actual): negative when pickups are later than said."""
        return _ratio(self.sum_error, self.n)

    @property
    def underestimate_share(self) -> float | None:
        return self.n_underestimated / self.n if self.n else None

    @property
    def p90_coverage(self) -> float | None:
        """The share of outcomes with a P90 whose actual delay stayed within it; None when no
        outcome had a P90."""
        return self.p90_covered / self.p90_n if self.p90_n else None

    @property
    def r2(self) -> float | None:
        """1 − SSE / SST with SST = Σy² − (Σy)²/n; None when n < 2 or SST = 0."""
        if self.n < 2:
            return None
        sst = self.sum_actual_sq - self.sum_actual**2 / self.n
        if sst <= 0:
            return None
        return float(1 - self.sum_sq_error / sst)

    def summary(self) -> dict[str, float | int | None]:
        """The derived metrics, JSON-safe (for the API and the dashboard)."""
        return {
            "n": self.n,
            "mae": self.mae,
            "rmse": self.rmse,
            "r2": self.r2,
            "bias": self.bias,
            "underestimate_share": self.underestimate_share,
            "p90_n": self.p90_n,
            "p90_coverage": self.p90_coverage,
        }

    def to_dict(self) -> dict[str, int | str]:
        """Exact and JSON-safe: counts as ints, sums as ``"numerator/denominator"`` strings."""
        return {
            f.name: v if isinstance(v := getattr(self, f.name), int) else str(v)
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricSums:
        """Sums from :meth:`to_dict` (sums may also be given as numbers; the P90 counts may be
        missing, from a dict written before they existed)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = data.get(f.name, f.default) if f.name.startswith("p90_") else data[f.name]
            values[f.name] = int(raw) if f.name in _COUNTS else Fraction(raw)
        return cls(**values)


class Series(NamedTuple):
    """One line on a chart: an arm served by one model version."""

    arm: Arm
    model_version: str


class BucketKey(NamedTuple):
    arm: Arm
    model_version: str
    hour: datetime  # start of the UTC hour of observed_at

    @property
    def series(self) -> Series:
        return Series(self.arm, self.model_version)


def _row(o: Outcome) -> tuple[float, float, float]:
    """An outcome as (error, actual, P90 or NaN), the columns :meth:`MetricSums.from_arrays`
    takes."""
    p90 = o.predicted_p90_minutes
    return o.error, o.actual_delay_minutes, float("nan") if p90 is None else p90


def hour_start(at: datetime) -> datetime:
    """The start of the UTC hour containing an aware datetime, in UTC."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("need a timezone-aware datetime")
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def bucketize(outcomes: Iterable[Outcome]) -> dict[BucketKey, MetricSums]:
    """The sums of outcomes per (arm, model version, UTC hour of ``observed_at``).

    Outcomes with the same ``booking_id`` are counted once (the first); across calls, uniqueness
    is the caller's (the outcomes table's primary key).
    """
    seen: set[str] = set()
    groups: dict[BucketKey, list[tuple[float, float, float]]] = {}
    for o in outcomes:
        if o.booking_id in seen:
            continue
        seen.add(o.booking_id)
        key = BucketKey(o.arm, o.model_version, hour_start(o.observed_at))
        groups.setdefault(key, []).append(_row(o))
    out: dict[BucketKey, MetricSums] = {}
    for key, rows in groups.items():
        data = np.array(rows, dtype=np.float64)
        out[key] = MetricSums.from_arrays(data[:, 0], data[:, 1], data[:, 2])
    return out


def merge_buckets(
    into: Mapping[BucketKey, MetricSums], new: Mapping[BucketKey, MetricSums]
) -> dict[BucketKey, MetricSums]:
    """Bucket-wise sum of two bucket maps (e.g. the running state and a batch's buckets)."""
    out = dict(into)
    for key, sums in new.items():
        out[key] = out[key] + sums if key in out else sums
    return out


def _by_series(items: Iterator[tuple[BucketKey, MetricSums]]) -> dict[Series, MetricSums]:
    out: dict[Series, MetricSums] = {}
    for key, sums in items:
        out[key.series] = out[key.series] + sums if key.series in out else sums
    return out


def merge_window(
    buckets: Mapping[BucketKey, MetricSums], start: datetime, end: datetime
) -> dict[Series, MetricSums]:
    """Per series, the exact merge of the buckets whose hour lies in [start, end).

    Bounds are aware datetimes. Buckets are whole hours, selected by their start: with
    ``start`` at 10:30, the 10:00 bucket is left out whole; give hour-aligned bounds for
    windows of whole hours.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    lo, hi = start.astimezone(UTC), end.astimezone(UTC)
    return _by_series((k, s) for k, s in buckets.items() if lo <= k.hour < hi)


def daily(buckets: Mapping[BucketKey, MetricSums]) -> dict[date, dict[Series, MetricSums]]:
    """Per UTC day of event time, the sums of each series."""
    days: dict[date, list[tuple[BucketKey, MetricSums]]] = {}
    for key, sums in buckets.items():
        days.setdefault(key.hour.date(), []).append((key, sums))
    return {day: _by_series(iter(items)) for day, items in sorted(days.items())}


def by_arm(sums: Mapping[Series, MetricSums]) -> dict[Arm, MetricSums]:
    """Per arm, the merge over model versions (e.g. the two inputs of the A/B analysis)."""
    out: dict[Arm, MetricSums] = {}
    for series, s in sums.items():
        out[series.arm] = out[series.arm] + s if series.arm in out else s
    return out
