"""Population stability index of live values against a reference histogram.

    PSI = Σ over bins (q − p) · ln(q / p)

with p the reference share and q the live share of each bin (both floored at 1e-4 so that an
empty bin costs a bounded amount). Rules of thumb: below 0.1 stable, 0.1–0.25 a moderate shift,
above 0.25 a large one. For n live values drawn from the reference itself, n · PSI is about
chi-square with (bins − 1) degrees of freedom, so its noise is ~(bins − 1) / n.

A :class:`Reference` comes from a :class:`models.distribution.FeatureDistribution` (training
deciles) or from a sample, with two refinements over the stored bins:

- out-of-range bins below the training minimum and above the training maximum (reference share
  0), so that values the model never saw count even when the stored bins are open-ended — e.g.
  ``weather_is_default`` going from always 0 in training to 1 (the weather feed is down);
- 0/1 features (:meth:`Reference.binary`) are binned by level, the share of ones being the mean;
  decile cuts cannot separate the levels of a rare flag such as ``vehicle_stretcher`` (10 %).

>>> from models.distribution import describe_feature
>>> ref = Reference.binary(describe_feature("flag", np.array([0.0] * 9 + [1.0])))
>>> ref.fractions.round(2).tolist()
[0.0, 0.9, 0.1, 0.0]
>>> round(psi(bin_counts(np.array([0.0] * 7 + [1.0] * 3), ref), ref.fractions), 3)
0.27
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.distribution import FeatureDistribution, describe_feature

FLOOR = 1e-4


@dataclass(frozen=True, eq=False)
class Reference:
    """Bins and reference shares: bin 0 is (-inf, edges[0]), bin i is [edges[i-1], edges[i]),
    the last bin [edges[-1], +inf)."""

    edges: np.ndarray
    fractions: np.ndarray  # len(edges) + 1 shares summing to 1

    @classmethod
    def from_distribution(cls, d: FeatureDistribution) -> Reference:
        edges, shares = list(d.bin_edges), list(d.bin_fractions)
        if d.min < edges[0]:
            edges, shares = [d.min, *edges], [0.0, *shares]
        return cls._of([*edges, float(np.nextafter(d.max, np.inf))], [*shares, 0.0])

    @classmethod
    def binary(cls, d: FeatureDistribution) -> Reference:
        """Bins by level of a 0/1 feature: below 0, 0, 1, above 1."""
        if d.min < 0.0 or d.max > 1.0:
            raise ValueError(f"{d.name} is not a 0/1 feature (range {d.min}..{d.max})")
        ones = d.mean
        return cls._of([0.0, 0.5, float(np.nextafter(1.0, np.inf))], [0.0, 1.0 - ones, ones, 0.0])

    @classmethod
    def from_sample(cls, values: np.ndarray, name: str = "sample") -> Reference:
        """Decile bins of a sample (e.g. reference predictions), as for a training feature."""
        return cls.from_distribution(describe_feature(name, np.asarray(values, dtype=np.float64)))

    @classmethod
    def _of(cls, edges: list[float], shares: list[float]) -> Reference:
        fractions = np.clip(np.asarray(shares, dtype=np.float64), 0.0, None)
        return cls(np.asarray(edges, dtype=np.float64), fractions / fractions.sum())

    @property
    def bins(self) -> int:
        return len(self.fractions)

    def describe_bin(self, i: int) -> str:
        """Human-readable range of bin ``i``, e.g. ``[2.5, 4.1)``."""
        lo = "-inf" if i == 0 else f"{self.edges[i - 1]:.4g}"
        hi = "+inf" if i == len(self.edges) else f"{self.edges[i]:.4g}"
        return f"[{lo}, {hi})"


def bin_counts(values: np.ndarray, reference: Reference) -> np.ndarray:
    """How many of ``values`` fall in each bin of ``reference``."""
    index = np.searchsorted(reference.edges, np.asarray(values, dtype=np.float64), side="right")
    return np.bincount(index, minlength=reference.bins)


def psi(counts: np.ndarray, reference_fractions: np.ndarray) -> float:
    """PSI of live bin ``counts`` against reference shares; 0.0 when there are no counts."""
    total = counts.sum()
    if total == 0:
        return 0.0
    q = np.maximum(counts / total, FLOOR)
    p = np.maximum(reference_fractions, FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def largest_shift(
    counts: np.ndarray, reference: Reference, fractions: np.ndarray | None = None
) -> dict[str, float | str]:
    """The bin whose share moved most against ``fractions`` (default: the reference's own), as
    evidence for an alarm."""
    p = reference.fractions if fractions is None else fractions
    q = counts / max(counts.sum(), 1)
    i = int(np.argmax(np.abs(q - p)))
    return {
        "bin": reference.describe_bin(i),
        "live_share": float(q[i]),
        "reference_share": float(p[i]),
    }
