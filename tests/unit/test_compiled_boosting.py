import numpy as np
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)

from models.compiled_boosting import compile_boosting
from models.compiled_forest import BaselineSum, CompiledForest, boosted_sum
from tests.unit.test_compiled_forest import edge_values


def heavy_tailed(n: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features on very different scales, a non-linear target and Student-t noise (df 2)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)) * rng.lognormal(0, 2, n_features)
    z = X / X.std(axis=0)
    y = 3 * z[:, 0] + np.sin(2 * z[:, 1]) * z[:, 2] + rng.standard_t(2, n)
    return X, y


def with_nan(X: np.ndarray, share: float, seed: int) -> np.ndarray:
    X = X.copy()
    X[np.random.default_rng(seed).uniform(size=X.shape) < share] = np.nan
    return X


def assert_same_as_scikit_learn(estimator: HistGradientBoostingRegressor, X: np.ndarray) -> None:
    compiled = compile_boosting(estimator)
    expected = estimator.predict(X)
    assert compiled.predict(X).shape == (len(X),)
    assert np.array_equal(compiled.predict(X), expected)
    assert np.array_equal(compiled.evaluate(X)[0], expected)


LOSSES = [("absolute_error", None), ("quantile", 0.9), ("squared_error", None)]


@pytest.mark.parametrize("loss, quantile", LOSSES, ids=[loss for loss, _ in LOSSES])
@pytest.mark.parametrize("early_stopping", [True, False], ids=["early-stopping", "all-iterations"])
@pytest.mark.parametrize("fitted_with_nan", [False, True], ids=["fit-finite", "fit-with-nan"])
def test_predictions_equal_scikit_learns_bit_for_bit(
    loss, quantile, early_stopping, fitted_with_nan
):
    X, y = heavy_tailed(2_000, 6, seed=1)
    if fitted_with_nan:
        X = with_nan(X, 0.1, seed=2)
    estimator = HistGradientBoostingRegressor(
        loss=loss,
        quantile=quantile,
        max_iter=80,
        learning_rate=0.3,
        n_iter_no_change=3,
        early_stopping=early_stopping,
        random_state=0,
    ).fit(X, y)
    # The settings do what they say: early stopping stopped early, the other ran every iteration.
    assert (estimator.n_iter_ < 80) == early_stopping
    queries, _ = heavy_tailed(1_000, 6, seed=3)
    queries = with_nan(queries, 0.2, seed=4)  # NaN follows each node's missing_go_to_left
    queries[:100] = X[:100]  # rows the trees were fitted on
    for rows in (1, 7, 1_000):
        assert_same_as_scikit_learn(estimator, queries[:rows])
    one_by_one = [compile_boosting(estimator).predict(queries[i : i + 1])[0] for i in range(50)]
    np.testing.assert_array_equal(one_by_one, estimator.predict(queries[:50]))


def test_nan_goes_left_and_right_as_the_fitted_nodes_recorded():
    X, y = heavy_tailed(3_000, 4, seed=5)
    X = with_nan(X, 0.15, seed=6)
    y += np.where(np.isnan(X[:, 3]), 8.0, 0.0)  # whether a value is missing says much
    estimator = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X, y)
    splits = np.concatenate(
        [tree[0].nodes[tree[0].nodes["is_leaf"] == 0] for tree in estimator._predictors]
    )
    assert splits["missing_go_to_left"].any() and not splits["missing_go_to_left"].all()
    assert np.isinf(splits["num_threshold"]).any()  # splits of "NaN or not": NaN right
    queries = with_nan(heavy_tailed(500, 4, seed=7)[0], 0.3, seed=8)
    queries[:20] = np.nan
    assert_same_as_scikit_learn(estimator, queries)


def edge_rows(estimator: HistGradientBoostingRegressor, n: int, seed: int) -> np.ndarray:
    """Rows whose every value is a threshold of its feature, a float64 neighbour of one, or its
    float32 rounding or a neighbour of that: where comparing in float32 would differ."""
    rng = np.random.default_rng(seed)
    nodes = np.concatenate([tree[0].nodes for tree in estimator._predictors])
    nodes = nodes[(nodes["is_leaf"] == 0) & np.isfinite(nodes["num_threshold"])]
    out = np.empty((n, estimator.n_features_in_))
    for f in range(estimator.n_features_in_):
        thresholds = np.unique(nodes["num_threshold"][nodes["feature_idx"] == f])
        out[:, f] = rng.choice(edge_values(thresholds), n)
    return out


def test_features_are_compared_as_float64_not_rounded_to_float32():
    rng = np.random.default_rng(9)
    X = rng.integers(0, 12, (3_000, 5)) * 0.1 + 0.1  # values float32 cannot hold exactly
    y = 3 * X[:, 0] - 2 * X[:, 1] * X[:, 2] + np.sin(6 * X[:, 3]) + rng.normal(0, 0.1, len(X))
    estimator = HistGradientBoostingRegressor(
        loss="absolute_error", max_iter=60, early_stopping=False, random_state=0
    ).fit(X, y)
    queries = edge_rows(estimator, 1_000, seed=10)
    # The rows do exercise the rule: rounding them to float32 would change scikit-learn's answer.
    rounded = queries.astype(np.float32).astype(np.float64)
    assert np.count_nonzero(estimator.predict(rounded) != estimator.predict(queries)) > 100
    for rows in (1, 7, 1_000):
        assert_same_as_scikit_learn(estimator, queries[:rows])
    assert_same_as_scikit_learn(estimator, queries.astype(np.float32))  # float32 input widened


