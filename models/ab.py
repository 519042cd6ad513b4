"""A/B analysis of the ML arm against the heuristic, from the arms' :class:`MetricSums`.

The outcome metric is the mean absolute error of each arm, by intention to treat (the arm a
booking was assigned to, fallbacks included). Per arm, the sums give the mean of |error| and,
because |e|² = e², its sample variance: (Σe² − (Σ|e|)²/n) / (n − 1).

Method, chosen for these data:

- Welch's unequal-variance t statistic for the difference of the two means (ML − heuristic),
  with Welch–Satterthwaite degrees of freedom; two-sided p-value and 95 % confidence interval
  (``1 − alpha``). The arms are independent samples (each booking is in one arm) whose variances
  differ, and |error| is skewed, so the test relies on the central limit theorem; the minimum
  sample per arm (default 200) keeps it in the regime where that holds, and where t and normal
  quantiles agree to within 1 %. Each arm's MAE gets a t interval with n − 1 degrees of freedom.
- Sample-ratio mismatch: a chi-square goodness-of-fit test (1 degree of freedom) of the observed
  ML / heuristic counts against the expected ML share, separately for the assigned bookings (from
  the predictions) and for the bookings whose actual arrived (the outcomes). A mismatch
  (p < ``srm_alpha``, default 0.001) means the arms are not comparable populations: routing or
  the join is broken, and no verdict is given.

Verdict: ``ml_better`` or ``heuristic_better`` when the difference is significant at ``alpha``,
both arms have at least ``min_samples`` outcomes and no sample-ratio mismatch is flagged;
otherwise ``inconclusive``, with the reasons.

>>> import numpy as np
>>> from models.rolling import MetricSums
>>> rng = np.random.default_rng(0)
>>> ml = MetricSums.from_arrays(rng.normal(0, 2, 1000), np.full(1000, 5.0))
>>> heuristic = MetricSums.from_arrays(rng.normal(0, 3, 1000), np.full(1000, 5.0))
>>> result = compare_arms(ml, heuristic, expected_ml_share=0.5)
>>> result.verdict, round(result.difference, 2), result.p_value < 1e-6
(<Verdict.ML_BETTER: 'ml_better'>, -0.92, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from scipy import stats

from models.rolling import MetricSums

DEFAULT_MIN_SAMPLES = 200
DEFAULT_ALPHA = 0.05
DEFAULT_SRM_ALPHA = 0.001


class Verdict(StrEnum):
    ML_BETTER = "ml_better"
    HEURISTIC_BETTER = "heuristic_better"
    INCONCLUSIVE = "inconclusive"


class ArmCounts(NamedTuple):
    """Bookings per arm, e.g. the predictions of each arm in the analysis window."""

    ml: int
    heuristic: int


@dataclass(frozen=True)
class ArmEstimate:
    """One arm's MAE (minutes) with its confidence interval; ``None`` where undefined."""

    n: int
    mae: float | None
    ci_low: float | None
    ci_high: float | None
    std_abs_error: float | None  # sample standard deviation of |error|
    standard_error: float | None


@dataclass(frozen=True)
class SampleRatioCheck:
    """Chi-square goodness of fit of the observed arm counts against the expected split."""

    population: str  # "assigned" or "with_actual"
    observed_ml: int
    observed_heuristic: int
    expected_ml_share: float
    chi_square: float | None  # None when the test is undefined (no bookings, share 0 or 1)
    p_value: float | None
    flagged: bool


