"""The second ML candidate: gradient-boosted regression trees over :mod:`models.features`.

scikit-learn's ``HistGradientBoostingRegressor``, fitted by default with the absolute error
(the operators' KPI is the MAE, and delays have a heavy right tail that a squared loss would
chase). Like the forest, it is compiled at construction (:mod:`models.compiled_boosting`) and
served by the same whole-batch numpy traversal, with scikit-learn's own predictions bit for bit.

A boosted model is one sum, not a vote of trees, so it has no spread of its own. The confidence
comes from a second, small boosting model, the *spread model*, fitted on the absolute residuals
``|y - point prediction|`` of the training rows with the absolute error too, so that it predicts
the typical (median) absolute error of a booking like this one:

    spread     = max(spread model's prediction, 0)            (minutes)
    confidence = 1 / (1 + spread / 5 min)      (see models.confidence)

Without a spread model, every booking gets one constant confidence given at construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from models.compiled_boosting import compile_boosting
from models.compiled_forest import CompiledForest
from models.confidence import confidence_from_spread
from models.inputs import ModelInputs

Loss = Literal["absolute_error", "squared_error", "quantile"]

# The compiled traversal costs, per call, a few numpy operations per level of the deepest tree;
# per booking, one step per tree and level, and per tree a leaf value to add, in arrays of
# trees × rows that must stay in the CPU's caches (in batches of 500, 1,500 trees of depth 1
# cost 5 times as much as 200 of depth 5). Measured on this project's 2-core machine with 20
# features, a point model at these bounds plus the default spread model: at most 53 µs for one
# booking and 16 µs per booking in batches of 500 (the defaults: about 48 µs and 7–10 µs; see
# python -m streams.tools.bench.boosting_timing).
MAX_ITER = 300
MAX_DEPTH = 6
MAX_TREE_LEVELS = 1_500  # max_iter × max_depth


@dataclass(frozen=True)
class BoostingConfig:
    """Hyper-parameters; ``__post_init__`` refuses a model the compiled path could not serve fast.

    ``max_depth`` bounds the cost of one booking, ``max_iter`` and ``max_iter × max_depth`` the
    cost per booking of a batch (see MAX_ITER, MAX_DEPTH, MAX_TREE_LEVELS). With
    ``early_stopping``, a random ``validation_fraction`` of the rows given to the fit is held
    out, and fitting stops after ``n_iter_no_change`` iterations without improving its loss.
    """

    max_iter: int = 200
    learning_rate: float = 0.15
    max_leaf_nodes: int = 15
    max_depth: int = 5
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    early_stopping: bool = True
    validation_fraction: float = 0.1
    n_iter_no_change: int = 10
    random_state: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= MAX_DEPTH:
            raise ValueError(f"max_depth must be in [1, {MAX_DEPTH}], not {self.max_depth}")
        if not 1 <= self.max_iter <= MAX_ITER:
            raise ValueError(f"max_iter must be in [1, {MAX_ITER}], not {self.max_iter}")
        if self.max_iter * self.max_depth > MAX_TREE_LEVELS:
            raise ValueError(
                f"max_iter × max_depth must be at most {MAX_TREE_LEVELS}, "
                f"not {self.max_iter} × {self.max_depth}"
            )


# The spread model: a coarse error level per kind of booking, cheap beside the point model.
SPREAD_CONFIG = BoostingConfig(
    max_iter=50, learning_rate=0.1, max_leaf_nodes=8, max_depth=3, min_samples_leaf=100
)


def fit_boosting(
    X: np.ndarray,
    y: np.ndarray,
    config: BoostingConfig,
    loss: Loss = "absolute_error",
    quantile: float | None = None,
) -> HistGradientBoostingRegressor:
    """A boosting model fitted on a model's inputs ``X`` (:mod:`models.inputs`) and delays
    ``y`` (minutes). ``quantile`` (in (0, 1)) is required with ``loss="quantile"`` and refused
    otherwise."""
    if loss not in ("absolute_error", "squared_error", "quantile"):
        raise ValueError(f"loss must be absolute_error, squared_error or quantile, not {loss!r}")
    if (loss == "quantile") != (quantile is not None):
        raise ValueError("quantile is given with loss='quantile', and only then")
    estimator = HistGradientBoostingRegressor(
        loss=loss,
        quantile=quantile,
        learning_rate=config.learning_rate,
        max_iter=config.max_iter,
        max_leaf_nodes=config.max_leaf_nodes,
        max_depth=config.max_depth,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        # Never inferred from a DataFrame's dtypes: the compiled path takes numbers only.
        categorical_features=None,
        early_stopping=config.early_stopping,
        validation_fraction=config.validation_fraction,
        n_iter_no_change=config.n_iter_no_change,
        random_state=config.random_state,
    )
    estimator.fit(X, y)
    return estimator


def fit_spread(
    X: np.ndarray,
    y: np.ndarray,
    point_predictions: np.ndarray,
    config: BoostingConfig = SPREAD_CONFIG,
) -> HistGradientBoostingRegressor:
    """The spread model: fitted on ``|y - point_predictions|`` of the rows ``X`` (the point
    model's training rows), with the absolute error, so it predicts a row's typical absolute
    error in minutes."""
    y = np.asarray(y, dtype=np.float64)
    point_predictions = np.asarray(point_predictions, dtype=np.float64)
    if y.shape != point_predictions.shape or y.shape != (len(X),):
        raise ValueError(
            f"expected one delay and one point prediction per row of X ({len(X)}), "
            f"got shapes {y.shape} and {point_predictions.shape}"
        )
    return fit_boosting(X, np.abs(y - point_predictions), config, loss="absolute_error")


class BoostingPredictor:
    """A fitted boosting model, with the version and the inputs it was trained with, and
    either its spread model or a constant ``confidence`` for every booking.

    :meth:`predict` takes the booking features (FEATURE_NAMES columns) and hands both models
    their own inputs (``inputs.transform``). Raises ValueError at construction when a model
    does not take ``len(inputs.names)`` features or cannot be compiled (see
    :mod:`models.compiled_boosting`), or when not exactly one of ``spread_estimator`` and
    ``confidence`` (in [0, 1]) is given; at :meth:`predict` when ``X`` has the wrong width or a
    non-finite value. Safe to call from several threads.
    """

    def __init__(
        self,
        estimator: HistGradientBoostingRegressor,
        version: str,
        inputs: ModelInputs | None = None,
        spread_estimator: HistGradientBoostingRegressor | None = None,
        *,
        confidence: float | None = None,
    ) -> None:
        inputs = inputs or ModelInputs()
        names = inputs.names
        if (spread_estimator is None) == (confidence is None):
            raise ValueError("give either a spread model or a constant confidence, not both")
        if confidence is not None and not 0.0 <= confidence <= 1.0:
            raise ValueError(f"the constant confidence must be in [0, 1], not {confidence}")
        self._compiled = _compiled(estimator, "boosting model", len(names))
        self._compiled_spread = (
            None
            if spread_estimator is None
            else _compiled(spread_estimator, "spread model", len(names))
        )
        self._estimator = estimator
        self._spread_estimator = spread_estimator
        self._confidence = confidence
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
    def estimator(self) -> HistGradientBoostingRegressor:
        return self._estimator

    @property
    def spread_estimator(self) -> HistGradientBoostingRegressor | None:
        return self._spread_estimator

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted delays (minutes) and confidences in [0, 1] for each row of ``X``.

        The delays are those of the estimator's own ``predict``, bit for bit.
        """
        X = self._checked(X)
        delays = self._compiled.predict(X)
        if self._compiled_spread is None:
            return delays, np.full(len(delays), self._confidence, dtype=np.float64)
        spread = np.maximum(self._compiled_spread.predict(X), 0.0)
        return delays, confidence_from_spread(spread)

    def _checked(self, X: np.ndarray) -> np.ndarray:
        X = self._inputs.transform(X)
        # Once, in the dtype both compiled models compare: neither converts it again.
        return np.ascontiguousarray(X, dtype=np.float64)


def _compiled(
    estimator: HistGradientBoostingRegressor, role: str, n_features: int
) -> CompiledForest:
    try:
        compiled = compile_boosting(estimator)
    except ValueError as exc:
        raise ValueError(f"{role}: {exc}") from exc
    if compiled.n_features != n_features:
        raise ValueError(f"the {role} takes {compiled.n_features} features, not {n_features}")
    return compiled
