"""The ML predictor: a bounded random forest of regression trees over :mod:`models.features`.

Prediction is one call per batch. The forest's prediction is the mean of its trees' predictions
(exactly what scikit-learn's own ``predict`` returns); the confidence of each row comes from how
much the trees disagree on it:

    spread     = standard deviation of the per-tree predictions for the row (minutes)
    confidence = 1 / (1 + spread / 5 min)      (see models.confidence)

Both come from a single pass over the trees on the whole batch, so the confidence costs nothing
beyond the prediction itself. That pass runs on the forest compiled at construction
(:mod:`models.compiled_forest`): whole-batch numpy instead of scikit-learn's per-call and per-tree
overhead, with scikit-learn's exact results. The scikit-learn estimator is kept as the artifact
that is saved and loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from models.compiled_forest import compile_forest, forest_mean
from models.confidence import confidence_from_spread
from models.inputs import ModelInputs


@dataclass(frozen=True)
class ForestConfig:
    """Hyper-parameters; the bounds keep a model small (tens of MB) and fast to load and run.

    ``max_features`` below 1 decorrelates the trees (and speeds up fitting); ``n_jobs`` is used
    for fitting only: a predictor always predicts on one thread.
    """

    n_estimators: int = 100
    max_depth: int = 12
    min_samples_leaf: int = 5
    max_features: float = 0.6
    random_state: int = 0
    n_jobs: int = -1


def fit_forest(X: np.ndarray, y: np.ndarray, config: ForestConfig) -> RandomForestRegressor:
    """A forest fitted on a model's inputs ``X`` (:mod:`models.inputs`) and delays ``y``
    (minutes)."""
    estimator = RandomForestRegressor(
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        min_samples_leaf=config.min_samples_leaf,
        max_features=config.max_features,
        random_state=config.random_state,
        n_jobs=config.n_jobs,
    )
    estimator.fit(X, y)
    return estimator


class ForestPredictor:
    """A fitted forest with the version and the inputs it was trained with.

    :meth:`predict` takes the booking features (FEATURE_NAMES columns) and hands the forest its
    own inputs (``inputs.transform``). Raises ValueError at construction when the forest does
    not take ``len(inputs.names)`` features or is not a forest of single-output regression
    trees, and at :meth:`predict` when ``X`` has the wrong width or a non-finite value. Safe to
    call from several threads.
    """

    def __init__(
        self,
        estimator: RandomForestRegressor,
        version: str,
        inputs: ModelInputs | None = None,
    ) -> None:
        inputs = inputs or ModelInputs()
        names = inputs.names
        trees = getattr(estimator, "estimators_", None)
        if not trees:
            raise ValueError("the forest is not fitted")
        if getattr(estimator, "n_features_in_", None) != len(names):
            raise ValueError(
                f"the forest takes {getattr(estimator, 'n_features_in_', None)} features, "
                f"not {len(names)}"
            )
        # Anyone calling the estimator's own predict runs inside a worker that already uses its
        # cores; joblib workers per batch would cost more than they save on ~500 rows.
        estimator.n_jobs = 1
        self._estimator = estimator
        self._compiled = compile_forest(estimator)
        self._version = version
        self._inputs = inputs

    @property
    def version(self) -> str:
        return self._version

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._inputs.names

    @property
    def inputs(self) -> ModelInputs:
        return self._inputs

    @property
    def estimator(self) -> RandomForestRegressor:
        return self._estimator

    def tree_predictions(self, X: np.ndarray) -> np.ndarray:
        """Predictions of every tree, shape (trees, rows): row i is ``estimators_[i].predict``."""
        return self._compiled.tree_predictions(self._checked(X))

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted delays (minutes) and confidences in [0, 1] for each row of ``X``.

        The delays are those of the estimator's own ``predict``, bit for bit.
        """
        per_tree = self._compiled.tree_predictions(self._checked(X))
        if per_tree.shape[1] == 0:
            return np.empty(0), np.empty(0)
        return forest_mean(per_tree), confidence_from_spread(tree_spread(per_tree))

    def _checked(self, X: np.ndarray) -> np.ndarray:
        return self._inputs.transform(X)


def tree_spread(per_tree: np.ndarray) -> np.ndarray:
    """The standard deviation over the trees (axis 0) of per-tree predictions (trees, rows).

    Equal to ``per_tree.std(axis=0)`` to the last bit: the same numpy operations in the same
    order, without ``np.std``'s generic per-call overhead, which weighs on one-row predictions.
    """
    n_trees = per_tree.shape[0]
    deviation = per_tree - per_tree.sum(axis=0, keepdims=True) / n_trees
    np.square(deviation, out=deviation)
    spread: np.ndarray = np.sqrt(deviation.sum(axis=0) / n_trees)
    return spread