@dataclass(frozen=True)
class ABResult:
    ml: ArmEstimate
    heuristic: ArmEstimate
    difference: float | None  # MAE(ML) − MAE(heuristic), minutes: negative when ML is better
    difference_ci_low: float | None
    difference_ci_high: float | None
    t_statistic: float | None
    degrees_of_freedom: float | None
    p_value: float | None  # two-sided
    srm_assigned: SampleRatioCheck | None  # None when no assigned counts were given
    srm_with_actual: SampleRatioCheck
    verdict: Verdict
    reasons: tuple[str, ...]  # why the verdict is inconclusive; empty otherwise
    min_samples: int
    alpha: float
    srm_alpha: float
    method: str = "welch_t"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe values (floats are finite or None)."""
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["reasons"] = list(self.reasons)
        return data

    def render_text(self) -> str:
        """A short report for a human (CLI, alert message)."""
        confidence = round(100 * (1 - self.alpha))

        def arm_line(name: str, arm: ArmEstimate) -> str:
            if arm.mae is None:
                return f"  {name:<10} n={arm.n:<8} MAE  –"
            interval = "" if arm.ci_low is None else f"  [{arm.ci_low:.2f}, {arm.ci_high:.2f}]"
            return f"  {name:<10} n={arm.n:<8} MAE {arm.mae:6.2f} min{interval}"

        lines = [
            f"A/B: ML vs heuristic — verdict: {self.verdict.value}",
            arm_line("ML", self.ml),
            arm_line("heuristic", self.heuristic),
        ]
        if self.difference is not None:
            interval = (
                ""
                if self.difference_ci_low is None
                else f", {confidence} % CI [{self.difference_ci_low:+.2f}, "
                f"{self.difference_ci_high:+.2f}]"
            )
            p = "–" if self.p_value is None else f"{self.p_value:.3g}"
            lines.append(f"  difference ML − heuristic {self.difference:+.2f} min{interval}, p={p}")
        for check in (self.srm_assigned, self.srm_with_actual):
            if check is None:
                continue
            p = "–" if check.p_value is None else f"{check.p_value:.3g}"
            state = "MISMATCH" if check.flagged else "ok"
            lines.append(
                f"  sample ratio ({check.population}): ML {check.observed_ml} / heuristic "
                f"{check.observed_heuristic}, expected ML share "
                f"{check.expected_ml_share:.1%}, p={p} {state}"
            )
        lines.extend(f"  inconclusive: {reason}" for reason in self.reasons)
        return "\n".join(lines)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def arm_estimate(sums: MetricSums, alpha: float = DEFAULT_ALPHA) -> ArmEstimate:
    """MAE of one arm with a two-sided ``1 − alpha`` t interval (n − 1 degrees of freedom)."""
    if sums.n == 0:
        return ArmEstimate(0, None, None, None, None, None)
    mae = float(sums.sum_abs_error / sums.n)
    if sums.n < 2:
        return ArmEstimate(sums.n, mae, None, None, None, None)
    # Exact in rationals, so a constant |error| gives exactly zero variance.
    variance = float((sums.sum_sq_error - sums.sum_abs_error**2 / sums.n) / (sums.n - 1))
    std = math.sqrt(max(variance, 0.0))
    se = std / math.sqrt(sums.n)
    half = float(stats.t.ppf(1 - alpha / 2, sums.n - 1)) * se
    return ArmEstimate(sums.n, mae, mae - half, mae + half, std, se)


def sample_ratio_check(
    population: str,
    observed_ml: int,
    observed_heuristic: int,
    expected_ml_share: float,
    srm_alpha: float = DEFAULT_SRM_ALPHA,
) -> SampleRatioCheck:
    """Chi-square goodness of fit (1 degree of freedom) of the counts against the split."""
    if not 0 <= expected_ml_share <= 1:
        raise ValueError("expected_ml_share must be in [0, 1]")
    total = observed_ml + observed_heuristic
    if total == 0 or expected_ml_share in (0.0, 1.0):
        # No test: with nothing expected in one arm, any booking in it is a mismatch by itself.
        wrong = observed_ml if expected_ml_share == 0.0 else observed_heuristic
        flagged = total > 0 and expected_ml_share in (0.0, 1.0) and wrong > 0
        return SampleRatioCheck(
            population, observed_ml, observed_heuristic, expected_ml_share, None, None, flagged
        )
    expected = (total * expected_ml_share, total * (1 - expected_ml_share))
    chi_square = sum(
        (o - e) ** 2 / e for o, e in zip((observed_ml, observed_heuristic), expected, strict=True)
    )
    p_value = float(stats.chi2.sf(chi_square, 1))
    return SampleRatioCheck(
        population,
        observed_ml,
        observed_heuristic,
        expected_ml_share,
        float(chi_square),
        p_value,
        p_value < srm_alpha,
    )


def compare_arms(
    ml: MetricSums,
    heuristic: MetricSums,
    *,
    expected_ml_share: float,
    assigned: ArmCounts | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    alpha: float = DEFAULT_ALPHA,
    srm_alpha: float = DEFAULT_SRM_ALPHA,
) -> ABResult:
    """The A/B result of the ML arm against the heuristic over one window.

    ``ml`` and ``heuristic`` are the arms' outcome sums (intention to treat);
    ``expected_ml_share`` is the share of bookings routed to ML in the window (the traffic
    percentage / 100, or its booking-weighted mean when it changed); ``assigned`` are the
    predictions per arm in the same window, for the sample-ratio check on assignment.
    """
    if min_samples < 2:
        raise ValueError("min_samples must be at least 2")
    ml_arm, h_arm = arm_estimate(ml, alpha), arm_estimate(heuristic, alpha)
    srm_actual = sample_ratio_check("with_actual", ml.n, heuristic.n, expected_ml_share, srm_alpha)
    srm_assigned = (
        None
        if assigned is None
        else sample_ratio_check(
            "assigned", assigned.ml, assigned.heuristic, expected_ml_share, srm_alpha
        )
    )

    difference = ci_low = ci_high = t_stat = dof = p_value = None
    if ml_arm.mae is not None and h_arm.mae is not None:
        difference = ml_arm.mae - h_arm.mae
    if (
        difference is not None
        and ml_arm.standard_error is not None
        and h_arm.standard_error is not None
    ):
        var_ml, var_h = ml_arm.standard_error**2, h_arm.standard_error**2
        se = math.sqrt(var_ml + var_h)
        if se > 0:
            dof = (var_ml + var_h) ** 2 / (var_ml**2 / (ml.n - 1) + var_h**2 / (heuristic.n - 1))
            t_stat = difference / se
            p_value = float(2 * stats.t.sf(abs(t_stat), dof))
            half = float(stats.t.ppf(1 - alpha / 2, dof)) * se
            ci_low, ci_high = difference - half, difference + half
        else:  # both arms have a constant |error|: the difference is known exactly
            p_value = 1.0 if difference == 0 else 0.0
            ci_low = ci_high = difference

    reasons: list[str] = []
    for name, n in (("ML", ml.n), ("heuristic", heuristic.n)):
        if n < min_samples:
            reasons.append(f"{name} arm has {n} outcomes, fewer than {min_samples}")
    for check in (srm_assigned, srm_actual):
        if check is not None and check.flagged:
            reasons.append(f"sample-ratio mismatch in {check.population} bookings")
    if p_value is None:
        reasons.append("the difference cannot be tested")
    elif p_value >= alpha:
        reasons.append(f"the difference is not significant (p={p_value:.3g} >= {alpha})")

    if reasons or difference is None or difference == 0:
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.ML_BETTER if difference < 0 else Verdict.HEURISTIC_BETTER
    return ABResult(
        ml=ml_arm,
        heuristic=h_arm,
        difference=difference,
        difference_ci_low=ci_low,
        difference_ci_high=ci_high,
        t_statistic=None if t_stat is None else _finite(t_stat),
        degrees_of_freedom=None if dof is None else _finite(dof),
        p_value=p_value,
        srm_assigned=srm_assigned,
        srm_with_actual=srm_actual,
        verdict=verdict,
        reasons=tuple(reasons),
        min_samples=min_samples,
        alpha=alpha,
        srm_alpha=srm_alpha,
    )
