import json
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import numpy as np
import pytest

from models.distribution import describe_feature, describe_features
from models.drift.errors import ErrorDriftConfig, ErrorDriftMonitor
from models.drift.features import DEFAULT_FEATURES, FeatureDriftConfig, FeatureDriftMonitor
from models.drift.predictions import PredictionDriftMonitor
from models.drift.psi import Reference, bin_counts, psi
from models.drift.signal import DriftSignal
from models.features import FEATURE_INDEX, FEATURE_NAMES, feature_matrix
from models.synthetic import generate_history
from models.synthetic.truth import TruthShift, expected_delay, observed_delays
from schemas.alert import AlertKind
from streams.tools.drift_calibration.calibrate import CalibrationConfig, max_in_window, run

T0 = datetime(2026, 3, 12, 7, 0, tzinfo=UTC)


def times(n: int, start: datetime = T0, per_second: float = 10.0) -> list[datetime]:
    return [start + timedelta(seconds=i / per_second) for i in range(n)]


def bookings_matrix(rng: np.random.Generator, n: int, stretcher_share: float = 0.1) -> np.ndarray:
    """Feature rows whose monitored columns look like the synthetic world's."""
    X = np.zeros((n, len(FEATURE_NAMES)))
    c = FEATURE_INDEX
    X[:, c["distance_km"]] = rng.gamma(2.0, 2.5, n)
    X[:, c["pickup_center_km"]] = rng.gamma(2.0, 1.5, n)
    X[:, c["lead_time_min"]] = rng.choice([30.0, 300.0, 3000.0], n) * rng.uniform(0.5, 1.5, n)
    shares = np.array([0.9 - stretcher_share, 0.1, stretcher_share])
    vehicle = rng.choice(3, n, p=shares / shares.sum())
    X[np.arange(n), c["vehicle_standard"] + vehicle] = 1.0
    priority = rng.choice(4, n, p=[0.75, 0.1, 0.05, 0.1])  # 3: no priority given
    given = priority < 3
    X[np.flatnonzero(given), c["priority_routine"] + priority[given]] = 1.0
    return X


@pytest.fixture(scope="module")
def distributions():
    return describe_features(bookings_matrix(np.random.default_rng(0), 20_000), FEATURE_NAMES)


def test_binary_reference_separates_a_rare_level_that_decile_bins_merge():
    values = np.r_[np.zeros(900), np.ones(100)]
    d = describe_feature("vehicle_stretcher", values)
    assert len(Reference.from_distribution(d).fractions) == 3  # 0 and 1 share a decile bin
    ref = Reference.binary(d)
    assert ref.fractions.tolist() == pytest.approx([0.0, 0.9, 0.1, 0.0])
    assert psi(bin_counts(np.r_[np.zeros(700), np.ones(300)], ref), ref.fractions) > 0.25


def test_values_outside_the_training_range_fall_in_their_own_bins():
    always_zero = describe_feature("weather_is_default", np.zeros(1000))
    ref = Reference.binary(always_zero)
    assert psi(bin_counts(np.ones(50), ref), ref.fractions) > 10
    continuous = Reference.from_distribution(describe_feature("km", np.linspace(1, 20, 1000)))
    counts = bin_counts(np.array([0.5, 25.0, 10.0]), continuous)
    assert counts[0] == 1 and counts[-1] == 1  # below the minimum, above the maximum


def test_psi_of_a_sample_from_the_reference_is_small():
    rng = np.random.default_rng(1)
    ref = Reference.from_sample(rng.gamma(2.0, 3.0, 50_000))
    values = [psi(bin_counts(rng.gamma(2.0, 3.0, 1000), ref), ref.fractions) for _ in range(200)]
    assert max(values) < 0.06


def test_feature_drift_flags_the_changed_features_only(distributions):
    rng = np.random.default_rng(2)
    monitor = FeatureDriftMonitor(distributions)
    X = np.r_[bookings_matrix(rng, 5000), bookings_matrix(rng, 3000, stretcher_share=0.3)]
    signals = monitor.update(X, times(len(X)))
    # Stretchers take their share from standard vehicles: both columns moved, nothing else.
    assert [s.subject for s in signals] == ["vehicle_standard", "vehicle_stretcher"]
    signal = signals[1]
    assert signal.kind is AlertKind.FEATURE_DRIFT and signal.statistic > signal.threshold
    assert signal.event_time == times(len(X))[5999]  # the first window after the change
    assert signal.evidence["live_share"] == pytest.approx(0.3, abs=0.05)
    state = monitor.get()
    assert state["windows"] == 8 and state["features"]["distance_km"]["alarms"] == 0


