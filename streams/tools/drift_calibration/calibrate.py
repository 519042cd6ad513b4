"""Calibration of the drift monitors on the synthetic world: false alarms and detection delays.

``python -m streams.tools.drift_calibration.calibrate`` (about a minute; ``--day`` for another day)
prints, for the monitors' default configurations:

- False alarms over a stationary day: every outcome and every booking of a whole day at
  10 events/s (about 864,000 of each), by default a weekday with a rainstorm through the evening
  rush hour, the hardest day of the world's month for an error monitor. The bound is at most one
  alarm per monitored signal (an arm or a feature) in any 100,000 consecutive events. ADWIN on
  the same errors is shown for comparison.
- Detection of shifts injected while they are active: rush-hour delays +10 minutes (in the
  morning rush) and the weather effect doubled (in a rainy morning rush) for the error monitors
  of both arms; stretcher bookings going from 10 % to 30 %, and every booking arriving with a
  10-minute lead time (a producer that lost the creation time), for the feature and prediction
  monitors. Each shifted stream has an unshifted twin (same bookings, same noise): alarms of the
  twin after the shift would not be caused by it, and are reported.

How detection is measured. A shift applies to pickups (or bookings created) from its start. A
booking's actual is observed at its pickup, so the outcomes of a shift that makes pickups later
arrive late themselves: for a while, outcomes mostly stop arriving, then the shifted ones take
over. Reported per signal: the shifted events seen before the alarm (the bound: 3,000, i.e. five
minutes of events at 10/s), and the event time of the alarm after the first shifted event, after
the shifted events became the majority of arrivals, and after the shift's start.

The ML arm is a random forest, the heuristic arm the rules fitted on the same synthetic history
(:func:`models.training.train`) ending the day before; bookings are split 50/50 by the routing
hash.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from river import drift

from models.drift.errors import ErrorDriftConfig, ErrorDriftMonitor
from models.drift.features import FeatureDriftConfig, FeatureDriftMonitor
from models.drift.predictions import PredictionDriftConfig, PredictionDriftMonitor
from models.drift.signal import DriftSignal
from models.features import LOCAL_TZ
from models.forest import ForestConfig
from models.synthetic.truth import TruthShift
from streams.tools.drift_calibration.scenario import (
    BookingStream,
    OutcomeStream,
    TrainedModels,
    booking_stream,
    epoch_to_datetimes,
    local_time,
    outcome_stream,
    train_models,
)

BATCH = 500  # the hot path's batch size
WINDOW_EVENTS = 100_000  # false alarms are bounded per this many consecutive events
MAX_FALSE_ALARMS = 1
MAX_SHIFTED_EVENTS = 3_000  # five minutes of events at 10/s
ERROR_SIGNALS: tuple[str, ...] = ("error:ml", "error:heuristic")
PREDICTION_SIGNALS: tuple[str, ...] = ("prediction:ml", "prediction:heuristic")


@dataclass(frozen=True)
class Shift:
    """A shift from ``at_hour`` (local) in a stream from ``start_hour`` to ``end_hour`` of
    ``day`` (default: the calibration day)."""

    name: str
    start_hour: float
    at_hour: float
    end_hour: float
    truth: TruthShift | None = None  # a concept shift, for the error monitors
    stretcher_share: float | None = None  # covariate shifts, for the booking monitors
    lead_time_minutes: float | None = None
    watch: tuple[str, ...] = ERROR_SIGNALS
    day: date | None = None


DEFAULT_SHIFTS: tuple[Shift, ...] = (
    Shift("rush hour +10 min", 7.0, 7.5, 8.2, truth=TruthShift(rush_hour_extra_min=10.0)),
    Shift(
        "weather effect x2",
        7.5,
        8.0,
        8.65,
        truth=TruthShift(weather_factor=2.0),
        day=date(2026, 3, 17),  # a Tuesday with rain through the morning rush hour
    ),
    Shift(
        "stretchers 10 % -> 30 %",
        10.0,
        10.5,
        10.75,
        stretcher_share=0.3,
        watch=("feature:vehicle_stretcher", *PREDICTION_SIGNALS),
    ),
    Shift(
        "lead time lost (10 min for all)",
        12.0,
        12.5,
        12.75,
        lead_time_minutes=10.0,
        watch=("feature:lead_time_min", *PREDICTION_SIGNALS),
    ),
)


@dataclass(frozen=True)
class CalibrationConfig:
    seed: int = 11
    day: date = date(2026, 3, 12)  # a Thursday; rain from 13:00, heavy through the evening
    rate_per_s: float = 10.0
    stationary_start_hour: float = 0.0
    stationary_hours: float = 24.0
    train_days: int = 60
    train_bookings_per_day: float = 1000.0
    forest: ForestConfig = field(
        default_factory=lambda: ForestConfig(n_estimators=30, max_depth=12, random_state=0)
    )
    shifts: tuple[Shift, ...] = DEFAULT_SHIFTS
    errors: ErrorDriftConfig = field(default_factory=ErrorDriftConfig)
    features: FeatureDriftConfig = field(default_factory=FeatureDriftConfig)
    predictions: PredictionDriftConfig = field(default_factory=PredictionDriftConfig)
    compare_adwin: bool = True


def signal_key(signal: DriftSignal) -> str:
    """``error:ml``, ``feature:distance_km``, ``prediction:heuristic``…"""
    return f"{signal.kind.value.removesuffix('_drift')}:{signal.subject}"


def max_in_window(alarm_indexes: Sequence[int], width: int = WINDOW_EVENTS) -> int:
    """The most alarms within any ``width`` consecutive events (indexes of the alarms)."""
    ordered = np.sort(np.asarray(alarm_indexes, dtype=np.int64))
    if ordered.size == 0:
        return 0
    ends = np.searchsorted(ordered, ordered + width, side="left")
    return int(np.max(ends - np.arange(ordered.size)))


@dataclass(frozen=True)
class Detection:
    shifted_events_before: int | None  # shifted outcomes/bookings seen up to the alarm
    minutes_after_first_shifted: float | None
    minutes_after_majority: float | None  # after shifted events became most of the arrivals
    minutes_after_start: float | None


@dataclass(frozen=True)
class ShiftResult:
    shift: Shift
    start: datetime  # the shift applies to pickups (or bookings created) from then on
    first_shifted: datetime  # the event time of the first event it changed
    majority_shifted: datetime  # from then on most of the arriving events are shifted
    detections: dict[str, Detection]  # per watched signal
    alarms_before: int  # alarms (any signal) before the first shifted event
    twin_alarms_after: dict[str, int]  # alarms of the unshifted twin from first_shifted on
    largest_psi: dict[str, float]  # booking shifts: largest window PSI per signal, twin's too

    def detected_in_bound(self, key: str) -> bool:
        d = self.detections[key]
        return (
            d.shifted_events_before is not None
            and d.shifted_events_before <= MAX_SHIFTED_EVENTS
            and self.twin_alarms_after.get(key, 0) == 0
        )


@dataclass(frozen=True)
class CalibrationReport:
    config: CalibrationConfig
    training_rows: int
    stationary_outcomes: int
    stationary_bookings: int
    false_alarms: dict[str, int]  # per monitored signal, over the stationary streams
    max_false_alarms_per_window: dict[str, int]  # per signal, in any 100,000 events
    adwin_false_alarms: dict[str, int]
    max_feature_psi: dict[str, float]
    max_prediction_psi: dict[str, float]
    shifts: tuple[ShiftResult, ...]
    seconds: float

    def render(self) -> str:
        c = self.config
        e, f, p = c.errors, c.features, c.predictions
        trailing = (
            "them" if p.trailing_windows is None else f"the previous {p.trailing_windows} windows"
        )
        lines = [
            f"delaycast drift calibration — synthetic world seed {c.seed}, {c.day:%A %Y-%m-%d}, "
            f"{c.rate_per_s:g} events/s",
            f"models: forest ({c.forest.n_estimators} trees, depth {c.forest.max_depth}) and "
            f"fitted heuristic, trained on {self.training_rows:,} rows of {c.train_days} days",
            f"monitors: error PageHinkley(tolerance {e.tolerance_minutes:g} min, threshold "
            f"{e.threshold:g}, warm-up {e.warmup}, clip {e.clip_minutes:g} min); feature PSI > "
            f"{f.threshold:g} per {f.window} bookings; prediction PSI > {p.threshold:g} per "
            f"{p.window} predictions (bins from the first {p.reference_windows} windows, "
            f"against {trailing}); cooldown {e.cooldown}",
            "",
            f"stationary: {self.stationary_outcomes:,} outcomes and {self.stationary_bookings:,} "
            f"bookings, {c.stationary_hours:g} h from {c.stationary_start_hour:g} h local",
            f"  false alarms (total / most in any {WINDOW_EVENTS:,} events; bound "
            f"{MAX_FALSE_ALARMS}):",
        ]
        for group in ("error", "feature", "prediction"):
            keys = [k for k in self.false_alarms if k.startswith(group + ":")]
            counts = ", ".join(
                f"{k.split(':', 1)[1]} {self.false_alarms[k]}/{self.max_false_alarms_per_window[k]}"
                for k in keys
            )
            lines.append(f"    {group}: {counts}")
        if self.adwin_false_alarms:
            counts = ", ".join(f"{k} {v}" for k, v in self.adwin_false_alarms.items())
            lines.append(f"    for comparison, ADWIN(delta=0.002) on the same errors: {counts}")
        top = max(self.max_feature_psi.items(), key=lambda kv: kv[1])
        lines.append(f"  largest feature PSI of a window: {top[1]:.3f} ({top[0]})")
        lines.append(
            "  largest prediction PSI of a window: "
            + ", ".join(f"{k} {v:.3f}" for k, v in self.max_prediction_psi.items())
        )
        lines.append("")
        lines.append(
            "shifts — per signal: shifted events seen before the alarm (bound "
            f"{MAX_SHIFTED_EVENTS:,}); event-time minutes of the alarm after the first shifted "
            "event, after shifted events became the majority of arrivals, after the shift's start"
        )
        for r in self.shifts:
            lines.append(
                f"  {r.shift.name} from {r.start.astimezone(LOCAL_TZ):%a %H:%M} (first shifted "
                f"event {r.first_shifted.astimezone(LOCAL_TZ):%H:%M:%S}, shifted events the "
                f"majority from {r.majority_shifted.astimezone(LOCAL_TZ):%H:%M:%S}):"
            )
            for key, d in r.detections.items():
                if d.shifted_events_before is None:
                    lines.append(f"    {key}: not detected")
                    continue
                lines.append(
                    f"    {key}: {d.shifted_events_before:,} events; "
                    f"{d.minutes_after_first_shifted:.1f} min; "
                    f"{d.minutes_after_majority:.1f} min; {d.minutes_after_start:.1f} min"
                )
            if r.largest_psi:
                lines.append(
                    "    largest window PSI: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in r.largest_psi.items())
                )
            twin = sum(r.twin_alarms_after.values())
            lines.append(
                f"    alarms before the first shifted event: {r.alarms_before}; alarms of the "
                f"unshifted twin after it: {twin}"
            )
        lines.append(f"\n{self.seconds:.0f} s")
        return "\n".join(lines)


def _batches(n: int) -> list[slice]:
    return [slice(i, min(i + BATCH, n)) for i in range(0, n, BATCH)]


def run_outcomes(stream: OutcomeStream, config: ErrorDriftConfig) -> list[DriftSignal]:
    """The error monitor's alarms over an outcome stream, fed in batches like the live path."""
    monitor = ErrorDriftMonitor(config)
    arms = np.where(stream.arm_ml, "ml", "heuristic").tolist()
    errors, times = stream.abs_error, epoch_to_datetimes(stream.observed_s)
    signals: list[DriftSignal] = []
    for b in _batches(len(stream)):
        signals.extend(monitor.update(arms[b], errors[b], times[b]))
    return signals


