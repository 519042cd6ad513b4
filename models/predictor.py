"""What the prediction path needs of a served model, whichever kind won training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from models.inputs import ModelInputs


class Predictor(Protocol):
    """A fitted model with its version: delays (minutes) and confidences in [0, 1] per row.

    ``predict`` takes the booking features (rows, len(FEATURE_NAMES)) and raises ValueError
    when ``X`` has another width or holds a non-finite value; it is safe to call from several
    threads. ``feature_names`` are the model's own inputs, which ``inputs.transform`` makes.
    """

    @property
    def version(self) -> str: ...

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    @property
    def inputs(self) -> ModelInputs: ...

    @property
    def estimator(self) -> Any:
        """The scikit-learn model it compiled: ``estimator.predict(inputs.transform(X))`` gives
        the same delays."""

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def checked_features(X: np.ndarray, width: int) -> np.ndarray:
    """``X`` as an array, or ValueError when it is not (rows, width) or holds NaN or infinity."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != width:
        raise ValueError(f"expected (rows, {width}) features, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("features contain NaN or infinity")
    return X