def test_feature_windows_do_not_depend_on_batch_sizes(distributions):
    rng = np.random.default_rng(3)
    X = np.r_[bookings_matrix(rng, 4200), bookings_matrix(rng, 4100, stretcher_share=0.35)]
    at = times(len(X))
    config = FeatureDriftConfig(cooldown=timedelta(0))
    whole = FeatureDriftMonitor(distributions, config).update(X, at)
    batched = FeatureDriftMonitor(distributions, config)
    pieces: list[DriftSignal] = []
    for start in range(0, len(X), 137):
        pieces.extend(batched.update(X[start : start + 137], at[start : start + 137]))
    assert pieces == whole and len(whole) >= 3


def test_feature_monitor_needs_a_distribution_for_each_monitored_feature(distributions):
    partial = {k: v for k, v in distributions.items() if k != "distance_km"}
    with pytest.raises(ValueError, match="distance_km"):
        FeatureDriftMonitor(partial)
    assert "hour_local" not in DEFAULT_FEATURES and "weather_is_default" in DEFAULT_FEATURES


def error_stream(rng: np.random.Generator, n: int, shift_at: int, extra: float):
    arms = np.where(rng.random(n) < 0.5, "ml", "heuristic").tolist()
    errors = np.abs(rng.standard_t(4, n) * 1.5)
    errors[shift_at:] += extra
    return arms, errors, times(n)


def test_error_drift_alarms_each_arm_once_after_a_shift():
    rng = np.random.default_rng(4)
    arms, errors, at = error_stream(rng, 40_000, shift_at=30_000, extra=6.0)
    monitor = ErrorDriftMonitor()
    signals = monitor.update(arms, errors, at)
    assert sorted(s.subject for s in signals) == ["heuristic", "ml"]
    for s in signals:
        assert s.kind is AlertKind.ERROR_DRIFT
        assert at[30_000] <= s.event_time <= at[30_000] + timedelta(seconds=30)
        assert s.evidence["recent_mae_minutes"] > s.evidence["baseline_mae_minutes"] + 1
    assert monitor.get()["ml"]["alarms"] == 1


def test_error_drift_is_quiet_during_warm_up_and_cooldown():
    rng = np.random.default_rng(5)
    config = ErrorDriftConfig(warmup=2000, cooldown=timedelta(hours=1))
    monitor = ErrorDriftMonitor(config)
    # A level change inside the warm-up is learned, not alarmed.
    assert monitor.update(*error_stream(rng, 3000, shift_at=500, extra=6.0)) == []
    # Two shifts 20 minutes apart in event time: the second falls in the cooldown.
    n = 40_000
    errors = np.abs(rng.standard_t(4, n) * 1.5)
    errors[20_000:] += 6.0
    errors[32_000:] += 6.0
    at = times(n, start=T0 + timedelta(hours=1))
    signals = monitor.update(["ml"] * n, errors, at)
    assert len(signals) == 1 and monitor.get()["ml"]["suppressed"] >= 1


def run_in_two_parts(make, feed, data, cut: int):
    """Signals and final state of one uninterrupted run, and of a run restarted at ``cut``."""
    whole = make()
    expected = feed(whole, data, 0, None)
    first = make()
    signals = feed(first, data, 0, cut)
    saved = first.state()
    second = make()
    second.restore(saved)
    signals += feed(second, data, cut, None)
    return expected, signals, whole.get(), second.get()


def test_error_monitor_restored_from_its_state_continues_exactly():
    rng = np.random.default_rng(6)
    data = error_stream(rng, 30_000, shift_at=14_000, extra=5.0)

    def feed(monitor, d, a, b):
        return monitor.update(d[0][a:b], d[1][a:b], d[2][a:b])

    expected, got, state, restored = run_in_two_parts(ErrorDriftMonitor, feed, data, cut=14_050)
    assert [s.to_dict() for s in got] == [s.to_dict() for s in expected] and len(expected) == 2
    assert restored == state


def test_feature_monitor_restored_from_its_state_continues_exactly(distributions):
    rng = np.random.default_rng(7)
    X = np.r_[bookings_matrix(rng, 5500), bookings_matrix(rng, 4000, stretcher_share=0.4)]
    data = (X, times(len(X)))

    def feed(monitor, d, a, b):
        return monitor.update(d[0][a:b], d[1][a:b])

    def make():
        return FeatureDriftMonitor(distributions)

    expected, got, state, restored = run_in_two_parts(make, feed, data, cut=5_777)
    assert got == expected and len(expected) >= 1 and restored == state