def test_compiled_model_holds_every_tree_in_iteration_order_and_every_node_once():
    X, y = heavy_tailed(2_000, 5, seed=11)
    estimator = HistGradientBoostingRegressor(
        loss="absolute_error", max_iter=40, max_depth=4, early_stopping=False, random_state=0
    ).fit(X, y)
    compiled = compile_boosting(estimator)
    trees = [iteration[0] for iteration in estimator._predictors]
    assert compiled.n_trees == estimator.n_iter_ == 40 and compiled.n_features == 5
    assert compiled.node_count == sum(len(tree.nodes) for tree in trees)
    assert compiled.depth == max(tree.get_max_depth() for tree in trees) == 4
    assert not compiled.float32_features
    assert compiled.combine == BaselineSum(float(estimator._baseline_prediction[0, 0]))
    per_tree = compiled.tree_predictions(X[:300])
    raw = np.array([tree.predict(X[:300], None, None, 1) for tree in trees])
    np.testing.assert_array_equal(per_tree, raw)  # row i is iteration i's tree


def test_a_model_of_single_leaf_trees_predicts_its_constant():
    X = np.random.default_rng(12).uniform(size=(200, 3))
    estimator = HistGradientBoostingRegressor(max_iter=5, early_stopping=False).fit(
        X, np.full(200, 2.5)
    )
    compiled = compile_boosting(estimator)
    assert compiled.depth == 0 and compiled.node_count == compiled.n_trees
    assert_same_as_scikit_learn(estimator, X)


def test_empty_batches_and_wrong_shapes():
    X, y = heavy_tailed(500, 3, seed=13)
    compiled = compile_boosting(HistGradientBoostingRegressor(max_iter=10).fit(X, y))
    assert compiled.predict(np.zeros((0, 3))).shape == (0,)
    combined, per_tree = compiled.evaluate(np.zeros((0, 3)))
    assert combined.shape == (0,) and per_tree.shape == (10, 0)
    with pytest.raises(ValueError, match=r"expected \(rows, 3\) features"):
        compiled.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="expected"):
        compiled.predict(np.zeros(3))


def test_unfitted_models_are_refused():
    with pytest.raises(ValueError, match="not fitted"):
        compile_boosting(HistGradientBoostingRegressor())


def test_categorical_features_are_refused():
    rng = np.random.default_rng(14)
    X = np.column_stack([rng.integers(0, 6, 600), rng.uniform(size=600)])
    y = np.where(X[:, 0] % 2 == 0, 5.0, -5.0) + X[:, 1]
    estimator = HistGradientBoostingRegressor(categorical_features=[0], max_iter=10).fit(X, y)
    with pytest.raises(ValueError, match="categorical features"):
        compile_boosting(estimator)


def test_a_categorical_split_in_a_tree_is_refused():
    X, y = heavy_tailed(500, 3, seed=15)
    estimator = HistGradientBoostingRegressor(max_iter=5, max_depth=2).fit(X, y)
    nodes = estimator._predictors[2][0].nodes
    nodes["is_categorical"][np.flatnonzero(nodes["is_leaf"] == 0)[0]] = 1
    with pytest.raises(ValueError, match="splits on a category"):
        compile_boosting(estimator)


def test_other_links_classifiers_and_forests_are_refused():
    X, y = heavy_tailed(500, 3, seed=16)
    poisson = HistGradientBoostingRegressor(loss="poisson", max_iter=5).fit(X, np.exp(y / 10))
    with pytest.raises(ValueError, match="only identity-link losses"):
        compile_boosting(poisson)
    classifier = HistGradientBoostingClassifier(max_iter=5).fit(X, y > 0)
    with pytest.raises(ValueError, match="only a HistGradientBoostingRegressor"):
        compile_boosting(classifier)
    forest = RandomForestRegressor(n_estimators=2).fit(X, y)
    with pytest.raises(ValueError, match="only a HistGradientBoostingRegressor"):
        compile_boosting(forest)


def test_a_hand_built_stump_compares_float64_and_adds_its_baseline():
    def stump(float32_features: bool) -> CompiledForest:
        # One split on feature 0 at 0.1: left leaf -1, right leaf +1; slots 0 (root), 1, 2.
        return CompiledForest(
            feature=np.array([0, 0, 0]),
            threshold=np.array([0.1, np.inf, np.inf]),
            child=np.array([1, 1, 2]),
            missing_right=np.array([True, False, False]),
            value=np.array([0.0, -1.0, 1.0]),
            n_trees=1,
            n_features=1,
            depth=1,
            combine=BaselineSum(10.0),
            float32_features=float32_features,
        )

    X = np.array([[0.1], [np.nextafter(0.1, 1)], [np.nan], [-np.inf], [np.inf]])
    np.testing.assert_array_equal(stump(False).predict(X), [9.0, 11.0, 11.0, 9.0, 11.0])
    # float32(0.1) is above 0.1: a decision tree's rule sends the first row right.
    np.testing.assert_array_equal(stump(True).predict(X), [11.0, 11.0, 11.0, 9.0, 11.0])


def test_baseline_sum_adds_the_trees_in_iteration_order():
    rng = np.random.default_rng(17)
    per_tree = rng.lognormal(0, 3, (300, 5)) * rng.choice([-1, 1], (300, 5))
    baseline = 0.7
    total = np.zeros(5)  # HistGradientBoostingRegressor._raw_predict: zeros, += baseline, += tree
    total += baseline
    for values in per_tree:
        total += values
    np.testing.assert_array_equal(boosted_sum(per_tree, baseline), total)
    np.testing.assert_array_equal(boosted_sum(per_tree[:, :1], baseline), total[:1])
    leaves = np.arange(per_tree.size)
    values = per_tree.ravel()
    np.testing.assert_array_equal(BaselineSum(baseline).of_leaves(values, leaves, 300), total)
    assert not np.array_equal(per_tree.sum(axis=0) + baseline, total)  # order does matter
