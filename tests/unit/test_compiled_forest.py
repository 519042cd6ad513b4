from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from models.compiled_forest import CompiledForest, compile_forest, forest_mean
from models.confidence import confidence_from_spread
from models.features import FEATURE_NAMES, feature_matrix
from models.forest import ForestConfig, ForestPredictor, fit_forest, tree_spread
from models.inputs import ModelInputs
from models.synthetic import generate_history

END = datetime(2026, 11, 1, tzinfo=UTC)


def synthetic_features(seed: int, days: int = 7) -> tuple[np.ndarray, np.ndarray]:
    history = generate_history(END - timedelta(days=days), END, seed=seed, bookings_per_day=200)
    X = feature_matrix([row.booking for row in history.rows], history.row_weather)
    return X, np.array([row.actual_delay_minutes for row in history.rows])


@pytest.fixture(scope="module")
def world_forest() -> RandomForestRegressor:
    X, y = synthetic_features(seed=2)
    config = ForestConfig(n_estimators=20, max_depth=10, min_samples_leaf=3, n_jobs=1)
    return fit_forest(X, y, config)


@pytest.fixture(scope="module")
def world_rows() -> np.ndarray:
    X, _ = synthetic_features(seed=3)
    assert len(X) >= 1000
    return X


def per_tree_of(estimator: RandomForestRegressor, X: np.ndarray) -> np.ndarray:
    return np.array([tree.predict(X) for tree in estimator.estimators_])


