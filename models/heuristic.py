"""The heuristic: a few transparent rules a dispatcher can check by hand.

    delay = base[vehicle type]
          + hour_profile_min[day kind, local hour]    learned from history (see below)
          + per_km_min      × distance_km
          + per_mm_h_min    × min(precipitation_mm_h, PRECIPITATION_CAP_MM_H)
          + short_lead_min                         if booked less than SHORT_LEAD_MINUTES ahead
          + fog_min                                if visibility below FOG_VISIBILITY_M

Every coefficient is in minutes (per km, per mm/h of rain, or flat). The hour profile holds 48
values: the 24 local hours of a weekday, then the 24 of a weekend day, so rush hours, quiet
nights and the weekend are whatever the service area's history shows, not hours fixed in code.
:data:`DEFAULT_PARAMS` are rules of thumb used when no trained artifact exists (version
``heuristic-default``; its profile adds 5 min in weekday rush hours, 07–09 and 16–19, and takes
1.5 min off on weekends). :func:`fit_heuristic` fits the same rules to history by least
absolute deviations (the rules predict the median delay, not the mean), so the fitted heuristic
is the fair baseline the ML model must beat. Delays have a heavy right tail (an incident, a
breakdown): a least-squares fit chases those outliers and can lose to predicting the median for
everyone, which the median fit cannot do on the rows it was fitted on, since a constant is one
of the rules it may choose.

The heuristic's confidence is the same for every booking: the residual standard deviation of its
fit turned into [0, 1] by :func:`models.confidence.confidence_from_spread`.

>>> import numpy as np
>>> from models.features import FEATURE_INDEX, FEATURE_NAMES
>>> x = np.zeros((1, len(FEATURE_NAMES)))
>>> x[0, FEATURE_INDEX["vehicle_stretcher"]] = 1
>>> x[0, FEATURE_INDEX["distance_km"]] = 10
>>> x[0, FEATURE_INDEX["visibility_m"]] = 10_000
>>> x[0, FEATURE_INDEX["lead_time_min"]] = 24 * 60
>>> delays, confidences = predict(DEFAULT_PARAMS, x)
>>> float(delays[0]), round(float(confidences[0]), 3), DEFAULT_PARAMS.version
(11.5, 0.385, 'heuristic-default')
>>> x[0, FEATURE_INDEX["hour_local"]] = 8.25  # a weekday's morning rush
>>> float(predict(DEFAULT_PARAMS, x)[0][0])
16.5
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from models.confidence import confidence_from_spread
from models.features import FEATURE_INDEX

SHORT_LEAD_MINUTES = 60.0
FOG_VISIBILITY_M = 1000.0
# Beyond this rate more rain hardly slows traffic further; the cap keeps a cloudburst from
# producing absurd linear predictions.
PRECIPITATION_CAP_MM_H = 10.0
# A rule term (or an hour of the profile) seen on fewer training rows than this keeps its
# default: least squares cannot estimate what the history does not show (e.g. no fog, or no
# weather at all, or no bookings at 3 am).
MIN_ROWS_PER_TERM = 30
PROFILE_HOURS = 48  # weekday hours 0-23, then weekend hours 0-23
_DEFAULT_RUSH = ((7, 9), (16, 19))  # the defaults' weekday rush hours, [start, end)


def _default_profile(rush_min: float = 5.0, weekend_min: float = -1.5) -> tuple[float, ...]:
    weekday = [rush_min if any(a <= h < b for a, b in _DEFAULT_RUSH) else 0.0 for h in range(24)]
    return tuple(weekday + [weekend_min] * 24)


@dataclass(frozen=True)
class HeuristicParams:
    """Coefficients of the rules, in minutes; ``residual_std_min`` sets the confidence."""

    base_standard_min: float = 4.0
    base_wheelchair_min: float = 6.0
    base_stretcher_min: float = 9.0
    per_km_min: float = 0.25
    per_mm_h_min: float = 1.5
    short_lead_min: float = 3.0
    fog_min: float = 3.0
    residual_std_min: float = 8.0
    hour_profile_min: tuple[float, ...] = _default_profile()

    def __post_init__(self) -> None:
        for name in (*TERMS, "residual_std_min"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"heuristic parameter {name} is not finite")
        if self.residual_std_min < 0:
            raise ValueError("residual_std_min must be >= 0")
        profile = tuple(float(v) for v in self.hour_profile_min)
        if len(profile) != PROFILE_HOURS or not all(math.isfinite(v) for v in profile):
            raise ValueError(f"hour_profile_min must hold {PROFILE_HOURS} finite minutes")
        object.__setattr__(self, "hour_profile_min", profile)  # a tuple of floats, always

    @property
    def coefficients(self) -> np.ndarray:
        """The rule coefficients in :data:`TERMS` order."""
        return np.array([getattr(self, name) for name in TERMS], dtype=np.float64)

    @cached_property
    def version(self) -> str:
        """``heuristic-default`` for the defaults, else ``heuristic-<sha8 of the values>``.

        Computed once per parameter set (it hashes them): every prediction carries it.
        """
        if self == DEFAULT_PARAMS:
            return "heuristic-default"
        return _hashed(self.values())

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: float(v) for k, v in asdict(self).items() if k in _SCALARS}
        out["hour_profile_min"] = list(self.hour_profile_min)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, **self.values()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeuristicParams:
        """Parameters from :meth:`to_dict`; a ``version`` that does not match the values (an
        edited or damaged file) is refused with ValueError, as are missing or unknown keys.

        Files written before the hour profile (a weekday ``rush_hour_min`` and a
        ``weekend_min`` instead) are read too, checked against their own version, and turned
        into the profile those two values meant.
        """
        given = {k: v for k, v in data.items() if k != "version"}
        if set(given) == _LEGACY_NAMES:
            return cls._from_legacy(data, given)
        names = {f.name for f in fields(cls)}
        if set(given) != names:
            raise ValueError(
                f"heuristic parameters: missing {sorted(names - set(given))}, "
                f"unknown {sorted(set(given) - names)}"
            )
        profile = given.pop("hour_profile_min")
        if not isinstance(profile, list) or not all(_is_number(v) for v in profile):
            raise ValueError("hour_profile_min must be a list of numbers")
        if not all(_is_number(v) for v in given.values()):
            raise ValueError("heuristic parameters must be numbers")
        params = cls(
            **{k: float(v) for k, v in given.items()},
            hour_profile_min=tuple(float(v) for v in profile),
        )
        if "version" in data and data["version"] != params.version:
            raise ValueError(f"version {data['version']!r} does not match the values")
        return params

    @classmethod
    def _from_legacy(cls, data: dict[str, Any], given: dict[str, Any]) -> HeuristicParams:
        if not all(_is_number(v) for v in given.values()):
            raise ValueError("heuristic parameters must be numbers")
        values = {k: float(v) for k, v in given.items()}
        legacy_default = values == _LEGACY_DEFAULTS
        version = "heuristic-default" if legacy_default else _hashed(values)
        if "version" in data and data["version"] != version:
            raise ValueError(f"version {data['version']!r} does not match the values")
        rush, weekend = values.pop("rush_hour_min"), values.pop("weekend_min")
        params = cls(**values, hour_profile_min=_default_profile(rush, weekend))
        # The same rules keep the version their predictions and metrics were filed under.
        object.__setattr__(params, "version", version)
        return params


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _hashed(values: dict[str, Any]) -> str:
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return "heuristic-" + hashlib.sha256(canonical.encode()).hexdigest()[:8]


# Names of the scalar coefficients, in the column order of rule_terms().
TERMS: tuple[str, ...] = (
    "base_standard_min",
    "base_wheelchair_min",
    "base_stretcher_min",
    "per_km_min",
    "per_mm_h_min",
    "short_lead_min",
    "fog_min",
)
_SCALARS = (*TERMS, "residual_std_min")
_LEGACY_NAMES = {*_SCALARS, "rush_hour_min", "weekend_min"}
_LEGACY_DEFAULTS = {
    **{
        k: float(v)
        for k, v in zip(_SCALARS, (4.0, 6.0, 9.0, 0.25, 1.5, 3.0, 3.0, 8.0), strict=True)
    },
    "rush_hour_min": 5.0,
    "weekend_min": -1.5,
}

DEFAULT_PARAMS = HeuristicParams()


def rule_terms(X: np.ndarray) -> np.ndarray:
    """The design matrix of the scalar rules: one column per coefficient in :data:`TERMS` order."""
    col = FEATURE_INDEX
    return np.column_stack(
        [
            X[:, col["vehicle_standard"]],
            X[:, col["vehicle_wheelchair"]],
            X[:, col["vehicle_stretcher"]],
            X[:, col["distance_km"]],
            np.minimum(X[:, col["precipitation_mm_h"]], PRECIPITATION_CAP_MM_H),
            (X[:, col["lead_time_min"]] < SHORT_LEAD_MINUTES).astype(np.float64),
            (X[:, col["visibility_m"]] < FOG_VISIBILITY_M).astype(np.float64),
        ]
    )


def profile_cells(X: np.ndarray) -> np.ndarray:
    """Each row's index in the hour profile: its local hour, plus 24 on a weekend day."""
    col = FEATURE_INDEX
    hour = np.clip(np.floor(X[:, col["hour_local"]]), 0, 23).astype(np.intp)
    return hour + 24 * (X[:, col["is_weekend"]] > 0).astype(np.intp)


