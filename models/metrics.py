"""Point metrics of predicted against actual delays (batch, not rolling).

>>> y = np.array([1.0, 2.0, 3.0, 4.0])
>>> mae(y, y + 1), rmse(y, y + 1), r2(y, y)
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

import numpy as np


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 1 or t.size == 0:
        raise ValueError(f"need two non-empty 1-D arrays of one shape, got {t.shape}, {p.shape}")
    return t, p


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error, in the unit of ``y``."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error, in the unit of ``y``."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def bias(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean of ``pred - true``: positive when the predictions are too high."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(p - t))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination ``1 - SSE / SST``.

    When ``y_true`` is constant (SST = 0) it is 1.0 for a perfect prediction and 0.0 otherwise,
    as scikit-learn reports it.
    """
    t, p = _pair(y_true, y_pred)
    sse = float(np.sum((t - p) ** 2))
    sst = float(np.sum((t - t.mean()) ** 2))
    if sst == 0.0:
        return 1.0 if sse == 0.0 else 0.0
    return 1.0 - sse / sst
