"""Always-valid tests: a decision may be taken at any look, as often as one likes.

A fixed-sample test read every minute inflates its false decisions far past its alpha; these
tests bound the chance of *ever* being wrong by alpha, however often they are looked at, so a
controller may check them at every tick.

- :func:`difference_sequence`: a confidence sequence for the difference of two means (the ML
  arm's absolute error minus the heuristic's), from the normal-mixture boundary of the mixture
  SPRT (Robbins; Johari, Pekelis and Walsh's "always valid inference"), with the arms' sample
  variances plugged in: valid as the counts grow, as the central limit theorem is.
- :func:`ratio_test`: a sequential sample-ratio test, the Bayes factor of a beta-binomial mixture
  against the expected share (after Lindon and Malek's sequential SRM test). Rejects when the
  factor reaches 1 / alpha (Ville's inequality).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ArmErrors:
    """The absolute errors of one arm: how many, their mean and their sample variance."""

    n: int
    mean: float
    variance: float


@dataclass(frozen=True)
class DifferenceSequence:
    """The confidence sequence of ``a.mean - b.mean`` at one look, and the always-valid p-value
    of the hypothesis that the difference is ``null``."""

    estimate: float
    low: float
    high: float
    p_value: float
    null: float


def mixture_radius(variance: float, tau: float, alpha: float) -> float:
    """Half-width of the normal-mixture confidence sequence for an estimate of ``variance``,
    mixing over effects of scale ``tau``, at level ``alpha``.

    It shrinks as the variance does, but slower than a fixed-sample interval (the price of
    looking at will):

    >>> round(mixture_radius(0.01, 0.5, 0.05), 4), round(1.96 * 0.1, 4)
    (0.3102, 0.196)
    >>> mixture_radius(0.0, 0.5, 0.05)
    0.0
    """
    if variance <= 0.0:
        return 0.0
    total = variance + tau * tau
    log_term = math.log(1.0 / alpha) + 0.5 * math.log(total / variance)
    return math.sqrt(2.0 * variance * total / (tau * tau) * log_term)


def _log_mixture_ratio(shift: float, variance: float, tau: float) -> float:
    """log of the mixture likelihood ratio for an observed ``shift`` from the null."""
    total = variance + tau * tau
    return 0.5 * math.log(variance / total) + tau * tau * shift * shift / (2.0 * variance * total)


def difference_sequence(
    a: ArmErrors, b: ArmErrors, *, alpha: float, tau: float, null: float = 0.0
) -> DifferenceSequence | None:
    """The confidence sequence of ``a.mean - b.mean``; None until each arm has two values.

    >>> ml = ArmErrors(n=2000, mean=1.20, variance=1.0)
    >>> heuristic = ArmErrors(n=8000, mean=1.60, variance=1.5)
    >>> s = difference_sequence(ml, heuristic, alpha=0.05, tau=0.25, null=0.25)
    >>> round(s.estimate, 2), round(s.low, 3), round(s.high, 3), s.p_value < 1e-6
    (-0.4, -0.485, -0.315, True)
    >>> difference_sequence(ArmErrors(1, 1.0, 0.0), heuristic, alpha=0.05, tau=0.25) is None
    True
    """
    if a.n < 2 or b.n < 2:
        return None
    variance = a.variance / a.n + b.variance / b.n
    estimate = a.mean - b.mean
    radius = mixture_radius(variance, tau, alpha)
    if variance <= 0.0:
        p_value = 1.0 if estimate == null else 0.0
    else:
        p_value = min(1.0, math.exp(-_log_mixture_ratio(estimate - null, variance, tau)))
    return DifferenceSequence(estimate, estimate - radius, estimate + radius, p_value, null)


@dataclass(frozen=True)
class RatioTest:
    """A sequential sample-ratio test: ``observed`` of ``n`` fell in the first group when
    ``expected`` of them should; ``rejected`` once the Bayes factor reached 1 / alpha."""

    observed: int
    n: int
    expected: float
    bayes_factor: float
    p_value: float
    rejected: bool

    @property
    def share(self) -> float | None:
        return self.observed / self.n if self.n else None


PRIOR_CONCENTRATION = 100.0  # the beta prior's a + b: weight on shares near the expected one


def ratio_test(observed: int, n: int, expected: float, *, alpha: float) -> RatioTest:
    """Whether ``observed`` of ``n`` is compatible with a share of ``expected``, sequentially.

    >>> ratio_test(1000, 10000, 0.10, alpha=0.001).rejected
    False
    >>> ratio_test(1300, 10000, 0.10, alpha=0.001).rejected
    True
    >>> ratio_test(0, 0, 0.5, alpha=0.001).p_value
    1.0
    """
    if n == 0 or not 0.0 < expected < 1.0:
        return RatioTest(observed, n, expected, 1.0, 1.0, False)
    a, b = PRIOR_CONCENTRATION * expected, PRIOR_CONCENTRATION * (1.0 - expected)
    log_factor = (
        _log_beta(a + observed, b + n - observed)
        - _log_beta(a, b)
        - observed * math.log(expected)
        - (n - observed) * math.log1p(-expected)
    )
    factor = math.exp(min(log_factor, 700.0))
    return RatioTest(
        observed, n, expected, factor, min(1.0, 1.0 / factor), log_factor >= math.log(1.0 / alpha)
    )


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