def predict(params: HeuristicParams, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted delays (minutes) and confidences for a feature matrix, one per row."""
    profile = np.asarray(params.hour_profile_min, dtype=np.float64)
    delays = rule_terms(X) @ params.coefficients + profile[profile_cells(X)]
    spread = np.full(len(delays), params.residual_std_min)
    return delays, confidence_from_spread(spread)


def fit_heuristic(
    X: np.ndarray, y: np.ndarray, defaults: HeuristicParams = DEFAULT_PARAMS
) -> HeuristicParams:
    """Least-absolute-deviation coefficients and hour profile of the rules on history ``X``
    (features) and ``y`` (minutes).

    Terms and profile hours seen on fewer than MIN_ROWS_PER_TERM rows keep their value from
    ``defaults``. The profile is fitted relative to its busiest hour (which stays 0: the bases
    absorb its level), so each value reads as minutes more or less than at that hour.
    ``residual_std_min`` is the root mean square of the fitted residuals.
    """
    y = np.asarray(y, dtype=np.float64)
    if X.shape[0] != y.shape[0] or y.shape[0] == 0:
        raise ValueError(f"need matching non-empty X and y, got {X.shape[0]} and {y.shape[0]}")
    cells = profile_cells(X)
    hours = np.zeros((len(y), PROFILE_HOURS))
    hours[np.arange(len(y)), cells] = 1.0
    terms = np.hstack([rule_terms(X), hours])
    coefficients = np.concatenate([defaults.coefficients, defaults.hour_profile_min])
    counts = np.count_nonzero(terms, axis=0)
    seen = counts >= MIN_ROWS_PER_TERM
    busiest = len(TERMS) + int(np.argmax(counts[len(TERMS) :]))
    if seen[busiest]:
        seen[busiest] = False  # the reference hour: its level is in the bases
        coefficients[busiest] = 0.0
    target = y - terms[:, ~seen] @ coefficients[~seen]
    if seen.any():
        coefficients[seen] = least_absolute_deviations(terms[:, seen], target)
    residuals = y - terms @ coefficients
    dof = max(len(y) - int(seen.sum()), 1)
    residual_std = float(np.sqrt(np.sum(residuals**2) / dof))
    fitted = dict(zip(TERMS, coefficients[: len(TERMS)].tolist(), strict=True))
    return HeuristicParams(
        **fitted,
        residual_std_min=residual_std,
        hour_profile_min=tuple(coefficients[len(TERMS) :].tolist()),
    )


def constant_params(median_min: float, residual_std_min: float) -> HeuristicParams:
    """The rules reduced to one constant: every base delay ``median_min``, every other term and
    every hour of the profile 0.

    Training falls back to it when the fitted rules lose to the constant on the holdout.
    """
    zero = dict.fromkeys(TERMS, 0.0)
    bases = dict.fromkeys(("base_standard_min", "base_wheelchair_min", "base_stretcher_min"))
    return HeuristicParams(
        **{**zero, **dict.fromkeys(bases, float(median_min))},
        residual_std_min=float(residual_std_min),
        hour_profile_min=(0.0,) * PROFILE_HOURS,
    )


def least_absolute_deviations(
    A: np.ndarray, b: np.ndarray, iterations: int = 100, tolerance: float = 1e-9
) -> np.ndarray:
    """``x`` minimising ``sum |b - A x|``, by iteratively reweighted least squares.

    Each round solves a least-squares problem whose row weights are ``1 / |residual|`` of the
    previous round (floored, so that rows already fitted exactly do not dominate). Starts from
    the least-squares solution; stops when the sum of absolute residuals improves by less than
    ``tolerance`` relative, and returns the best solution seen.

    >>> A = np.ones((5, 1))
    >>> round(float(least_absolute_deviations(A, np.array([1.0, 2.0, 3.0, 4.0, 100.0]))[0]), 3)
    3.0
    """
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    x, *_ = np.linalg.lstsq(A, b, rcond=None)
    best, best_loss = x, float(np.sum(np.abs(b - A @ x)))
    floor = max(1e-6, 1e-6 * float(np.median(np.abs(b))))
    for _ in range(iterations):
        weights = 1.0 / np.sqrt(np.maximum(np.abs(b - A @ x), floor))
        x, *_ = np.linalg.lstsq(A * weights[:, None], b * weights, rcond=None)
        loss = float(np.sum(np.abs(b - A @ x)))
        if loss < best_loss:
            improved = best_loss - loss
            best, best_loss = x, loss
            if improved <= tolerance * best_loss:
                break
        elif loss > best_loss * (1 + 1e-12):
            break
    return best