def test_prediction_monitor_restored_from_its_state_continues_exactly():
    rng = np.random.default_rng(8)
    n = 20_000
    subjects = np.where(rng.random(n) < 0.5, "ml", "heuristic").tolist()
    predicted = rng.gamma(3.0, 2.0, n)
    predicted[12_000:] += 4.0
    data = (subjects, predicted, times(n))

    def feed(monitor, d, a, b):
        return monitor.update(d[0][a:b], d[1][a:b], d[2][a:b])

    expected, got, state, restored = run_in_two_parts(PredictionDriftMonitor, feed, data, 11_111)
    assert got == expected and sorted(s.subject for s in expected) == ["heuristic", "ml"]
    assert restored == state


def test_prediction_monitor_uses_a_supplied_reference_at_once():
    rng = np.random.default_rng(9)
    monitor = PredictionDriftMonitor(references={"ml": rng.gamma(3.0, 2.0, 10_000)})
    signals = monitor.update(["ml"] * 500, rng.gamma(3.0, 2.0, 500) + 5.0, times(500))
    assert len(signals) == 1 and monitor.get()["ml"]["reference_ready"]
    monitor.reset("ml")
    assert monitor.get() == {}


def test_a_state_saved_with_another_configuration_is_refused(distributions):
    saved = ErrorDriftMonitor().state()
    with pytest.raises(ValueError, match="configuration"):
        ErrorDriftMonitor(ErrorDriftConfig(threshold=50.0)).restore(saved)
    with pytest.raises(ValueError, match="monitor"):
        FeatureDriftMonitor(distributions).restore(saved)
    with pytest.raises(ValueError):
        PredictionDriftMonitor().restore(b"not a state")


def test_signals_serialize_to_json():
    signal = DriftSignal(AlertKind.FEATURE_DRIFT, "distance_km", 0.3, 0.1, T0, {"bin": "[1, 2)"})
    data = json.loads(json.dumps(signal.to_dict()))
    assert data["kind"] == "feature_drift" and data["event_time"] == T0.isoformat()


def test_a_truth_shift_adds_its_effect_and_the_neutral_shift_changes_nothing():
    end = datetime(2026, 3, 13, tzinfo=UTC)
    history = generate_history(end - timedelta(days=4), end, seed=11, bookings_per_day=400)
    X = feature_matrix([r.booking for r in history.rows], history.row_weather)
    base = expected_delay(X)
    assert np.array_equal(expected_delay(X, TruthShift()), base)
    day_effect = np.zeros(len(X))
    assert np.array_equal(
        observed_delays(X, day_effect, np.random.default_rng(1), TruthShift()),
        observed_delays(X, day_effect, np.random.default_rng(1)),
    )
    rush = X[:, FEATURE_INDEX["is_rush_hour"]]
    extra = expected_delay(X, TruthShift(rush_hour_extra_min=10.0)) - base
    assert np.allclose(extra, 10.0 * rush) and rush.sum() > 100
    doubled = expected_delay(X, TruthShift(weather_factor=2.0)) - base
    tripled = expected_delay(X, TruthShift(weather_factor=3.0)) - base
    raining = X[:, FEATURE_INDEX["precipitation_mm_h"]] > 0.5
    assert np.allclose(tripled, 2 * doubled) and raining.sum() > 10
    assert (doubled[raining] > 0.8).all()  # the weather effect itself, added once more


def test_max_in_window_counts_alarms_in_any_window():
    assert max_in_window([]) == 0
    assert max_in_window([10, 99_000, 150_000], width=100_000) == 2
    assert max_in_window([10, 100_010, 200_020], width=100_000) == 1


def test_calibration_bounds_hold_on_a_reduced_run():
    """The full calibration but for the stationary part: 100,000 outcomes and bookings
    (06:00–08:47, across the morning rush onset) instead of a whole day. At most one false
    alarm per signal, and each shift detected by its monitors within 3,000 shifted events
    (five minutes of events at 10/s), by the shift (the unshifted twin stays quiet)."""
    config = CalibrationConfig(
        stationary_start_hour=6.0, stationary_hours=100_000 / 36_000, compare_adwin=False
    )
    report = run(config)
    assert report.stationary_outcomes > 90_000 and report.stationary_bookings > 90_000
    assert max(report.false_alarms.values()) <= 1, report.render()
    for result in report.shifts:
        # The error monitors of both arms for the concept shifts; for the covariate shifts, the
        # feature monitor, and the prediction monitors when predictions jump (a lost lead time),
        # not when they move less than their daily rhythm (10 % -> 30 % stretchers).
        keys = result.shift.watch
        if result.shift.stretcher_share is not None:
            keys = keys[:1]
        for key in keys:
            assert result.detected_in_bound(key), report.render()
        assert result.alarms_before == 0 and not result.twin_alarms_after, report.render()