def run_bookings(
    stream: BookingStream,
    models: TrainedModels,
    features: FeatureDriftConfig,
    predictions: PredictionDriftConfig,
) -> tuple[list[DriftSignal], dict[str, float], dict[str, float]]:
    """Both booking monitors' alarms, and the largest window PSI per feature and per arm."""
    feature_monitor = FeatureDriftMonitor(models.distributions, features)
    prediction_monitor = PredictionDriftMonitor(predictions)
    arms = np.where(stream.arm_ml, "ml", "heuristic").tolist()
    times = epoch_to_datetimes(stream.created_s)
    signals: list[DriftSignal] = []
    max_feature: dict[str, float] = {}
    max_prediction: dict[str, float] = {}
    for b in _batches(len(stream)):
        signals.extend(feature_monitor.update(stream.X[b], times[b]))
        signals.extend(prediction_monitor.update(arms[b], stream.predicted[b], times[b]))
        for name, s in feature_monitor.get()["features"].items():
            if s["last_psi"] is not None:
                max_feature[name] = max(max_feature.get(name, 0.0), s["last_psi"])
        for arm, s in prediction_monitor.get().items():
            if s["last_psi"] is not None:
                max_prediction[arm] = max(max_prediction.get(arm, 0.0), s["last_psi"])
    return signals, max_feature, max_prediction


