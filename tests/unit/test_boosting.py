import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from models.boosting import (
    MAX_DEPTH,
    MAX_ITER,
    MAX_TREE_LEVELS,
    SPREAD_CONFIG,
    BoostingConfig,
    BoostingPredictor,
    fit_boosting,
    fit_spread,
)
from models.confidence import confidence_from_spread
from models.features import FEATURE_INDEX, FEATURE_NAMES
from models.inputs import MODEL_FEATURES, ModelInputs

SMALL = BoostingConfig(max_iter=80, learning_rate=0.2, max_depth=4, early_stopping=False)
NOISY = FEATURE_INDEX["precipitation_mm_h"]
M = ModelInputs().transform  # booking features -> the model's own columns


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, delays and the noise scale of each row: Laplace noise from 0.2 to 6.2 minutes
    depending on one feature (rain), on top of a signal in the hour and distance."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, len(FEATURE_NAMES)))
    X[:, FEATURE_INDEX["hour_local"]] *= 24
    scale = 0.2 + 6 * X[:, NOISY]
    signal = 10 * X[:, FEATURE_INDEX["hour_local"]] / 24 + 3 * X[:, FEATURE_INDEX["distance_km"]]
    return X, signal + rng.laplace(0, scale), scale


@pytest.fixture(scope="module")
def fitted() -> tuple[HistGradientBoostingRegressor, HistGradientBoostingRegressor]:
    X, y, _ = data(6_000, 1)
    point = fit_boosting(M(X), y, SMALL)
    return point, fit_spread(M(X), y, point.predict(M(X)), SPREAD_CONFIG)


@pytest.fixture(scope="module")
def predictor(fitted) -> BoostingPredictor:
    point, spread = fitted
    return BoostingPredictor(point, version="gb-test", spread_estimator=spread)


def test_delays_equal_scikit_learns_own_predict_bit_for_bit(predictor):
    X, _, _ = data(500, 2)
    for rows in (1, 7, 500):
        delays, confidences = predictor.predict(X[:rows])
        assert delays.shape == confidences.shape == (rows,)
        assert np.array_equal(delays, predictor.estimator.predict(M(X[:rows])))


def test_confidence_is_the_spread_models_expected_error_turned_into_unit_interval(predictor):
    X, _, _ = data(500, 3)
    _, confidences = predictor.predict(X)
    assert np.all((confidences > 0) & (confidences <= 1))
    assert predictor.spread_estimator is not None
    spread = np.maximum(predictor.spread_estimator.predict(M(X)), 0.0)
    np.testing.assert_array_equal(confidences, confidence_from_spread(spread))


def test_rows_with_more_noise_get_less_confidence(predictor):
    X, y, scale = data(20_000, 4)
    delays, confidences = predictor.predict(X)
    errors = np.abs(delays - y)
    order = np.argsort(confidences)
    decile = len(order) // 10
    least_confident, most_confident = order[:decile], order[-decile:]
    assert errors[most_confident].mean() <= 0.5 * errors[least_confident].mean()
    assert scale[most_confident].mean() < scale[least_confident].mean()
    assert np.corrcoef(confidences, scale)[0, 1] < -0.8


def test_spread_model_is_fitted_on_the_absolute_residuals(fitted):
    X, y, _ = data(6_000, 1)
    point, spread = fitted
    X = M(X)
    residuals = np.abs(y - point.predict(X))
    direct = fit_boosting(X, residuals, SPREAD_CONFIG, loss="absolute_error")
    assert spread.loss == "absolute_error"
    assert np.array_equal(spread.predict(X[:500]), direct.predict(X[:500]))
    with pytest.raises(ValueError, match="one delay and one point prediction per row"):
        fit_spread(X, y[:-1], point.predict(X), SPREAD_CONFIG)


def test_without_a_spread_model_every_booking_gets_the_constant_confidence(fitted):
    point, _ = fitted
    constant = BoostingPredictor(point, version="gb-constant", confidence=0.6)
    X, _, _ = data(50, 5)
    delays, confidences = constant.predict(X)
    assert np.array_equal(delays, point.predict(M(X)))
    np.testing.assert_array_equal(confidences, np.full(50, 0.6))
    assert constant.spread_estimator is None


