"""The training pipeline: history in, a forest, a fitted heuristic and honest metrics out.

1. Features of every history row with its weather (:func:`models.features.feature_matrix`).
2. Rows sorted by scheduled pickup time (event time); the most recent ``holdout_fraction`` of
   rows is held out, so the metrics say how the model does on a future it has not seen.
3. Forest and heuristic are both fitted on the earlier rows only, then evaluated on the holdout.
   The returned model is the one evaluated (it is not refitted on all rows), so the metrics in its
   metadata describe exactly the model that is shipped.
4. The training distribution of each feature is recorded for drift monitoring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from models import heuristic
from models.distribution import FeatureDistribution, describe_features
from models.features import FEATURE_NAMES, feature_matrix
from models.forest import ForestConfig, ForestPredictor, fit_forest
from models.history import HistoryRow
from models.metrics import bias, mae, r2, rmse
from schemas.weather import Weather

# Progress callback: (stage, detail) — the CLI prints it, tests ignore it.
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class TrainingConfig:
    holdout_fraction: float = 0.2
    min_rows: int = 100
    forest: ForestConfig = field(default_factory=ForestConfig)

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 1:
            raise ValueError("holdout_fraction must be in (0, 1)")


@dataclass(frozen=True)
class Scores:
    """Metrics of one predictor on the holdout, in minutes (R² unitless)."""

    mae: float
    rmse: float
    r2: float
    bias: float

    @classmethod
    def of(cls, y_true: np.ndarray, y_pred: np.ndarray) -> Scores:
        return cls(
            mae=mae(y_true, y_pred),
            rmse=rmse(y_true, y_pred),
            r2=r2(y_true, y_pred),
            bias=bias(y_true, y_pred),
        )

    def to_dict(self) -> dict[str, float]:
        return {"mae": self.mae, "rmse": self.rmse, "r2": self.r2, "bias": self.bias}


@dataclass(frozen=True)
class TrainingResult:
    """Everything an artifact needs; the model version is assigned when it is saved."""

    estimator: RandomForestRegressor
    heuristic: heuristic.HeuristicParams
    model_scores: Scores
    heuristic_scores: Scores
    feature_names: tuple[str, ...]
    rows: int
    train_rows: int
    holdout_rows: int
    window_start: datetime  # earliest scheduled pickup in the history (UTC)
    window_end: datetime  # latest scheduled pickup in the history (UTC)
    holdout_start: datetime  # first scheduled pickup of the holdout (UTC)
    feature_distributions: dict[str, FeatureDistribution]
    config: TrainingConfig

    def summary(self) -> dict[str, Any]:
        """Counts, window and holdout metrics as plain JSON-able values."""
        return {
            "rows": self.rows,
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "holdout_start": self.holdout_start.isoformat(),
            "model": self.model_scores.to_dict(),
            "heuristic": self.heuristic_scores.to_dict(),
            "heuristic_version": self.heuristic.version,
        }


def _ignore(stage: str, detail: str) -> None:
    return None


def train(
    history: Sequence[HistoryRow],
    weathers: Sequence[Weather],
    config: TrainingConfig | None = None,
    progress: Progress = _ignore,
) -> TrainingResult:
    """Fit and evaluate the forest and the heuristic; ``weathers[i]`` is the weather of row i."""
    config = config or TrainingConfig()
    if len(history) != len(weathers):
        raise ValueError(f"{len(history)} history rows but {len(weathers)} weathers")
    if len(history) < config.min_rows:
        raise ValueError(f"need at least {config.min_rows} history rows, got {len(history)}")

    progress("features", f"{len(history)} rows")
    pickup_s = np.array([row.booking.scheduled_pickup_at.timestamp() for row in history])
    order = np.argsort(pickup_s, kind="stable")
    X = feature_matrix([history[i].booking for i in order], [weathers[i] for i in order])
    y = np.array([history[i].actual_delay_minutes for i in order], dtype=np.float64)
    pickup_s = pickup_s[order]

    split = len(y) - max(1, round(len(y) * config.holdout_fraction))
    X_train, y_train, X_hold, y_hold = X[:split], y[:split], X[split:], y[split:]

    progress("forest", f"fitting {config.forest.n_estimators} trees on {split} rows")
    estimator = fit_forest(X_train, y_train, config.forest)
    progress("heuristic", "fitting the rule coefficients")
    params = heuristic.fit_heuristic(X_train, y_train)

    progress("evaluate", f"{len(y_hold)} holdout rows")
    model_pred, _ = ForestPredictor(estimator, version="candidate").predict(X_hold)
    heuristic_pred, _ = heuristic.predict(params, X_hold)

    return TrainingResult(
        estimator=estimator,
        heuristic=params,
        model_scores=Scores.of(y_hold, model_pred),
        heuristic_scores=Scores.of(y_hold, heuristic_pred),
        feature_names=FEATURE_NAMES,
        rows=len(y),
        train_rows=split,
        holdout_rows=len(y_hold),
        window_start=datetime.fromtimestamp(pickup_s[0], UTC),
        window_end=datetime.fromtimestamp(pickup_s[-1], UTC),
        holdout_start=datetime.fromtimestamp(pickup_s[split], UTC),
        feature_distributions=describe_features(X_train, FEATURE_NAMES),
        config=config,
    )
