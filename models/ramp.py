"""The guarded ramp's decision from one step's evidence: advance, hold, wait, roll back, complete.

Pure: the controller (:mod:`streams.operate.ramp`) gathers :class:`StepEvidence` from
PostgreSQL and acts on the :class:`Decision`. Checks come in three kinds:

- **guardrails** roll back, to the previous step (or 0 % from the first), or to 0 % when severe:
  sample-ratio mismatch of assignments (severe: routing itself is broken), sample-ratio mismatch
  of label arrival (one arm's actuals go missing more than the other's), ML worse than the
  heuristic beyond the margin (the mixture SPRT's confidence sequence), the model's error rate,
  a fallback storm, p99 latency, and P90 coverage out of its band;
- **signals** hold the current step: a recent feature-drift alarm, label coverage below target;
- **gates** must all be met to advance: the hold time, the minimum outcomes per arm, label
  arrival rates within the tolerated gap of each other, and the confidence sequence showing ML
  not worse than the heuristic by the margin.

At the last step (100 % in the usual schedule) there is no heuristic arm left to compare with:
the ramp completes once the hold time and ML's minimum outcomes are met with every guardrail
that still applies in band.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from models.sequential import ArmErrors, difference_sequence, ratio_test

MIN_ARM_N = 30  # fewer outcomes than this and a plug-in variance is not to be trusted
MIN_RATE_N = 50  # bookings before a rate (errors, fallbacks, labels) is judged
MIN_LATENCY_N = 100


class RampConfigError(ValueError):
    """A ramp's configuration that cannot work; the message says what is expected."""


@dataclass(frozen=True)
class RampConfig:
    steps: tuple[float, ...]
    min_outcomes: int
    hold_s: float
    margin: float = 0.25  # minutes of MAE by which ML may trail the heuristic and still advance
    alpha: float = 0.05  # of the confidence sequence
    tau: float = 0.25  # scale of the differences the mixture is tuned for, in minutes
    srm_alpha: float = 0.001
    label_wait_s: float = 1800.0  # an actual is due this long after the scheduled pickup
    label_target: float = 0.8  # share of due actuals that must have arrived, per arm
    label_gap: float = 0.05  # largest difference of the arms' arrival rates tolerated
    max_error_rate: float = 0.02
    severe_error_rate: float = 0.2
    max_fallback_share: float = 0.1
    severe_fallback_share: float = 0.5
    max_p99_ms: float = 1000.0
    severe_p99_ms: float = 3000.0
    latency_window_s: float = 60.0  # p99 over each of the last two such windows, ML's bookings
    coverage_low: float = 0.85  # as the interval_coverage alert's band by default
    coverage_high: float = 0.95
    coverage_min_n: int = 729  # models.alert_rules.min_coverage_window of that band
    # A drift alarm holds the ramp this long after it was raised: the feature-drift monitor
    # raises one per feature at most every 30 min while the drift lasts, so no less than that.
    drift_quiet_s: float = 1800.0
    settle_s: float = 2.0  # evidence of a step starts this long after its flag change

    def __post_init__(self) -> None:
        steps = self.steps
        if not steps:
            raise RampConfigError("steps: expected at least one percentage, such as 10,25,50,100")
        if any(not 0 < s <= 100 for s in steps):
            raise RampConfigError(f"steps: expected percentages in (0, 100], got {list(steps)}")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise RampConfigError(f"steps: expected increasing percentages, got {list(steps)}")
        if self.min_outcomes < MIN_ARM_N:
            raise RampConfigError(f"min outcomes: expected at least {MIN_ARM_N}")
        if self.latency_window_s <= 0:
            raise RampConfigError("latency window: expected a positive duration")
        if not 0 <= self.coverage_low < self.coverage_high <= 1:
            raise RampConfigError(
                f"coverage band: expected 0 <= low < high <= 1, got {self.coverage_low:g}, "
                f"{self.coverage_high:g}"
            )
        if self.hold_s < 0 or self.margin < 0 or self.settle_s < 0 or self.label_wait_s < 0:
            raise RampConfigError("hold, margin, settle and label wait must not be negative")
        if not 0 < self.alpha < 1 or not 0 < self.srm_alpha < 1 or self.tau <= 0:
            raise RampConfigError("alpha and srm alpha must be in (0, 1) and tau positive")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = list(self.steps)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RampConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["steps"] = tuple(float(s) for s in values["steps"])
        return cls(**values)