def test_predictor_exposes_version_features_and_estimators(predictor, fitted):
    assert predictor.version == "gb-test"
    assert predictor.feature_names == MODEL_FEATURES
    assert predictor.estimator is fitted[0] and predictor.spread_estimator is fitted[1]


def test_bad_inputs_are_refused(predictor):
    with pytest.raises(ValueError, match=rf"expected \(rows, {len(FEATURE_NAMES)}\) features"):
        predictor.predict(np.zeros((3, 5)))
    X, _, _ = data(3, 6)
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict(X)
    X[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        predictor.predict(X)
    delays, confidences = predictor.predict(np.zeros((0, len(FEATURE_NAMES))))
    assert delays.shape == confidences.shape == (0,)


def test_bad_models_and_confidence_settings_are_refused(fitted):
    point, spread = fitted
    with pytest.raises(ValueError, match="takes"):
        BoostingPredictor(
            point, "x", ModelInputs(columns=MODEL_FEATURES[:-1]), spread_estimator=spread
        )
    narrow = fit_boosting(data(300, 7)[0][:, :5], data(300, 7)[1], SMALL)
    with pytest.raises(ValueError, match="spread model takes 5 features"):
        BoostingPredictor(point, "x", spread_estimator=narrow)
    with pytest.raises(ValueError, match="boosting model: the boosting model is not fitted"):
        BoostingPredictor(HistGradientBoostingRegressor(), "x", confidence=0.5)
    with pytest.raises(ValueError, match="spread model: the boosting model is not fitted"):
        BoostingPredictor(point, "x", spread_estimator=HistGradientBoostingRegressor())
    with pytest.raises(ValueError, match="either a spread model or a constant confidence"):
        BoostingPredictor(point, "x")
    with pytest.raises(ValueError, match="either a spread model or a constant confidence"):
        BoostingPredictor(point, "x", spread_estimator=spread, confidence=0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        BoostingPredictor(point, "x", confidence=1.5)


def test_losses_other_than_the_compilable_ones_are_refused():
    X, y, _ = data(300, 8)
    quantile = fit_boosting(X, y, SMALL, loss="quantile", quantile=0.8)
    assert quantile.loss == "quantile" and quantile.quantile == 0.8
    with pytest.raises(ValueError, match="quantile is given with loss='quantile', and only then"):
        fit_boosting(X, y, SMALL, loss="quantile")
    with pytest.raises(ValueError, match="quantile is given"):
        fit_boosting(X, y, SMALL, quantile=0.5)
    with pytest.raises(ValueError, match="loss must be"):
        fit_boosting(X, y, SMALL, loss="poisson")  # type: ignore[arg-type]


def test_config_bounds_keep_the_compiled_model_fast():
    assert BoostingConfig().max_iter * BoostingConfig().max_depth <= MAX_TREE_LEVELS
    assert SPREAD_CONFIG.max_depth <= MAX_DEPTH
    with pytest.raises(ValueError, match="max_depth"):
        BoostingConfig(max_depth=MAX_DEPTH + 1)
    with pytest.raises(ValueError, match="max_iter × max_depth"):
        BoostingConfig(max_iter=MAX_ITER, max_depth=MAX_DEPTH)
    with pytest.raises(ValueError, match="max_iter must be"):
        BoostingConfig(max_iter=MAX_ITER + 1, max_depth=1)
    with pytest.raises(ValueError, match="max_iter must be"):
        BoostingConfig(max_iter=0)
    assert BoostingConfig(max_iter=MAX_ITER, max_depth=MAX_TREE_LEVELS // MAX_ITER)


def test_the_default_config_fits_with_early_stopping_and_stays_within_its_bounds():
    X, y, _ = data(12_000, 9)
    estimator = fit_boosting(M(X), y, BoostingConfig())
    predictor = BoostingPredictor(estimator, version="gb-default", confidence=0.5)
    assert estimator.n_iter_ <= BoostingConfig().max_iter
    assert max(tree[0].get_max_depth() for tree in estimator._predictors) <= 5
    X_new, _, _ = data(200, 10)
    assert np.array_equal(predictor.predict(X_new)[0], estimator.predict(M(X_new)))