def adwin_alarms(stream: OutcomeStream, clip_minutes: float) -> dict[str, int]:
    out: dict[str, int] = {}
    for arm, mask in (("ml", stream.arm_ml), ("heuristic", ~stream.arm_ml)):
        detector = drift.ADWIN(delta=0.002)
        alarms = 0
        for value in np.minimum(stream.abs_error[mask], clip_minutes).tolist():
            detector.update(value)
            alarms += detector.drift_detected
        out[arm] = alarms
    return out


def _shift_streams(
    config: CalibrationConfig, models: TrainedModels, shift: Shift, stream_seed: int
) -> tuple[
    list[DriftSignal], list[DriftSignal], np.ndarray, np.ndarray, list[str], dict[str, float]
]:
    """Signals of the shifted stream and its twin, the shifted stream's event times and which
    events the shift changed, the signals to watch, and (booking shifts) the largest PSIs."""
    day = shift.day or config.day
    start = local_time(day, shift.start_hour)
    at = local_time(day, shift.at_hour)
    duration = local_time(day, shift.end_hour) - start
    runs: list[list[DriftSignal]] = []
    times: np.ndarray = np.empty(0)
    changed: np.ndarray = np.empty(0, dtype=bool)
    if shift.truth is not None:
        for truth in (shift.truth, None):
            outcomes = outcome_stream(
                config.seed, models, start, duration, config.rate_per_s, stream_seed, truth, at
            )
            runs.append(run_outcomes(outcomes, config.errors))
            if truth is not None:
                times, changed = outcomes.observed_s, outcomes.shifted
        return runs[0], runs[1], times, changed, list(shift.watch), {}
    largest: dict[str, float] = {}
    for shifted in (True, False):
        bookings = booking_stream(
            config.seed,
            models,
            start,
            duration,
            config.rate_per_s,
            stream_seed,
            stretcher_share=shift.stretcher_share if shifted else None,
            shift_at=at,
            lead_time_minutes=shift.lead_time_minutes if shifted else None,
        )
        signals, by_feature, by_arm = run_bookings(
            bookings, models, config.features, config.predictions
        )
        runs.append(signals)
        suffix = "" if shifted else " (twin)"
        for key in shift.watch:
            group, name = key.split(":", 1)
            value = by_feature.get(name) if group == "feature" else by_arm.get(name)
            largest[key + suffix] = value or 0.0
        if shifted:
            times, changed = bookings.created_s, bookings.created_s >= at.timestamp()
    return runs[0], runs[1], times, changed, list(shift.watch), largest