@dataclass(frozen=True)
class StepEvidence:
    """What happened since the step began (plus its settle time), from the stored history."""

    step_age_s: float
    assigned_ml: int
    assigned_heuristic: int
    expected_ml_share: float
    errors_ml: ArmErrors
    errors_heuristic: ArmErrors
    due_ml: int  # predictions whose actual is due
    due_heuristic: int
    labelled_ml: int  # of those, the ones whose actual arrived
    labelled_heuristic: int
    model_errors: int  # bookings assigned to ML the model failed on
    fallbacks: int  # bookings assigned to ML served by the heuristic, for any reason
    latency_n: int  # ML's predictions in the latest latency window
    latency_p99_ms: float | None
    latency_before_n: int  # and in the window before it
    latency_before_p99_ms: float | None
    coverage_n: int  # ML outcomes with a P90
    coverage_within: int
    drift_age_s: float | None  # since the newest feature-drift alarm; None when none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Action(StrEnum):
    ADVANCE = "advance"
    COMPLETE = "complete"
    ROLLBACK = "rollback"
    HOLD = "hold"  # a signal stops the ramp where it is
    WAIT = "wait"  # a gate is not met yet


class Kind(StrEnum):
    GUARDRAIL = "guardrail"
    SIGNAL = "signal"
    GATE = "gate"


@dataclass(frozen=True)
class Check:
    name: str
    kind: Kind
    ok: bool
    detail: str
    severe: bool = False
    value: float | None = None
    judged: bool = True  # False: too little evidence yet, or no heuristic arm to compare with