class _RunsCodeWhenUnpickled:
    ran: ClassVar[list[str]] = []

    def __reduce__(self):
        return (_RunsCodeWhenUnpickled.ran.append, ("unpickled",))


def test_an_old_pickled_state_is_refused_without_being_unpickled():
    import pickle

    forged = pickle.dumps(
        {"format": 1, "monitor": "error_drift", "payload": _RunsCodeWhenUnpickled()},
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    monitor = ErrorDriftMonitor()
    monitor.update(["ml"] * 3, [1.0, 2.0, 3.0], times(3))
    before = monitor.get()
    with pytest.raises(ValueError, match="pickled"):
        monitor.restore(forged)
    assert _RunsCodeWhenUnpickled.ran == [] and monitor.get() == before


def test_every_monitor_state_is_strict_json_data(distributions):
    rng = np.random.default_rng(12)
    errors = ErrorDriftMonitor()
    errors.update(*error_stream(rng, 800, shift_at=None, extra=0.0))
    features = FeatureDriftMonitor(distributions)
    features.update(bookings_matrix(rng, 1500), times(1500))
    predictions = PredictionDriftMonitor()
    predictions.update(["ml"] * 4000, rng.gamma(3.0, 2.0, 4000), times(4000))

    def strict(name: str) -> None:
        raise AssertionError(f"{name} in a saved state")

    for monitor in (errors, features, predictions):
        saved = json.loads(monitor.state(), parse_constant=strict)
        assert saved["format"] == 2 and isinstance(saved["data"], dict)
    fresh = ErrorDriftMonitor()
    fresh.update(["ml"], [4.0], times(1))
    detector = json.loads(fresh.state())["data"]["arms"]["ml"]["detector"]
    assert (detector["mean_n"], detector["mean"], detector["drift_detected"]) == (1.0, 4.0, False)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("arms", "ml", "n"), -1),
        (("arms", "ml", "n"), "12"),
        (("arms", "ml", "detector", "mean"), "__import__('os')"),
        (("arms", "ml", "detector", "params", "threshold"), 1.0),
        (("arms", "ml", "recent"), [1.0] * 101),
        (("arms", "ml", "last_event_time"), "2026-03-12T07:00:00"),
        (("cooldown", "suppressed", "ml"), True),
    ],
)
def test_a_tampered_state_is_refused_and_the_monitor_left_as_it_was(path, value):
    monitor = ErrorDriftMonitor()
    monitor.update(["ml"] * 200, np.full(200, 2.0), times(200))
    saved = json.loads(monitor.state())
    node = saved["data"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    fresh = ErrorDriftMonitor()
    fresh.update(["heuristic"], [1.0], times(1))
    before = fresh.get()
    with pytest.raises(ValueError):
        fresh.restore(json.dumps(saved).encode())
    assert fresh.get() == before


@pytest.mark.parametrize("cut", [1, 499, 500, 14_137, 14_138, 14_147, 29_999])
def test_error_monitor_restored_at_any_point_alarms_as_the_uninterrupted_one(cut):
    # Alarms at 14_137 (ml) and 14_146: a cut just after one saves a detector that restarts on
    # its next update.
    rng = np.random.default_rng(6)
    data = error_stream(rng, 30_000, shift_at=14_000, extra=5.0)

    def feed(monitor, d, a, b):
        return monitor.update(d[0][a:b], d[1][a:b], d[2][a:b])

    expected, got, state, restored = run_in_two_parts(ErrorDriftMonitor, feed, data, cut=cut)
    assert [s.to_dict() for s in got] == [s.to_dict() for s in expected] and len(expected) == 2
    assert restored == state


@pytest.mark.parametrize("cut", [7, 2_999, 6_001, 12_345])
def test_prediction_monitor_restored_while_learning_or_testing_continues_exactly(cut):
    rng = np.random.default_rng(8)
    n = 20_000
    subjects = np.where(rng.random(n) < 0.5, "ml", "heuristic").tolist()
    predicted = rng.gamma(3.0, 2.0, n)
    predicted[12_000:] += 4.0
    data = (subjects, predicted, times(n))

    def feed(monitor, d, a, b):
        return monitor.update(d[0][a:b], d[1][a:b], d[2][a:b])

    expected, got, state, restored = run_in_two_parts(PredictionDriftMonitor, feed, data, cut)
    assert [s.to_dict() for s in got] == [s.to_dict() for s in expected]
    assert sorted(s.subject for s in expected) == ["heuristic", "ml"] and restored == state