def measure_shift(
    config: CalibrationConfig, models: TrainedModels, shift: Shift, stream_seed: int
) -> ShiftResult:
    """Run a shifted stream and its twin and measure the detection of the shift."""
    day = shift.day or config.day
    start = local_time(day, shift.at_hour)
    signals, twin, times, changed, watched, largest = _shift_streams(
        config, models, shift, stream_seed
    )
    first = epoch_to_datetimes(times[changed][:1])[0]
    majority = epoch_to_datetimes(times[_majority_index(changed)])[0]
    detections: dict[str, Detection] = {}
    for key in watched:
        after = [s for s in signals if signal_key(s) == key and s.event_time >= first]
        if not after:
            detections[key] = Detection(None, None, None, None)
            continue
        alarm = after[0].event_time
        seen = int(np.count_nonzero(changed & (times <= alarm.timestamp())))
        detections[key] = Detection(
            seen,
            (alarm - first).total_seconds() / 60,
            (alarm - majority).total_seconds() / 60,
            (alarm - start).total_seconds() / 60,
        )
    twin_after: dict[str, int] = {}
    for s in twin:
        if s.event_time >= first:
            twin_after[signal_key(s)] = twin_after.get(signal_key(s), 0) + 1
    return ShiftResult(
        shift=shift,
        start=start,
        first_shifted=first,
        majority_shifted=majority,
        detections=detections,
        alarms_before=sum(1 for s in signals if s.event_time < first),
        twin_alarms_after=twin_after,
        largest_psi=largest,
    )


