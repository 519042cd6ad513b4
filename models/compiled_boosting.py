"""A fitted ``HistGradientBoostingRegressor`` compiled into :mod:`models.compiled_forest`'s
flat layout, evaluated by the same vectorized traversal.

What scikit-learn's ``predict`` does, and the compiled model repeats (scikit-learn 1.9,
``sklearn/ensemble/_hist_gradient_boosting/``):

- ``X`` is validated as float64 (``X_DTYPE``), never rounded to float32;
- each tree is the ``nodes`` record array of a ``TreePredictor`` (root at index 0; ``left`` and
  ``right`` index the same array; ``is_leaf``, ``value``, ``feature_idx``, ``num_threshold``,
  ``missing_go_to_left``). A row goes left when ``x <= num_threshold``; NaN goes where
  ``missing_go_to_left`` says. A split "on NaN" has an infinite threshold: every number left,
  NaN right;
- the raw prediction is zeros, plus ``_baseline_prediction``, plus each iteration's tree in the
  order of the iterations (``_raw_predict``); the leaf values already carry the learning rate;
- ``predict`` applies the loss's inverse link, the identity for ``squared_error``,
  ``absolute_error`` and ``quantile``.

Only that case compiles: one tree per iteration, numerical splits only, an identity link. A
categorical feature, another loss (``poisson``, ``gamma``) or a classifier is refused with a
ValueError, since the compiled model would answer something else. The trees are read from
scikit-learn's private attributes (``_predictors``, ``_baseline_prediction``, ``_loss``);
their layout is checked here and pinned by ``tests/unit/test_compiled_boosting.py``.

>>> from sklearn.ensemble import HistGradientBoostingRegressor
>>> rng = np.random.default_rng(0)
>>> X, y = rng.uniform(size=(300, 3)), rng.normal(size=300)
>>> X[::7, 1] = np.nan
>>> fitted = HistGradientBoostingRegressor(loss="absolute_error", max_iter=20, max_depth=3,
...                                        early_stopping=False).fit(X, y)
>>> boosting = compile_boosting(fitted)
>>> boosting.n_trees, boosting.n_features, boosting.depth
(20, 3, 3)
>>> bool(np.array_equal(boosting.predict(X), fitted.predict(X)))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.compiled_forest import BaselineSum, CompiledForest, compile_trees

# The fields of a TreePredictor's nodes read here.
_NODE_FIELDS = (
    "value",
    "feature_idx",
    "num_threshold",
    "missing_go_to_left",
    "left",
    "right",
    "is_leaf",
    "is_categorical",
)


def compile_boosting(estimator: Any) -> CompiledForest:
    """Compile a fitted single-output ``HistGradientBoostingRegressor`` with an identity link
    and numerical features only. Raises ValueError otherwise (see the module's docstring)."""
    from sklearn._loss.link import IdentityLink
    from sklearn.ensemble import HistGradientBoostingRegressor

    if not isinstance(estimator, HistGradientBoostingRegressor):
        raise ValueError(
            "only a HistGradientBoostingRegressor can be compiled, "
            f"not a {type(estimator).__name__}"
        )
    iterations = getattr(estimator, "_predictors", None)
    if not iterations:
        raise ValueError("the boosting model is not fitted")
    n_features = getattr(estimator, "n_features_in_", None)
    if not isinstance(n_features, int):
        raise ValueError("the boosting model does not say how many features it takes")
    if getattr(estimator, "n_trees_per_iteration_", None) != 1 or any(
        len(trees) != 1 for trees in iterations
    ):
        raise ValueError("only single-output boosting (one tree per iteration) can be compiled")
    is_categorical = getattr(estimator, "is_categorical_", None)
    if is_categorical is not None and np.any(is_categorical):
        raise ValueError(
            "the boosting model has categorical features; only numerical splits can be compiled"
        )
    link = getattr(getattr(estimator, "_loss", None), "link", None)
    if not isinstance(link, IdentityLink):
        raise ValueError(
            f"the loss {estimator.loss!r} maps raw predictions through "
            f"{type(link).__name__}; only identity-link losses (squared_error, absolute_error, "
            "quantile) can be compiled"
        )
    baseline = getattr(estimator, "_baseline_prediction", None)
    if baseline is None or np.size(baseline) != 1:
        raise ValueError("the boosting model's baseline is not a single value")

    nodes = [_nodes_of(trees[0], n_features) for trees in iterations]
    sizes = np.array([len(n) for n in nodes], dtype=np.intp)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.intp)
    every = np.concatenate(nodes)
    leaf = every["is_leaf"].astype(np.bool_)
    # Node ids unique across trees: a tree's own indices shifted by the start of its tree.
    shift = np.repeat(starts, sizes)
    return compile_trees(
        left=np.where(leaf, -1, every["left"].astype(np.intp) + shift),
        right=np.where(leaf, -1, every["right"].astype(np.intp) + shift),
        feature=every["feature_idx"],
        threshold=every["num_threshold"],
        value=every["value"],
        missing_go_to_left=every["missing_go_to_left"].astype(np.bool_),
        roots=starts,
        n_features=n_features,
        combine=BaselineSum(float(np.asarray(baseline, dtype=np.float64).reshape(()))),
        float32_features=False,
    )


def _nodes_of(tree: Any, n_features: int) -> np.ndarray:
    nodes = np.asarray(getattr(tree, "nodes", None))
    missing = [name for name in _NODE_FIELDS if name not in (nodes.dtype.names or ())]
    if missing or nodes.ndim != 1:
        raise ValueError(
            f"a boosting tree is a {type(tree).__name__} without the node fields {missing}; "
            "this scikit-learn's layout is not known here"
        )
    if len(nodes) == 0:
        raise ValueError("a boosting tree has no nodes")
    split = ~nodes["is_leaf"].astype(np.bool_)
    if np.any(nodes["is_categorical"][split]):
        raise ValueError(
            "a boosting tree splits on a category; only numerical splits can be compiled"
        )
    used = nodes["feature_idx"][split]
    if np.any((used < 0) | (used >= n_features)):
        raise ValueError(f"a boosting tree splits on a feature outside [0, {n_features})")
    return nodes