@dataclass(frozen=True)
class Decision:
    action: Action
    from_percentage: float
    to_percentage: float
    to_index: int  # -1: 0 %, ML off the ramp
    reason: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def moves(self) -> bool:
        return self.action in (Action.ADVANCE, Action.ROLLBACK, Action.COMPLETE)

    @property
    def blockers(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["next_step_allowed"] = self.action in (Action.ADVANCE, Action.COMPLETE)
        return data


def percentage_at(config: RampConfig, index: int) -> float:
    return 0.0 if index < 0 else config.steps[index]


def _bernoulli(n: int, rate: float) -> ArmErrors:
    """A share as the mean of n ones and zeros, with their sample variance."""
    variance = rate * (1.0 - rate) * n / (n - 1) if n > 1 else 0.0
    return ArmErrors(n, rate, variance)


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def guardrails(config: RampConfig, pct: float, ev: StepEvidence) -> list[Check]:
    checks: list[Check] = []
    compared = 0 < pct < 100
    assigned = ev.assigned_ml + ev.assigned_heuristic
    if 0 < ev.expected_ml_share < 1 and assigned:
        srm = ratio_test(ev.assigned_ml, assigned, ev.expected_ml_share, alpha=config.srm_alpha)
        checks.append(
            Check(
                "assignment_ratio",
                Kind.GUARDRAIL,
                not srm.rejected,
                f"ML was assigned {ev.assigned_ml:,} of {assigned:,} bookings "
                f"({_pct(srm.share or 0.0)}, expected {_pct(ev.expected_ml_share)}; sequential "
                f"sample-ratio test p = {srm.p_value:.2g}, alpha {config.srm_alpha:g})",
                severe=True,
                value=srm.p_value,
            )
        )
    if compared and ev.due_ml >= MIN_RATE_N and ev.due_heuristic >= MIN_RATE_N:
        # Two proportions, sequentially: the confidence sequence of the heuristic's arrival
        # rate minus ML's; a breach when it lies wholly beyond the tolerated gap either way.
        rate_ml, rate_h = ev.labelled_ml / ev.due_ml, ev.labelled_heuristic / ev.due_heuristic
        arrival = difference_sequence(
            _bernoulli(ev.due_heuristic, rate_h),
            _bernoulli(ev.due_ml, rate_ml),
            alpha=config.srm_alpha,
            tau=config.label_gap,
        )
        if arrival is not None:
            beyond = arrival.low > config.label_gap or arrival.high < -config.label_gap
            checks.append(
                Check(
                    "label_arrival_ratio",
                    Kind.GUARDRAIL,
                    not beyond,
                    f"actuals arrived for {_pct(rate_ml)} of ML's {ev.due_ml:,} due bookings and "
                    f"{_pct(rate_h)} of the heuristic's {ev.due_heuristic:,} (gap "
                    f"{arrival.estimate * 100:+.1f} points, {100 * (1 - config.srm_alpha):g} % "
                    f"confidence sequence [{arrival.low * 100:+.1f}, {arrival.high * 100:+.1f}], "
                    f"tolerated {config.label_gap * 100:g})",
                    value=arrival.estimate,
                )
            )
    if compared and min(ev.errors_ml.n, ev.errors_heuristic.n) >= MIN_ARM_N:
        seq = difference_sequence(
            ev.errors_ml,
            ev.errors_heuristic,
            alpha=config.alpha,
            tau=config.tau,
            null=config.margin,
        )
        if seq is not None:
            checks.append(
                Check(
                    "ml_worse",
                    Kind.GUARDRAIL,
                    seq.low <= config.margin,
                    f"ML's MAE {ev.errors_ml.mean:.2f} min against the heuristic's "
                    f"{ev.errors_heuristic.mean:.2f}: difference {seq.estimate:+.2f}, "
                    f"{100 * (1 - config.alpha):g} % confidence sequence [{seq.low:+.2f}, "
                    f"{seq.high:+.2f}] (mixture SPRT, margin {config.margin:g} min) on "
                    f"{ev.errors_ml.n:,} and {ev.errors_heuristic.n:,} outcomes",
                    value=seq.low,
                )
            )
    routed = ev.assigned_ml
    if routed >= MIN_RATE_N:
        for name, count, limit, severe, what in (
            ("model_error_rate", ev.model_errors, config.max_error_rate,
             config.severe_error_rate, "the model failed on"),
            ("fallback_storm", ev.fallbacks, config.max_fallback_share,
             config.severe_fallback_share, "the heuristic served"),
        ):  # fmt: skip
            share = count / routed
            checks.append(
                Check(
                    name,
                    Kind.GUARDRAIL,
                    share <= limit,
                    f"{what} {count:,} of {routed:,} bookings assigned to ML ({_pct(share)}; "
                    f"limit {_pct(limit)}, severe above {_pct(severe)})",
                    severe=share > severe,
                    value=share,
                )
            )
    windows = ((ev.latency_n, ev.latency_p99_ms), (ev.latency_before_n, ev.latency_before_p99_ms))
    if all(n >= MIN_LATENCY_N and p99 is not None for n, p99 in windows):
        # Both windows over the limit: a breach that lasts, not a worker's warm-up or restart.
        now_p99, before_p99 = (float(p99 or 0.0) for _, p99 in windows)
        lasting = min(now_p99, before_p99)
        checks.append(
            Check(
                "latency_p99",
                Kind.GUARDRAIL,
                lasting <= config.max_p99_ms,
                f"p99 latency of ML's bookings {now_p99:,.0f} ms over the last "
                f"{config.latency_window_s:g} s ({ev.latency_n:,} predictions) and "
                f"{before_p99:,.0f} ms over the {config.latency_window_s:g} s before (limit "
                f"{config.max_p99_ms:,.0f} ms in both, severe above {config.severe_p99_ms:,.0f})",
                severe=lasting > config.severe_p99_ms,
                value=lasting,
            )
        )
    if ev.coverage_n >= config.coverage_min_n:
        share = ev.coverage_within / ev.coverage_n
        checks.append(
            Check(
                "interval_coverage",
                Kind.GUARDRAIL,
                config.coverage_low <= share <= config.coverage_high,
                f"ML's P90 held {_pct(share)} of {ev.coverage_n:,} actual delays (band "
                f"{_pct(config.coverage_low)}-{_pct(config.coverage_high)})",
                value=share,
            )
        )
    return checks + _not_judged(config, pct, ev, {c.name for c in checks})


def _not_judged(config: RampConfig, pct: float, ev: StepEvidence, judged: set[str]) -> list[Check]:
    """The guardrails the evidence cannot judge yet, each saying what it waits for: a status
    that lists only the checks made would hide that a guardrail is not watching."""
    compared = 0 < pct < 100
    waits = {
        "assignment_ratio": "no split to check" if not compared else "no bookings yet",
        "label_arrival_ratio": f"{ev.due_ml:,} ML and {ev.due_heuristic:,} heuristic bookings "
        f"with their actual due, {MIN_RATE_N} per arm needed",
        "ml_worse": f"{ev.errors_ml.n:,} ML and {ev.errors_heuristic.n:,} heuristic outcomes, "
        f"{MIN_ARM_N} per arm needed",
        "model_error_rate": f"{ev.assigned_ml:,} bookings assigned to ML, {MIN_RATE_N} needed",
        "fallback_storm": f"{ev.assigned_ml:,} bookings assigned to ML, {MIN_RATE_N} needed",
        "latency_p99": f"{ev.latency_n:,} and {ev.latency_before_n:,} ML predictions in the last "
        f"two {config.latency_window_s:g} s windows, {MIN_LATENCY_N} in each needed",
        "interval_coverage": f"{ev.coverage_n:,} ML outcomes with a P90, "
        f"{config.coverage_min_n:,} needed",
    }
    if not compared:
        for name in ("label_arrival_ratio", "ml_worse"):
            waits[name] = "no heuristic arm to compare with"
    return [
        Check(name, Kind.GUARDRAIL, True, f"not judged: {why}", judged=False)
        for name, why in waits.items()
        if name not in judged
    ]


def signals(config: RampConfig, pct: float, ev: StepEvidence) -> list[Check]:
    checks: list[Check] = []
    drifting = ev.drift_age_s is not None and ev.drift_age_s < config.drift_quiet_s
    checks.append(
        Check(
            "feature_drift",
            Kind.SIGNAL,
            not drifting,
            "no feature-drift alarm"
            if ev.drift_age_s is None
            else f"the newest feature-drift alarm was raised {ev.drift_age_s:,.0f} s ago "
            f"(the ramp holds for {config.drift_quiet_s:,.0f} s after one)",
            value=ev.drift_age_s,
        )
    )
    arms = [("ML", ev.due_ml, ev.labelled_ml)]
    if pct < 100:
        arms.append(("heuristic", ev.due_heuristic, ev.labelled_heuristic))
    for arm, due, labelled in arms:
        if due >= MIN_RATE_N:
            share = labelled / due
            checks.append(
                Check(
                    f"label_coverage_{arm.lower()}",
                    Kind.SIGNAL,
                    share >= config.label_target,
                    f"{arm}'s actuals arrived for {_pct(share)} of {due:,} bookings due "
                    f"{config.label_wait_s:,.0f} s after pickup (target "
                    f"{_pct(config.label_target)})",
                    value=share,
                )
            )
    return checks


def gates(config: RampConfig, pct: float, ev: StepEvidence) -> list[Check]:
    checks = [
        Check(
            "hold_time",
            Kind.GATE,
            ev.step_age_s >= config.hold_s,
            f"{ev.step_age_s:,.0f} s at {pct:g} % of the {config.hold_s:,.0f} s hold",
            value=ev.step_age_s,
        )
    ]
    arms = [("ML", ev.errors_ml.n)]
    if pct < 100:
        arms.append(("heuristic", ev.errors_heuristic.n))
    for arm, n in arms:
        checks.append(
            Check(
                f"min_outcomes_{arm.lower()}",
                Kind.GATE,
                n >= config.min_outcomes,
                f"{n:,} of {config.min_outcomes:,} {arm} outcomes",
                value=float(n),
            )
        )
    if pct < 100 and ev.due_ml and ev.due_heuristic:
        # Not yet a significant skew (the guardrail's business), but no step up on labels that
        # look skewed: the arms' MAEs would compare different populations.
        gap = ev.labelled_heuristic / ev.due_heuristic - ev.labelled_ml / ev.due_ml
        checks.append(
            Check(
                "label_balance",
                Kind.GATE,
                abs(gap) <= config.label_gap,
                f"the arms' label arrival rates {gap * 100:+.1f} points apart (tolerated "
                f"{config.label_gap * 100:g})",
                value=gap,
            )
        )
    if pct < 100:
        seq = difference_sequence(
            ev.errors_ml, ev.errors_heuristic, alpha=config.alpha, tau=config.tau
        )
        if seq is None:
            detail, ok, value = "too few outcomes to compare ML with the heuristic", False, None
        else:
            ok, value = seq.high < config.margin, seq.high
            detail = (
                f"ML's MAE minus the heuristic's {seq.estimate:+.2f} min, "
                f"{100 * (1 - config.alpha):g} % confidence sequence [{seq.low:+.2f}, "
                f"{seq.high:+.2f}] (mixture SPRT) {'below' if ok else 'not yet below'} the "
                f"{config.margin:g} min margin"
            )
        checks.append(Check("not_worse", Kind.GATE, ok, detail, value=value))
    return checks


def decide(config: RampConfig, index: int, ev: StepEvidence) -> Decision:
    """What the ramp at step ``index`` should do now, with every check behind it."""
    pct = percentage_at(config, index)
    checks = guardrails(config, pct, ev) + signals(config, pct, ev) + gates(config, pct, ev)
    breaches = [c for c in checks if c.kind is Kind.GUARDRAIL and not c.ok]
    if breaches:
        severe = any(c.severe for c in breaches)
        to_index = -1 if severe else index - 1
        to = percentage_at(config, to_index)
        what = "severe breach" if severe else "guardrail"
        names = ", ".join(c.name for c in breaches)
        return Decision(
            Action.ROLLBACK,
            pct,
            to,
            to_index,
            f"Rolled ML back from {pct:g} % to {to:g} % ({what}: {names}): "
            + "; ".join(c.detail for c in breaches)
            + ".",
            tuple(checks),
        )
    held = [c for c in checks if c.kind is Kind.SIGNAL and not c.ok]
    if held:
        return Decision(
            Action.HOLD,
            pct,
            pct,
            index,
            f"Holding ML at {pct:g} %: " + "; ".join(c.detail for c in held) + ".",
            tuple(checks),
        )
    waiting = [c for c in checks if c.kind is Kind.GATE and not c.ok]
    if waiting:
        return Decision(
            Action.WAIT,
            pct,
            pct,
            index,
            f"Waiting at {pct:g} %: " + "; ".join(c.detail for c in waiting) + ".",
            tuple(checks),
        )
    evidence = "; ".join(c.detail for c in checks if c.kind is Kind.GATE and c.name == "not_worse")
    if index == len(config.steps) - 1:
        return Decision(
            Action.COMPLETE,
            pct,
            pct,
            index,
            f"Ramp complete at {pct:g} %: {ev.errors_ml.n:,} ML outcomes over "
            f"{ev.step_age_s:,.0f} s with every guardrail in band.",
            tuple(checks),
        )
    to = config.steps[index + 1]
    return Decision(
        Action.ADVANCE,
        pct,
        to,
        index + 1,
        f"Advanced ML from {pct:g} % to {to:g} %: {evidence}, on {ev.errors_ml.n:,} ML and "
        f"{ev.errors_heuristic.n:,} heuristic outcomes after {ev.step_age_s:,.0f} s, every "
        "guardrail in band.",
        tuple(checks),
    )


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number of seconds, or with a unit s, m or h.

    >>> parse_duration("30m"), parse_duration("90"), parse_duration("1.5h"), parse_duration("5s")
    (1800.0, 90.0, 5400.0, 5.0)
    >>> parse_duration("soon")
    Traceback (most recent call last):
    ...
    models.ramp.RampConfigError: expected a duration such as 90s, 30m or 2h, got 'soon'
    """
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    body, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1.0)
    try:
        value = float(body) * unit
    except ValueError:
        raise RampConfigError(f"expected a duration such as 90s, 30m or 2h, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise RampConfigError(f"expected a duration such as 90s, 30m or 2h, got {text!r}")
    return value


def parse_steps(text: str) -> tuple[float, ...]:
    """Percentages from a comma-separated list.

    >>> parse_steps("10,25,50,100")
    (10.0, 25.0, 50.0, 100.0)
    """
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise RampConfigError(
            f"steps: expected comma-separated percentages such as 10,25,50,100, got {text!r}"
        ) from None
