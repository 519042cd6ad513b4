import numpy as np
import pytest

from models.alert_rules import ThresholdRules, coverage_window_warning
from schemas import AlertKind, Arm, FallbackReason
from tests import factories
from tests.factories import T0, seconds_after_t0


def outcome(i, abs_error, arm=Arm.ML):
    return factories.outcome(f"B{i}", abs_error, arm=arm, at=seconds_after_t0(i))


def prediction(i, reason=None, arm=Arm.ML):
    return factories.prediction(
        f"B{i}",
        at=seconds_after_t0(i),
        arm=arm,
        served_by=Arm.HEURISTIC if reason else arm,
        fallback_reason=reason,
    )


def rules(**kw):
    return ThresholdRules(window=100, mae_minutes=3.0, ml_error_rate=0.2, storm_share=0.5, **kw)


def test_a_lasting_mae_breach_fires_once_and_again_only_after_it_cleared():
    r = rules(cooldown_s=600)
    assert r.on_outcomes([outcome(i, 2.0) for i in range(300)], T0) == []
    alerts = r.on_outcomes([outcome(300 + i, 5.0) for i in range(300)], T0)
    assert [a.kind for a in alerts] == [AlertKind.MAE_THRESHOLD]
    assert alerts[0].subject == "ml" and alerts[0].evidence["mae"] > 3.0
    # Still breached, even hours later in event time: no new alert.
    assert r.on_outcomes([outcome(9000 + i, 5.0) for i in range(300)], T0) == []
    assert r.on_outcomes([outcome(20000 + i, 1.0) for i in range(300)], T0) == []  # cleared
    again = r.on_outcomes([outcome(30000 + i, 6.0) for i in range(300)], T0)
    assert len(again) == 1 and again[0].alert_id != alerts[0].alert_id


def test_arms_are_watched_separately():
    r = rules()
    alerts = r.on_outcomes([outcome(i, 4.0, Arm.HEURISTIC) for i in range(100)], T0)
    assert [a.subject for a in alerts] == ["heuristic"]


def test_model_errors_above_20_percent_raise_an_ml_error_rate_alert():
    r = rules()
    healthy = [
        prediction(i, FallbackReason.MODEL_ERROR if i % 10 == 0 else None) for i in range(200)
    ]
    assert r.on_predictions(healthy, T0) == []
    failing = [
        prediction(200 + i, FallbackReason.MODEL_ERROR if i % 3 == 0 else None) for i in range(200)
    ]
    kinds = {a.kind for a in r.on_predictions(failing, T0)}
    assert kinds == {AlertKind.ML_ERROR_RATE}


def test_a_fallback_storm_is_raised_for_any_reason():
    alerts = rules().on_predictions(
        [prediction(i, FallbackReason.NO_MODEL) for i in range(150)], T0
    )
    assert [a.kind for a in alerts] == [AlertKind.FALLBACK_STORM]


def test_alert_ids_are_deterministic():
    a = rules().on_predictions([prediction(i, FallbackReason.NO_MODEL) for i in range(150)], T0)
    b = rules().on_predictions([prediction(i, FallbackReason.NO_MODEL) for i in range(150)], T0)
    assert [x.alert_id for x in a] == [x.alert_id for x in b]


def p90_outcome(i, within, arm=Arm.ML, p90=True):
    """An outcome 2 minutes later than predicted (actual 7), with a P90 of 7.5 (within) or 6.5
    (beyond), or none."""
    o = outcome(i, 2.0, arm)
    return o.model_copy(update={"predicted_p90_minutes": (7.5 if within else 6.5) if p90 else None})


def covered_run(start, n, every):
    """``n`` outcomes from ``start``; each ``every``-th beyond its P90, the others within."""
    return [p90_outcome(start + i, within=(i % every != every - 1)) for i in range(n)]


def coverage_alerts(alerts):
    return [a for a in alerts if a.kind is AlertKind.INTERVAL_COVERAGE]


def test_coverage_inside_the_band_raises_nothing():
    r = rules()
    # 9 of 10 within: coverage 0.9 over every window of 100.
    assert r.on_outcomes(covered_run(0, 500, every=10), T0) == []


