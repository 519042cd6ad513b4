"""What the prediction path needs of a served model, whichever kind won training."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Predictor(Protocol):
    """A fitted model with its version: delays (minutes) and confidences in [0, 1] per row.

    ``predict`` raises ValueError when ``X`` is not (rows, len(feature_names)) or holds a
    non-finite value; it is safe to call from several threads.
    """

    @property
    def version(self) -> str: ...

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    @property
    def estimator(self) -> Any:
        """The scikit-learn model it compiled (its own ``predict`` gives the same delays)."""

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def checked_features(X: np.ndarray, width: int) -> np.ndarray:
    """``X`` as an array, or ValueError when it is not (rows, width) or holds NaN or infinity."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != width:
        raise ValueError(f"expected (rows, {width}) features, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("features contain NaN or infinity")
    return X
