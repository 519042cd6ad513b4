"""The training distribution of each feature, kept in a model's metadata for drift monitoring.

For each feature: count, mean, standard deviation, min, max, a few quantiles, and a histogram
whose bins are cut at the training deciles (duplicates removed, so a 0/1 feature gets 3 bins).
Bins are open at both ends, so live values outside the training range still fall in a bin:

    bin 0: (-inf, edges[0])   bin i: [edges[i-1], edges[i])   last bin: [edges[-1], +inf)

:func:`bin_fractions` bins live values the same way, e.g. for a population stability index.

>>> d = describe_feature("x", np.array([0.0, 0.0, 1.0, 1.0]))
>>> d.bin_edges, d.bin_fractions
((0.0, 1.0), (0.0, 0.5, 0.5))
>>> bin_fractions(np.array([-1.0, 0.5, 3.0, 3.0]), d.bin_edges).tolist()
[0.25, 0.25, 0.5]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
BIN_CUTS: tuple[float, ...] = tuple(i / 10 for i in range(1, 10))


@dataclass(frozen=True)
class FeatureDistribution:
    name: str
    count: int
    mean: float
    std: float
    min: float
    max: float
    quantiles: dict[str, float]  # "p01" → value at the 1 % quantile, …
    bin_edges: tuple[float, ...]
    bin_fractions: tuple[float, ...]  # len(bin_edges) + 1 fractions summing to 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bin_edges"] = list(self.bin_edges)
        data["bin_fractions"] = list(self.bin_fractions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureDistribution:
        return cls(
            name=str(data["name"]),
            count=int(data["count"]),
            mean=float(data["mean"]),
            std=float(data["std"]),
            min=float(data["min"]),
            max=float(data["max"]),
            quantiles={str(k): float(v) for k, v in data["quantiles"].items()},
            bin_edges=tuple(float(v) for v in data["bin_edges"]),
            bin_fractions=tuple(float(v) for v in data["bin_fractions"]),
        )


def bin_fractions(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The fraction of ``values`` in each bin defined by ``edges`` (see the module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right"),
        minlength=len(edges) + 1,
    )
    return counts / max(values.size, 1)


def describe_feature(name: str, values: np.ndarray) -> FeatureDistribution:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError(f"no values for feature {name}")
    quantiles = np.quantile(values, QUANTILES)
    # Cut at observed values so that discrete features get bins at their levels.
    edges = tuple(np.unique(np.quantile(values, BIN_CUTS, method="lower")).tolist())
    return FeatureDistribution(
        name=name,
        count=int(values.size),
        mean=float(values.mean()),
        std=float(values.std()),
        min=float(values.min()),
        max=float(values.max()),
        quantiles={
            f"p{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, quantiles, strict=True)
        },
        bin_edges=edges,
        bin_fractions=tuple(bin_fractions(values, edges).tolist()),
    )


def describe_features(X: np.ndarray, names: Sequence[str]) -> dict[str, FeatureDistribution]:
    """The distribution of every column of ``X``, keyed by its name."""
    if X.shape[1] != len(names):
        raise ValueError(f"{X.shape[1]} columns but {len(names)} names")
    return {name: describe_feature(name, X[:, i]) for i, name in enumerate(names)}
