"""Threshold alerts over sliding windows of events: pure, event-timed, with a cooldown.

- ``mae_threshold``: an arm's MAE over its last ``window`` outcomes is above ``mae_minutes``.
- ``ml_error_rate``: among the last ``window`` bookings assigned to ML, the share the model failed
  on (fallback_reason ``model_error``) is above ``ml_error_rate`` (20 % by default).
- ``fallback_storm``: among the same bookings, the share served by the heuristic for any reason is
  above ``storm_share``.
- ``interval_coverage``: among an arm's last ``coverage_window`` outcomes whose prediction
  carried a P90, the share whose actual delay stayed within it is outside ``[coverage_low,
  coverage_high]``: below, the P90s are too low to trust; above, they are wider than they need
  to be. Outcomes without a P90 neither count nor move the window. The window is its own
  (1,000 by default) because a share of ones and zeros is noisy: at a true coverage of 0.90,
  the share of 200 outcomes wanders by ±0.064 (3 standard deviations), past a ±0.05 band, and a
  window checked at every outcome crosses it by chance (:func:`coverage_window_warning`).

An alert fires when its condition becomes true and re-arms only once the condition has cleared,
so a lasting breach raises one alert, not one per event (outcomes arrive out of event-time order,
so an event-time cooldown alone could not stop repeats). Its id is a hash of kind, subject and
the event time it fired at, so a redelivered alert is stored once.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from schemas import Alert, AlertKind, Arm, FallbackReason, Outcome, Prediction, Severity

COVERAGE_TARGET = 0.9  # the P90's promise
# Standard deviations of a window's share that must fit in the band. The window is checked at
# every outcome, so one check's 3 would not do: simulated at a true 0.90 in a ±0.05 band,
# windows of 324 (3 sd) crossed it 13-39 times per 100,000 outcomes, and 729 (4.5 sd) never
# in 500,000.
COVERAGE_WINDOW_SD = 4.5


def min_coverage_window(low: float, high: float, target: float = COVERAGE_TARGET) -> int | None:
    """The fewest outcomes whose share within the P90 stays inside ``[low, high]`` with
    COVERAGE_WINDOW_SD standard deviations to spare when the coverage is ``target``; None when
    the band does not hold the target at all.

    >>> min_coverage_window(0.85, 0.95), min_coverage_window(0.8, 1), min_coverage_window(0.91, 1)
    (729, 183, None)
    """
    margin = min(target - low, high - target)
    if margin <= 0:
        return None
    return math.ceil(COVERAGE_WINDOW_SD**2 * target * (1.0 - target) / margin**2 - 1e-9)


def coverage_window_warning(window: int, low: float, high: float) -> str | None:
    """Why a coverage window is too small for its band (false alerts to expect), or None."""
    needed = min_coverage_window(low, high)
    if needed is None:
        return (
            f"the P90 coverage band [{low:g}, {high:g}] does not contain {COVERAGE_TARGET:g}: "
            "a well-calibrated P90 will raise interval_coverage alerts"
        )
    if window >= needed:
        return None
    spread = 3.0 * math.sqrt(COVERAGE_TARGET * (1.0 - COVERAGE_TARGET) / window)
    return (
        f"COVERAGE_ALERT_WINDOW={window} is small for the band [{low:g}, {high:g}]: at a true "
        f"coverage of {COVERAGE_TARGET:g}, the share of {window} outcomes wanders by "
        f"±{spread:.3f} (3 standard deviations); expect false interval_coverage alerts, or use "
        f"at least {needed}"
    )


def alert_id(kind: AlertKind, subject: str, event_time: datetime) -> str:
    raw = f"{kind.value}|{subject}|{event_time.isoformat()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


@dataclass
class _Window:
    size: int
    values: deque[float] = field(default_factory=deque)
    total: float = 0.0

    def push(self, value: float) -> None:
        self.values.append(value)
        self.total += value
        if len(self.values) > self.size:
            self.total -= self.values.popleft()

    @property
    def full(self) -> bool:
        return len(self.values) >= self.size

    @property
    def mean(self) -> float:
        return self.total / len(self.values) if self.values else 0.0


class ThresholdRules:
    def __init__(
        self,
        *,
        window: int,
        mae_minutes: float,
        ml_error_rate: float,
        storm_share: float,
        cooldown_s: float = 900.0,
        coverage_low: float = 0.85,
        coverage_high: float = 0.95,
        coverage_window: int | None = None,
    ) -> None:
        """``coverage_window`` is the window of ``interval_coverage`` (``window`` if not
        given)."""
        if not 0.0 <= coverage_low < coverage_high <= 1.0:
            raise ValueError(
                "the P90 coverage band needs 0 <= COVERAGE_ALERT_LOW < COVERAGE_ALERT_HIGH <= 1, "
                f"got {coverage_low:g} and {coverage_high:g}"
            )
        self.window = window
        self.mae_minutes = mae_minutes
        self.ml_error_rate = ml_error_rate
        self.storm_share = storm_share
        self.cooldown_s = cooldown_s
        self.coverage_low = coverage_low
        self.coverage_high = coverage_high
        self.coverage_window = coverage_window or window
        self._breached: set[tuple[AlertKind, str]] = set()
        self._abs_errors = {arm: _Window(window) for arm in Arm}
        # 1.0 within, 0.0 beyond
        self._within_p90 = {arm: _Window(self.coverage_window) for arm in Arm}
        self._model_errors = _Window(window)
        self._fallbacks = _Window(window)
        self._last_fired: dict[tuple[AlertKind, str], float] = {}

    def on_outcomes(self, outcomes: Sequence[Outcome], now: datetime) -> list[Alert]:
        alerts: list[Alert] = []
        for o in outcomes:
            w = self._abs_errors[o.arm]
            w.push(o.abs_error)
            if w.full and not self._holds(
                AlertKind.MAE_THRESHOLD, o.arm.value, w.mean > self.mae_minutes
            ):
                alerts += self._fire(
                    AlertKind.MAE_THRESHOLD,
                    Severity.WARNING,
                    o.arm.value,
                    f"MAE of the {o.arm.value} arm over its last {self.window} outcomes is "
                    f"{w.mean:.2f} min, above {self.mae_minutes:g} min",
                    {"mae": round(w.mean, 4), "threshold": self.mae_minutes, "window": self.window},
                    o.observed_at,
                    now,
                )
            alerts += self._watch_coverage(o, now)
        return alerts

    def _watch_coverage(self, o: Outcome, now: datetime) -> list[Alert]:
        within = o.within_p90
        if within is None:
            return []
        w = self._within_p90[o.arm]
        w.push(float(within))
        coverage = w.mean
        low, high = self.coverage_low, self.coverage_high
        if not w.full or self._holds(
            AlertKind.INTERVAL_COVERAGE, o.arm.value, not low <= coverage <= high
        ):
            return []
        covered = round(w.total)  # a sum of ones and zeros: exact
        side, meaning = (
            ("below", "its P90s are too low to trust")
            if coverage < low
            else ("above", "its P90s are wider than they need to be")
        )
        return self._fire(
            AlertKind.INTERVAL_COVERAGE,
            Severity.WARNING,
            o.arm.value,
            f"P90 coverage of the {o.arm.value} arm over its last {self.coverage_window} "
            "outcomes with a "
            f"P90 is {coverage:.3f} ({covered} within), {side} the band "
            f"[{low:g}, {high:g}]: {meaning}",
            {
                "n": self.coverage_window,
                "covered": covered,
                "coverage": round(coverage, 4),
                "band_low": low,
                "band_high": high,
            },
            o.observed_at,
            now,
        )

    def on_predictions(self, predictions: Sequence[Prediction], now: datetime) -> list[Alert]:
        alerts: list[Alert] = []
        for p in predictions:
            if p.arm is not Arm.ML or p.replay:
                continue
            self._model_errors.push(float(p.fallback_reason is FallbackReason.MODEL_ERROR))
            self._fallbacks.push(float(p.fallback_reason is not None))
            rate = self._model_errors.mean
            if self._model_errors.full and not self._holds(
                AlertKind.ML_ERROR_RATE, p.model_version, rate > self.ml_error_rate
            ):
                alerts += self._fire(
                    AlertKind.ML_ERROR_RATE,
                    Severity.CRITICAL,
                    p.model_version,
                    f"the model failed on {self._model_errors.mean:.0%} of the last "
                    f"{self.window} ML bookings (threshold {self.ml_error_rate:.0%}); "
                    "they were served by the heuristic",
                    {"rate": round(self._model_errors.mean, 4), "threshold": self.ml_error_rate},
                    p.predicted_at,
                    now,
                )
            share = self._fallbacks.mean
            if self._fallbacks.full and not self._holds(
                AlertKind.FALLBACK_STORM, "ml", share > self.storm_share
            ):
                alerts += self._fire(
                    AlertKind.FALLBACK_STORM,
                    Severity.CRITICAL,
                    "ml",
                    f"{self._fallbacks.mean:.0%} of the last {self.window} ML bookings fell back "
                    f"to the heuristic (last reason: {p.fallback_reason})",
                    {
                        "share": round(self._fallbacks.mean, 4),
                        "threshold": self.storm_share,
                        "reason": str(p.fallback_reason),
                    },
                    p.predicted_at,
                    now,
                )
        return alerts

    def _holds(self, kind: AlertKind, subject: str, breached: bool) -> bool:
        """False exactly when a breach starts (fire now); True while it lasts or when clear."""
        key = (kind, subject)
        if not breached:
            self._breached.discard(key)
            return True
        if key in self._breached:
            return True
        self._breached.add(key)
        return False

    def _fire(
        self,
        kind: AlertKind,
        severity: Severity,
        subject: str,
        message: str,
        evidence: dict[str, float | str],
        event_time: datetime,
        now: datetime,
    ) -> list[Alert]:
        t = event_time.timestamp()
        last = self._last_fired.get((kind, subject))
        if last is not None and t - last < self.cooldown_s:
            return []
        self._last_fired[(kind, subject)] = t
        return [
            Alert(
                alert_id=alert_id(kind, subject, event_time),
                kind=kind,
                severity=severity,
                subject=subject,
                message=message,
                evidence=evidence,
                event_time=event_time,
                raised_at=now,
            )
        ]