def test_coverage_below_the_band_fires_once_with_its_evidence_and_again_only_after_it_cleared():
    r = rules(cooldown_s=600)
    assert r.on_outcomes(covered_run(0, 200, every=10), T0) == []
    # 3 of 4 within: the window's coverage sinks from 0.9 towards 0.75.
    low = coverage_alerts(r.on_outcomes(covered_run(200, 300, every=4), T0))
    assert len(low) == 1
    [alert] = low
    assert alert.subject == "ml" and alert.severity.value == "warning"
    # Fired at the first window below 0.85: 84 of the last 100 within.
    assert alert.evidence == {
        "n": 100,
        "covered": 84,
        "coverage": 0.84,
        "band_low": 0.85,
        "band_high": 0.95,
    }
    assert "0.840 (84 within), below the band [0.85, 0.95]" in alert.message
    # Still below, hours later in event time: no new alert.
    assert r.on_outcomes(covered_run(9000, 300, every=4), T0) == []
    assert r.on_outcomes(covered_run(20000, 300, every=10), T0) == []  # back to 0.9: cleared
    again = coverage_alerts(r.on_outcomes(covered_run(30000, 300, every=4), T0))
    assert len(again) == 1 and again[0].alert_id != alert.alert_id


def test_coverage_above_the_band_fires_too():
    # Every actual within its P90: intervals wider than they need to be.
    [alert] = coverage_alerts(rules().on_outcomes(covered_run(0, 100, every=10**6), T0))
    assert alert.evidence["coverage"] == 1.0 and alert.evidence["covered"] == 100
    assert "above the band [0.85, 0.95]" in alert.message


def test_the_band_edges_are_inside_it():
    # 85 and 95 within out of 100 (the first and the last window of each run).
    exactly_low = [p90_outcome(i, within=i % 20 not in (0, 7, 14)) for i in range(100)]
    assert sum(o.within_p90 for o in exactly_low) == 85
    assert rules().on_outcomes(exactly_low, T0) == []
    exactly_high = [p90_outcome(i, within=i % 20 != 0) for i in range(100)]
    assert sum(o.within_p90 for o in exactly_high) == 95
    assert rules().on_outcomes(exactly_high, T0) == []


def test_outcomes_without_a_p90_neither_count_nor_fill_the_window():
    r = rules()
    without = [p90_outcome(i, within=False, p90=False) for i in range(500)]
    assert r.on_outcomes(without, T0) == []
    # 99 outcomes with a P90, all beyond it: one short of a full window, so no verdict yet.
    assert r.on_outcomes([p90_outcome(1000 + i, within=False) for i in range(99)], T0) == []
    [alert] = coverage_alerts(r.on_outcomes([p90_outcome(2000, within=False)], T0))
    assert alert.evidence["covered"] == 0 and alert.evidence["n"] == 100


def test_coverage_is_watched_per_arm():
    r = rules()
    healthy_ml = covered_run(0, 200, every=10)
    narrow_heuristic = [
        p90_outcome(1000 + i, within=i % 2 == 0, arm=Arm.HEURISTIC) for i in range(100)
    ]
    alerts = coverage_alerts(r.on_outcomes(healthy_ml + narrow_heuristic, T0))
    assert [(a.subject, a.evidence["coverage"]) for a in alerts] == [("heuristic", 0.5)]


@pytest.mark.parametrize("low, high", [(0.95, 0.85), (0.9, 0.9), (-0.1, 0.9), (0.8, 1.5)])
def test_a_band_that_is_not_one_is_refused(low, high):
    with pytest.raises(ValueError, match="COVERAGE_ALERT_LOW < COVERAGE_ALERT_HIGH"):
        rules(coverage_low=low, coverage_high=high)


def test_a_well_calibrated_p90_raises_no_alert_in_the_default_window_but_does_in_a_small_one():
    # 40,000 outcomes of one arm whose P90 holds 9 times in 10, by chance alone.
    rng = np.random.default_rng(3)
    calibrated = [p90_outcome(i, within=bool(w)) for i, w in enumerate(rng.random(40_000) < 0.9)]
    quiet = rules(coverage_window=1000)
    assert coverage_alerts(quiet.on_outcomes(calibrated, T0)) == []
    assert coverage_window_warning(1000, 0.85, 0.95) is None
    # A window of 50 wanders past a ±0.05 band by chance, which the warning says beforehand.
    noisy = coverage_alerts(rules(coverage_window=50).on_outcomes(calibrated, T0))
    assert len(noisy) >= 5
    assert all(a.evidence["n"] == 50 for a in noisy)
    warning = coverage_window_warning(50, 0.85, 0.95)
    assert warning is not None and "±0.127" in warning and "at least 729" in warning
    assert "does not contain 0.9" in (coverage_window_warning(1000, 0.91, 0.99) or "")


def test_the_coverage_window_is_its_own():
    r = rules(coverage_window=300)
    # A full MAE window (100) of outcomes beyond their P90: no coverage verdict before 300.
    assert (
        coverage_alerts(r.on_outcomes([p90_outcome(i, within=False) for i in range(299)], T0)) == []
    )
    [alert] = coverage_alerts(r.on_outcomes([p90_outcome(299, within=False)], T0))
    assert alert.evidence["n"] == 300 and "last 300 outcomes" in alert.message