def assert_same_as_scikit_learn(estimator, X):
    mean, per_tree = compile_forest(estimator).evaluate(X)
    expected = estimator.predict(X)
    np.testing.assert_allclose(mean, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(per_tree, per_tree_of(estimator, X), rtol=0, atol=1e-9)
    # Leaf values are copied and summed in the forest's order: equal to the last bit.
    np.testing.assert_array_equal(mean, expected)
    np.testing.assert_array_equal(per_tree, per_tree_of(estimator, X))


@pytest.mark.parametrize("rows", [1, 7, 1000])
def test_forest_of_the_synthetic_world_predicts_what_scikit_learn_predicts(
    world_forest, world_rows, rows
):
    X = world_rows[:rows]
    assert_same_as_scikit_learn(world_forest, X)
    mean, per_tree = compile_forest(world_forest).evaluate(X)
    assert mean.shape == (rows,) and per_tree.shape == (20, rows)


def test_compiled_forest_takes_every_node_once_and_is_as_deep_as_the_deepest_tree(world_forest):
    forest = compile_forest(world_forest)
    trees = [member.tree_ for member in world_forest.estimators_]
    assert forest.n_trees == 20 and forest.n_features == len(FEATURE_NAMES)
    assert forest.node_count == sum(tree.node_count for tree in trees)
    assert forest.depth == max(tree.max_depth for tree in trees) == 10


def test_predictor_confidence_is_what_the_per_tree_loop_computed(world_forest, world_rows):
    # The forest was fitted on every booking feature: its inputs are all the columns.
    predictor = ForestPredictor(world_forest, "rf-world", ModelInputs(columns=FEATURE_NAMES))
    for rows in (1, 7, 1000):
        X = world_rows[:rows]
        # The previous ForestPredictor: each tree's compiled predict on the float32 batch.
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        old = np.array([member.tree_.predict(X32)[:, 0] for member in world_forest.estimators_])
        delays, confidences = predictor.predict(X)
        np.testing.assert_array_equal(confidences, confidence_from_spread(old.std(axis=0)))
        np.testing.assert_allclose(delays, old.sum(axis=0) / len(old), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(predictor.tree_predictions(X), old)


# Features on a coarse grid of values that float32 cannot represent exactly (0.1, 0.3, ...):
# thresholds are midpoints of float32 values, so rows can sit exactly on them.
def grid_forest(seed: int) -> tuple[RandomForestRegressor, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 12, (3_000, 6)) * 0.1 + 0.1
    y = 3 * X[:, 0] - 2 * X[:, 1] * X[:, 2] + np.sin(6 * X[:, 3]) + rng.normal(0, 0.1, len(X))
    estimator = RandomForestRegressor(
        n_estimators=15, max_depth=9, min_samples_leaf=2, max_features=0.7, random_state=seed
    ).fit(X, y)
    return estimator, X


def edge_values(thresholds: np.ndarray) -> np.ndarray:
    """Split thresholds, their float64 neighbours, their float32 rounding and its neighbours:
    the values where ``<=`` in float64 and in float32 differ."""
    rounded = thresholds.astype(np.float32)
    return np.concatenate(
        [
            thresholds,
            np.nextafter(thresholds, np.inf),
            np.nextafter(thresholds, -np.inf),
            rounded.astype(np.float64),
            np.nextafter(rounded, np.float32(np.inf)).astype(np.float64),
            np.nextafter(rounded, np.float32(-np.inf)).astype(np.float64),
        ]
    )


def edge_rows(estimator: RandomForestRegressor, n: int, seed: int) -> np.ndarray:
    """Rows whose every value is a threshold of its feature, or a float64 or float32 neighbour
    of one, or its float32 rounding: the values where ``<=`` in float64 and in float32 differ."""
    rng = np.random.default_rng(seed)
    n_features = estimator.n_features_in_
    out = np.empty((n, n_features))
    for f in range(n_features):
        thresholds = np.unique(
            np.concatenate([m.tree_.threshold[m.tree_.feature == f] for m in estimator.estimators_])
        )
        out[:, f] = rng.choice(edge_values(thresholds), n)
    return out


def float64_walk(estimator: RandomForestRegressor, X: np.ndarray) -> np.ndarray:
    """The forest's mean as it would be when comparing the float64 features (the wrong rule)."""
    out = np.zeros(len(X))
    for member in estimator.estimators_:
        tree = member.tree_
        for i, row in enumerate(X):
            node = 0
            while tree.children_left[node] != -1:
                go_left = row[tree.feature[node]] <= tree.threshold[node]
                node = tree.children_left[node] if go_left else tree.children_right[node]
            out[i] += tree.value[node, 0, 0]
    return out / len(estimator.estimators_)


@pytest.mark.parametrize("seed", [5, 6])
def test_rows_on_thresholds_and_float32_rounding_edges_go_where_scikit_learn_sends_them(seed):
    estimator, _ = grid_forest(seed)
    X = edge_rows(estimator, 1000, seed)
    # The data do exercise the float32 rule: comparing in float64 would change predictions.
    assert np.count_nonzero(float64_walk(estimator, X) != estimator.predict(X)) > 100
    for rows in (1, 7, 1000):
        assert_same_as_scikit_learn(estimator, X[:rows])


def test_training_rows_themselves_land_in_the_same_leaves(world_forest):
    X, _ = synthetic_features(seed=2)
    assert_same_as_scikit_learn(world_forest, X)


def test_nan_goes_where_each_node_recorded_it_goes():
    rng = np.random.default_rng(8)
    X = rng.uniform(0, 1, (2_000, 4))
    y = 4 * X[:, 0] + X[:, 1] + rng.normal(0, 0.1, len(X))
    X[rng.uniform(size=X.shape) < 0.15] = np.nan  # fitted with NaN: both directions occur
    estimator = RandomForestRegressor(n_estimators=10, max_depth=7, random_state=0).fit(X, y)
    directions = np.concatenate([m.tree_.missing_go_to_left for m in estimator.estimators_])
    assert directions.any() and not directions.all()
    Xq = rng.uniform(0, 1, (500, 4))
    Xq[rng.uniform(size=Xq.shape) < 0.3] = np.nan
    assert_same_as_scikit_learn(estimator, Xq)


def test_nan_in_a_forest_fitted_without_nan_follows_scikit_learn(world_forest, world_rows):
    X = world_rows[:300].copy()
    X[np.random.default_rng(9).uniform(size=X.shape) < 0.1] = np.nan
    assert_same_as_scikit_learn(world_forest, X)


def test_nan_is_refused_when_the_trees_do_not_say_where_it_goes():
    # A stump on feature 0 at 0.5: left leaf -1, right leaf +1; slots 0 (root), 1, 2.
    stump = CompiledForest(
        feature=np.array([0, 0, 0]),
        threshold=np.array([0.5, np.inf, np.inf]),
        child=np.array([1, 1, 2]),
        missing_right=None,
        value=np.array([0.0, -1.0, 1.0]),
        n_trees=1,
        n_features=1,
        depth=1,
    )
    np.testing.assert_array_equal(stump.predict(np.array([[0.5], [0.6], [np.inf]])), [-1, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        stump.predict(np.array([[0.2], [np.nan]]))
    parts = dict(feature=np.array([0, 0, 0]), child=np.array([1, 1, 2]), missing_right=None)
    parts |= dict(value=np.zeros(3), n_trees=1, n_features=1, depth=1)
    with pytest.raises(ValueError, match="one length"):
        CompiledForest(threshold=np.zeros(2), **parts)
    with pytest.raises(ValueError, match=r"column indices in \[0, 1\)"):
        CompiledForest(threshold=np.zeros(3), **(parts | {"feature": np.array([1, 0, 0])}))


def test_a_forest_of_single_leaves_predicts_its_constant():
    X = np.random.default_rng(1).uniform(size=(50, 3))
    estimator = RandomForestRegressor(n_estimators=4, random_state=0).fit(X, np.full(50, 2.5))
    forest = compile_forest(estimator)
    assert forest.depth == 0 and forest.node_count == 4
    np.testing.assert_array_equal(forest.predict(X), np.full(50, 2.5))
    assert_same_as_scikit_learn(estimator, X[:7])


def test_empty_batches_and_wrong_shapes(world_forest):
    forest = compile_forest(world_forest)
    mean, per_tree = forest.evaluate(np.zeros((0, len(FEATURE_NAMES))))
    assert mean.shape == (0,) and per_tree.shape == (20, 0)
    with pytest.raises(ValueError, match=rf"expected \(rows, {len(FEATURE_NAMES)}\) features"):
        forest.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="expected"):
        forest.predict(np.zeros(len(FEATURE_NAMES)))


def test_only_fitted_single_output_regression_forests_compile():
    X = np.random.default_rng(2).uniform(size=(60, 3))
    with pytest.raises(ValueError, match="not fitted"):
        compile_forest(RandomForestRegressor())
    classifier = RandomForestClassifier(n_estimators=2, random_state=0)
    with pytest.raises(ValueError, match="single-output regression"):
        compile_forest(classifier.fit(X, (X[:, 0] > 0.5).astype(int)))
    two_outputs = RandomForestRegressor(n_estimators=2, random_state=0)
    with pytest.raises(ValueError, match="single-output regression"):
        compile_forest(two_outputs.fit(X, X[:, :2]))


def test_forest_mean_sums_in_tree_order_as_scikit_learn_does():
    per_tree = np.random.default_rng(3).lognormal(0, 3, (100, 4))
    total = np.zeros(4)
    for values in per_tree:  # RandomForestRegressor.predict: y_hat += each tree's, in order
        total += values
    np.testing.assert_array_equal(forest_mean(per_tree), total / 100)
    np.testing.assert_array_equal(forest_mean(per_tree[:, :1]), total[:1] / 100)


@pytest.mark.parametrize("shape", [(100, 1), (100, 7), (20, 1000), (1, 3)])
def test_tree_spread_is_numpys_std_to_the_last_bit(shape):
    per_tree = np.random.default_rng(4).normal(10, 5, shape)
    np.testing.assert_array_equal(tree_spread(per_tree), per_tree.std(axis=0))
