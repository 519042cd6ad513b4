import numpy as np
import pytest

from models.features import FEATURE_INDEX, FEATURE_NAMES
from models.heuristic import (
    DEFAULT_PARAMS,
    HeuristicParams,
    fit_heuristic,
    predict,
    rule_terms,
)

# A city whose rush is late morning and early evening, and whose weekends are calmer.
TRUE_PROFILE = tuple(
    [6.0 if 10 <= h < 12 else 4.0 if 17 <= h < 19 else 0.0 for h in range(24)] + [-2.0] * 24
)
TRUE = HeuristicParams(
    base_standard_min=3.0,
    base_wheelchair_min=5.5,
    base_stretcher_min=10.0,
    per_km_min=0.4,
    per_mm_h_min=2.0,
    short_lead_min=4.0,
    fog_min=2.5,
    residual_std_min=1.0,
    hour_profile_min=TRUE_PROFILE,
)
SLOPES = ("per_km_min", "per_mm_h_min", "short_lead_min", "fog_min")


def random_features(n: int, rng: np.random.Generator, fog_share: float = 0.1) -> np.ndarray:
    X = np.zeros((n, len(FEATURE_NAMES)))
    c = FEATURE_INDEX
    vehicle = rng.choice(3, size=n, p=[0.65, 0.25, 0.1])
    X[np.arange(n), c["vehicle_standard"] + vehicle] = 1
    X[:, c["is_weekend"]] = rng.random(n) < 2 / 7
    X[:, c["hour_local"]] = rng.uniform(0, 24, n)
    X[:, c["distance_km"]] = rng.uniform(0.5, 30, n)
    X[:, c["precipitation_mm_h"]] = np.where(rng.random(n) < 0.2, rng.exponential(2, n), 0)
    X[:, c["lead_time_min"]] = rng.uniform(10, 3000, n)
    X[:, c["visibility_m"]] = np.where(rng.random(n) < fog_share, 300, 20_000)
    return X


def test_defaults_are_the_heuristic_default_version_with_documented_rules():
    X = np.zeros((2, len(FEATURE_NAMES)))
    c = FEATURE_INDEX
    X[:, c["vehicle_wheelchair"]] = 1
    X[:, c["lead_time_min"]] = 120
    X[:, c["visibility_m"]] = 20_000
    X[1, c["hour_local"]] = 8.5  # a weekday's morning rush in the defaults
    X[1, c["distance_km"]] = 8
    X[1, c["precipitation_mm_h"]] = 40  # capped at 10 mm/h
    delays, confidences = predict(DEFAULT_PARAMS, X)
    assert DEFAULT_PARAMS.version == "heuristic-default"
    assert delays[0] == pytest.approx(DEFAULT_PARAMS.base_wheelchair_min)
    assert delays[1] == pytest.approx(6.0 + 5.0 + 8 * 0.25 + 10 * 1.5)
    assert np.all((confidences > 0) & (confidences < 1))
    assert confidences[0] == confidences[1]


def test_fit_recovers_the_parameters_of_data_generated_by_its_own_rules():
    rng = np.random.default_rng(11)
    X = random_features(20_000, rng)
    y = predict(TRUE, X)[0] + rng.normal(0, 1.0, len(X))
    fitted = fit_heuristic(X, y)
    for name in SLOPES:
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), abs=0.1), name
    # Bases and profile are known up to a shared constant (the busiest hour is the reference):
    # their sum, the prediction, is what is recovered.
    gap = predict(fitted, X)[0] - predict(TRUE, X)[0]
    assert np.abs(gap).max() < 0.25
    profile = np.array(fitted.hour_profile_min)
    assert profile[10] - profile[3] == pytest.approx(6.0, abs=0.15)  # the rush, learned
    assert profile[30] - profile[3] == pytest.approx(-2.0, abs=0.15)  # a weekend hour
    assert fitted.residual_std_min == pytest.approx(1.0, abs=0.05)
    assert fitted.version.startswith("heuristic-") and fitted.version != "heuristic-default"


def test_terms_the_history_never_shows_keep_their_default():
    rng = np.random.default_rng(12)
    X = random_features(5_000, rng, fog_share=0.0)
    y = predict(TRUE, X)[0] + rng.normal(0, 1.0, len(X))
    fitted = fit_heuristic(X, y)
    assert fitted.fog_min == DEFAULT_PARAMS.fog_min
    assert fitted.per_km_min == pytest.approx(TRUE.per_km_min, abs=0.1)


def test_hours_the_history_never_shows_keep_their_default():
    rng = np.random.default_rng(14)
    X = random_features(5_000, rng)
    c = FEATURE_INDEX
    X[:, c["is_weekend"]] = 0
    X[:, c["hour_local"]] = rng.choice([h for h in range(24) if h != 3], len(X)) + 0.5
    fitted = fit_heuristic(X, predict(TRUE, X)[0] + rng.normal(0, 1.0, len(X)))
    assert fitted.hour_profile_min[3] == DEFAULT_PARAMS.hour_profile_min[3]
    assert fitted.hour_profile_min[24:] == DEFAULT_PARAMS.hour_profile_min[24:]