def _majority_index(changed: np.ndarray, width: int = 500) -> np.ndarray:
    """The index (as a 1-element array) of the first event from which the last ``width``
    events are mostly shifted."""
    share = np.convolve(changed.astype(np.float64), np.ones(width) / width)[: len(changed)]
    return np.flatnonzero(share >= 0.5)[:1]


def _alarm_indexes(signals: Sequence[DriftSignal], times: np.ndarray) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for s in signals:
        index = int(np.searchsorted(times, s.event_time.timestamp(), side="right")) - 1
        out.setdefault(signal_key(s), []).append(index)
    return out


def run(config: CalibrationConfig | None = None) -> CalibrationReport:
    """Train, generate the streams, run the monitors and measure (see the module docstring)."""
    config = config or CalibrationConfig()
    started = time.perf_counter()
    models = train_models(
        config.seed,
        local_time(config.day, 0.0) - timedelta(days=1),
        config.train_days,
        config.train_bookings_per_day,
        config.forest,
    )
    start = local_time(config.day, config.stationary_start_hour)
    duration = timedelta(hours=config.stationary_hours)
    outcomes = outcome_stream(config.seed, models, start, duration, config.rate_per_s, 101)
    error_signals = run_outcomes(outcomes, config.errors)
    adwin = adwin_alarms(outcomes, config.errors.clip_minutes) if config.compare_adwin else {}
    bookings = booking_stream(config.seed, models, start, duration, config.rate_per_s, 102)
    booking_signals, max_feature, max_prediction = run_bookings(
        bookings, models, config.features, config.predictions
    )
    keys = [*ERROR_SIGNALS, *(f"feature:{f}" for f in config.features.features)]
    keys += PREDICTION_SIGNALS
    indexes = _alarm_indexes(error_signals, outcomes.observed_s)
    indexes.update(_alarm_indexes(booking_signals, bookings.created_s))
    return CalibrationReport(
        config=config,
        training_rows=models.training_rows,
        stationary_outcomes=len(outcomes),
        stationary_bookings=len(bookings),
        false_alarms={k: len(indexes.get(k, [])) for k in keys},
        max_false_alarms_per_window={k: max_in_window(indexes.get(k, [])) for k in keys},
        adwin_false_alarms={f"error:{k}": v for k, v in adwin.items()},
        max_feature_psi=max_feature,
        max_prediction_psi=max_prediction,
        shifts=tuple(
            measure_shift(config, models, shift, 200 + i) for i, shift in enumerate(config.shifts)
        ),
        seconds=time.perf_counter() - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.tools.drift_calibration.calibrate",
        description="Measure the drift monitors' false alarms and detection delays.",
    )
    parser.add_argument("--day", type=date.fromisoformat, default=CalibrationConfig.day)
    parser.add_argument("--hours", type=float, default=24.0, help="stationary hours (24)")
    parser.add_argument("--start-hour", type=float, default=0.0, help="local start hour (0)")
    args = parser.parse_args(argv)
    config = CalibrationConfig(
        day=args.day, stationary_hours=args.hours, stationary_start_hour=args.start_hour
    )
    print(run(config).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
