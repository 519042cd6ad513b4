"""Error drift (concept drift): each arm's absolute error rising above its usual level.

One river ``PageHinkley`` detector per arm, fed the outcomes' absolute errors in event-time
order, watching for increases only (``mode="up"``). Page–Hinkley accumulates
``|error| − mean − tolerance`` and alarms when the accumulated excess over its running minimum
exceeds ``threshold`` minutes; ``tolerance`` is the rise in mean absolute error, in minutes, that
is normal and must not alarm. River's forgetting factor is set to 1: with the default
(1 − 1e-4) the statistic of a stationary stream becomes a random walk that wanders past any
threshold within a day of traffic.

Why not ADWIN: ADWIN alarms on any change of the mean it can prove, and at 10 outcomes/s it can
prove the daily rhythm of errors (rush hours, rain): over a calibration day of the synthetic
world it raised 57 and 66 alarms on the two arms, where Page–Hinkley raised 1 and 1
(:mod:`streams.tools.drift_calibration.calibrate`). Page–Hinkley's tolerance states how large a rise
matters; the default, 2 minutes, is above the daily rhythm of either arm and below the rise of the
shifts it must catch.

``warmup`` outcomes are needed after the start and after every alarm (the detector restarts and
learns the new level) before the arm can alarm; ``cooldown`` is the event time after an alarm
during which the same arm does not alarm again. Absolute errors are clipped at
``clip_minutes`` so that a burst of incidents (a breakdown adds 5–20 minutes to one pickup) does
not read as a shift; a real shift moves most errors and survives the clip.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from river import drift

from models.drift.cooldown import Cooldown
from models.drift.page_hinkley import detector_data, restore_detector
from models.drift.persist import (
    dict_of,
    dump_state,
    encode_float,
    encode_floats,
    float_list,
    float_of,
    int_of,
    load_state,
    time_of,
)
from models.drift.signal import DriftSignal
from schemas.alert import AlertKind
from schemas.outcome import Outcome


@dataclass(frozen=True)
class ErrorDriftConfig:
    tolerance_minutes: float = 2.0
    threshold: float = 200.0
    warmup: int = 500
    clip_minutes: float = 10.0
    cooldown: timedelta = timedelta(minutes=30)
    recent: int = 100  # outcomes in the "recent MAE" shown as evidence

    def __post_init__(self) -> None:
        if self.tolerance_minutes < 0 or self.threshold <= 0 or self.clip_minutes <= 0:
            raise ValueError("tolerance must be >= 0, threshold and clip > 0")
        if self.warmup < 1 or self.recent < 1:
            raise ValueError("warmup and recent must be at least 1")


@dataclass
class _Arm:
    detector: drift.PageHinkley
    n: int = 0  # outcomes seen in total
    n_since_reset: int = 0
    sum_since_reset: float = 0.0
    recent: deque[float] = field(default_factory=deque)
    alarms: int = 0
    last_event_time: datetime | None = None


class ErrorDriftMonitor:
    """Page–Hinkley on each arm's absolute error (see the module docstring).

    >>> from datetime import UTC
    >>> monitor = ErrorDriftMonitor(ErrorDriftConfig(warmup=50, cooldown=timedelta(0)))
    >>> t0 = datetime(2026, 3, 12, 8, tzinfo=UTC)
    >>> times = [t0 + timedelta(seconds=i) for i in range(400)]
    >>> errors = np.r_[np.full(200, 1.0), np.full(200, 9.0)]
    >>> signals = monitor.update(["ml"] * 400, errors, times)
    >>> [(s.subject, s.event_time - t0) for s in signals]
    [('ml', datetime.timedelta(seconds=237))]
    """

    _NAME = "error_drift"

    def __init__(self, config: ErrorDriftConfig | None = None) -> None:
        self.config = config or ErrorDriftConfig()
        self._arms: dict[str, _Arm] = {}
        self._cooldown = Cooldown(self.config.cooldown)

    def _new_detector(self) -> drift.PageHinkley:
        c = self.config
        return drift.PageHinkley(
            min_instances=c.warmup,
            delta=c.tolerance_minutes,
            threshold=c.threshold,
            alpha=1.0,
            mode="up",
        )

    def update(
        self,
        arms: Sequence[str],
        abs_errors: np.ndarray | Sequence[float],
        event_times: Sequence[datetime],
    ) -> list[DriftSignal]:
        """Feed outcomes in event-time order: the arm, |predicted − actual| (minutes) and
        ``observed_at`` of each. Returns the alarms they raised."""
        errors = np.asarray(abs_errors, dtype=np.float64)
        if not len(arms) == len(errors) == len(event_times):
            raise ValueError("arms, abs_errors and event_times must have one entry per outcome")
        clipped = np.minimum(np.abs(errors), self.config.clip_minutes).tolist()
        signals: list[DriftSignal] = []
        for arm, value, at in zip(arms, clipped, event_times, strict=True):
            state = self._arms.get(arm)
            if state is None:
                recent: deque[float] = deque(maxlen=self.config.recent)
                state = self._arms[arm] = _Arm(self._new_detector(), recent=recent)
            signal = self._step(str(arm), state, value, at)
            if signal is not None:
                signals.append(signal)
        return signals

    def update_outcomes(self, outcomes: Sequence[Outcome]) -> list[DriftSignal]:
        """:meth:`update` with the arm, ``abs_error`` and ``observed_at`` of each outcome."""
        return self.update(
            [o.arm.value for o in outcomes],
            [o.abs_error for o in outcomes],
            [o.observed_at for o in outcomes],
        )

    def _step(self, arm: str, state: _Arm, value: float, at: datetime) -> DriftSignal | None:
        if state.detector.drift_detected:  # river restarts the detector on this update
            state.n_since_reset, state.sum_since_reset = 0, 0.0
        state.detector.update(value)
        state.n += 1
        state.n_since_reset += 1
        state.sum_since_reset += value
        state.recent.append(value)
        state.last_event_time = at
        if not state.detector.drift_detected:
            return None
        statistic = _excess(state.detector)
        if not self._cooldown.allow(arm, at):
            return None
        state.alarms += 1
        baseline = (state.sum_since_reset - sum(state.recent)) / max(
            state.n_since_reset - len(state.recent), 1
        )
        return DriftSignal(
            kind=AlertKind.ERROR_DRIFT,
            subject=arm,
            statistic=statistic,
            threshold=self.config.threshold,
            event_time=at,
            evidence={
                "recent_mae_minutes": float(np.mean(state.recent)),
                "baseline_mae_minutes": baseline,
                "tolerance_minutes": self.config.tolerance_minutes,
                "outcomes_since_restart": float(state.n_since_reset),
                "detector": "PageHinkley",
            },
        )

    def get(self) -> dict[str, Any]:
        """Per arm: outcomes seen, MAE of the recent ones and since the last restart of the
        detector, alarms raised and suppressed, and until when the arm is cooling down."""
        out: dict[str, Any] = {}
        for arm, s in sorted(self._arms.items()):
            quiet = self._cooldown.quiet_until(arm)
            out[arm] = {
                "outcomes": s.n,
                "outcomes_since_restart": s.n_since_reset,
                "mae_since_restart": s.sum_since_reset / s.n_since_reset
                if s.n_since_reset
                else None,
                "recent_mae": float(np.mean(s.recent)) if s.recent else None,
                "alarms": s.alarms,
                "suppressed": self._cooldown.suppressed.get(arm, 0),
                "cooling_down_until": None if quiet is None else quiet.isoformat(),
                "last_event_time": None
                if s.last_event_time is None
                else s.last_event_time.isoformat(),
            }
        return out

    def state(self) -> bytes:
        """The monitor's state as JSON (see :mod:`models.drift.persist`)."""
        arms = {
            arm: {
                "detector": detector_data(s.detector),
                "n": s.n,
                "n_since_reset": s.n_since_reset,
                "sum_since_reset": encode_float(s.sum_since_reset),
                "recent": encode_floats(s.recent),
                "alarms": s.alarms,
                "last_event_time": None
                if s.last_event_time is None
                else s.last_event_time.isoformat(),
            }
            for arm, s in self._arms.items()
        }
        data = {"arms": arms, "cooldown": self._cooldown.to_data()}
        return dump_state(self._NAME, asdict(self.config), data)

    def restore(self, state: bytes) -> None:
        """Continue from :meth:`state`; ValueError when it was saved with another configuration
        or is not a valid state (the monitor is then left as it was)."""
        data = load_state(self._NAME, asdict(self.config), state)
        saved = dict_of(data, "arms")
        arms = {str(arm): self._arm_from(saved[arm]) for arm in saved}
        self._cooldown = Cooldown.from_data(self.config.cooldown, dict_of(data, "cooldown"))
        self._arms = arms

    def _arm_from(self, data: Any) -> _Arm:
        recent = float_list(data, "recent")
        if len(recent) > self.config.recent:
            raise ValueError("saved recent errors exceed the configured window")
        return _Arm(
            detector=restore_detector(self._new_detector(), dict_of(data, "detector")),
            n=int_of(data, "n"),
            n_since_reset=int_of(data, "n_since_reset"),
            sum_since_reset=float_of(data, "sum_since_reset"),
            recent=deque(recent, maxlen=self.config.recent),
            alarms=int_of(data, "alarms"),
            last_event_time=time_of(data, "last_event_time"),
        )


def _excess(detector: drift.PageHinkley) -> float:
    """Page–Hinkley's accumulated excess at an alarm (river keeps it in private fields)."""
    total = getattr(detector, "_sum_increase", None)
    low = getattr(detector, "_min_increase", None)
    if isinstance(total, float) and isinstance(low, float):
        return total - low
    return float(detector.threshold)