def test_confidence_is_lower_when_the_fit_is_noisier():
    rng = np.random.default_rng(13)
    X = random_features(5_000, rng)
    clean = fit_heuristic(X, predict(TRUE, X)[0] + rng.normal(0, 1, len(X)))
    noisy = fit_heuristic(X, predict(TRUE, X)[0] + rng.normal(0, 6, len(X)))
    assert predict(clean, X[:1])[1][0] > predict(noisy, X[:1])[1][0]


def test_params_round_trip_and_refuse_tampering():
    again = HeuristicParams.from_dict(TRUE.to_dict())
    assert again == TRUE and again.version == TRUE.version
    assert HeuristicParams.from_dict(DEFAULT_PARAMS.to_dict()).version == "heuristic-default"
    tampered = {**TRUE.to_dict(), "per_km_min": 0.0}
    with pytest.raises(ValueError, match="does not match"):
        HeuristicParams.from_dict(tampered)
    missing = TRUE.to_dict()
    del missing["fog_min"]
    with pytest.raises(ValueError, match="missing"):
        HeuristicParams.from_dict(missing)
    with pytest.raises(ValueError):
        HeuristicParams(per_km_min=float("nan"))


def test_least_absolute_deviations_reaches_the_linear_programme_optimum():
    from sklearn.linear_model import QuantileRegressor

    from models.heuristic import least_absolute_deviations

    rng = np.random.default_rng(1)
    n = 3000
    A = np.column_stack([np.ones(n), rng.uniform(0, 20, n), rng.random(n) < 0.3])
    b = np.round(A @ np.array([2.0, 0.5, 4.0]) + rng.standard_t(1.5, n) * 3)
    ours = least_absolute_deviations(A, b)
    exact = QuantileRegressor(quantile=0.5, alpha=0, fit_intercept=False, solver="highs")
    optimum = np.abs(b - A @ exact.fit(A, b).coef_).sum()
    assert np.abs(b - A @ ours).sum() == pytest.approx(optimum, rel=1e-7)


def test_on_a_heavy_right_tail_the_fit_never_loses_to_the_median():
    rng = np.random.default_rng(5)
    X = random_features(4000, rng)
    y = predict(TRUE, X)[0] + rng.lognormal(1.0, 1.5, len(X))  # most small, a few huge
    fitted = fit_heuristic(X, y)
    fitted_mae = np.abs(y - predict(fitted, X)[0]).mean()
    assert fitted_mae <= np.abs(y - np.median(y)).mean()
    squares = np.linalg.lstsq(rule_terms(X), y, rcond=None)[0]
    assert fitted_mae < np.abs(y - rule_terms(X) @ squares).mean()


def test_constant_params_predict_the_median_for_every_booking():
    from models.heuristic import constant_params

    X = random_features(50, np.random.default_rng(2))
    delays, _ = predict(constant_params(4.5, 3.0), X)
    assert delays.tolist() == [4.5] * 50


def test_files_written_before_the_hour_profile_are_read_as_the_profile_they_meant():
    legacy = {
        "base_standard_min": 3.0,
        "base_wheelchair_min": 5.5,
        "base_stretcher_min": 10.0,
        "rush_hour_min": 6.0,
        "per_km_min": 0.4,
        "per_mm_h_min": 2.0,
        "weekend_min": -2.0,
        "short_lead_min": 4.0,
        "fog_min": 2.5,
        "residual_std_min": 1.0,
    }
    import hashlib
    import json

    canonical = json.dumps(legacy, sort_keys=True, separators=(",", ":")).encode()
    version = "heuristic-" + hashlib.sha256(canonical).hexdigest()[:8]
    params = HeuristicParams.from_dict({"version": version, **legacy})
    assert params.version == version  # its predictions and metrics stay filed under it
    profile = params.hour_profile_min
    assert [profile[h] for h in (3, 7, 8, 16, 18, 19)] == [0.0, 6.0, 6.0, 6.0, 6.0, 0.0]
    assert set(profile[24:]) == {-2.0}
    assert params.per_km_min == 0.4
    with pytest.raises(ValueError, match="does not match"):
        HeuristicParams.from_dict({"version": version, **legacy, "fog_min": 0.0})
    old_default = {**{k: v for k, v in legacy.items()}, "version": "heuristic-default"}
    old_default |= {"base_standard_min": 4.0, "base_wheelchair_min": 6.0}
    old_default |= {"base_stretcher_min": 9.0, "rush_hour_min": 5.0, "per_km_min": 0.25}
    old_default |= {"per_mm_h_min": 1.5, "weekend_min": -1.5, "short_lead_min": 3.0}
    old_default |= {"fog_min": 3.0, "residual_std_min": 8.0}
    assert HeuristicParams.from_dict(old_default) == DEFAULT_PARAMS
