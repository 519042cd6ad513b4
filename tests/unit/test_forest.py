import copy

import numpy as np
import pytest

from models.confidence import confidence_from_spread
from models.features import FEATURE_INDEX, FEATURE_NAMES
from models.forest import ForestConfig, ForestPredictor, fit_forest
from models.inputs import MODEL_FEATURES, ModelInputs

M = ModelInputs().transform  # booking features -> the model's own columns


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, len(FEATURE_NAMES)))
    X[:, FEATURE_INDEX["hour_local"]] *= 24
    y = 10 * X[:, FEATURE_INDEX["hour_local"]] / 24 + 3 * X[:, 0] + rng.normal(0, 0.5, n)
    return X, y


@pytest.fixture(scope="module")
def predictor() -> ForestPredictor:
    X, y = data(2_000, 1)
    config = ForestConfig(n_estimators=25, max_depth=6, min_samples_leaf=5, n_jobs=1)
    return ForestPredictor(fit_forest(M(X), y, config), version="rf-test")


def test_batch_predictions_equal_scikit_learns_own_predict(predictor):
    X, _ = data(500, 2)
    delays, _ = predictor.predict(X)
    np.testing.assert_allclose(delays, predictor.estimator.predict(M(X)), rtol=1e-12, atol=1e-12)


def test_confidence_is_in_unit_interval_and_follows_the_tree_spread(predictor):
    X, _ = data(500, 3)
    _, confidences = predictor.predict(X)
    assert np.all((confidences >= 0) & (confidences <= 1))
    spread = predictor.tree_predictions(X).std(axis=0)
    np.testing.assert_allclose(confidences, confidence_from_spread(spread))


def test_confidence_is_higher_when_the_trees_agree(predictor):
    X, _ = data(200, 4)
    agreeing = copy.deepcopy(predictor.estimator)
    agreeing.estimators_ = [agreeing.estimators_[0]] * len(agreeing.estimators_)
    unanimous = ForestPredictor(agreeing, version="rf-same-trees")
    _, usual = predictor.predict(X)
    _, same = unanimous.predict(X)
    np.testing.assert_allclose(same, 1.0)
    assert np.all(usual < same)


def test_predictor_exposes_version_and_features_and_predicts_on_one_thread(predictor):
    assert predictor.version == "rf-test"
    assert predictor.feature_names == MODEL_FEATURES
    assert predictor.estimator.n_jobs == 1


def test_bad_inputs_are_refused(predictor):
    with pytest.raises(ValueError, match="expected"):
        predictor.predict(np.zeros((3, 5)))
    X, _ = data(3, 5)
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict(X)
    delays, confidences = predictor.predict(np.zeros((0, len(FEATURE_NAMES))))
    assert delays.shape == confidences.shape == (0,)
    with pytest.raises(ValueError, match="takes"):
        ForestPredictor(predictor.estimator, "x", ModelInputs(columns=MODEL_FEATURES[:-1]))
