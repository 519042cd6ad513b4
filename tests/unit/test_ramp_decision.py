"""The guarded ramp's decision (models.ramp) and its always-valid tests (models.sequential)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from models.ramp import (
    Action,
    RampConfig,
    RampConfigError,
    StepEvidence,
    decide,
    parse_duration,
    parse_steps,
)
from models.sequential import ArmErrors, difference_sequence, mixture_radius, ratio_test

CONFIG = RampConfig(steps=(10.0, 25.0, 50.0, 100.0), min_outcomes=200, hold_s=60.0)


def evidence(**changes: object) -> StepEvidence:
    """A step where ML is clearly better than the heuristic and everything is in band."""
    base = StepEvidence(
        step_age_s=120.0,
        assigned_ml=1_000,
        assigned_heuristic=9_000,
        expected_ml_share=0.10,
        errors_ml=ArmErrors(n=800, mean=1.2, variance=1.0),
        errors_heuristic=ArmErrors(n=7_000, mean=1.6, variance=1.4),
        due_ml=900,
        due_heuristic=8_000,
        labelled_ml=800,
        labelled_heuristic=7_100,
        model_errors=0,
        fallbacks=3,
        latency_n=1_000,
        latency_p99_ms=80.0,
        latency_before_n=1_000,
        latency_before_p99_ms=70.0,
        coverage_n=800,
        coverage_within=720,
        drift_age_s=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_better_ml_in_band_advances_one_step_and_says_why() -> None:
    decision = decide(CONFIG, 0, evidence())
    assert decision.action is Action.ADVANCE
    assert (decision.from_percentage, decision.to_percentage, decision.to_index) == (10, 25, 1)
    assert "from 10 % to 25 %" in decision.reason and "mixture SPRT" in decision.reason
    assert "800 ML and 7,000 heuristic outcomes" in decision.reason
    assert decision.blockers == []


def test_each_gate_blocks_the_advance_and_is_named() -> None:
    young = decide(CONFIG, 0, evidence(step_age_s=30.0))
    assert young.action is Action.WAIT and [c.name for c in young.blockers] == ["hold_time"]
    few = decide(CONFIG, 0, evidence(errors_ml=ArmErrors(150, 1.2, 1.0)))
    assert few.action is Action.WAIT and [c.name for c in few.blockers] == ["min_outcomes_ml"]
    assert "150 of 200 ML outcomes" in few.reason
    # Equal errors: not worse, but not yet shown within the margin either.
    unsure = decide(CONFIG, 0, evidence(errors_ml=ArmErrors(220, 1.75, 4.0)))
    assert unsure.action is Action.WAIT
    assert [c.name for c in unsure.blockers] == ["not_worse"]
    # Labels 10 points apart over too few bookings to be significant: no step up on them.
    skewed = decide(CONFIG, 0, evidence(due_ml=100, labelled_ml=80, due_heuristic=900,
                                        labelled_heuristic=810))  # fmt: skip
    assert skewed.action is Action.WAIT
    assert [c.name for c in skewed.blockers] == ["label_balance"]


def test_ml_worse_beyond_the_margin_rolls_back_one_step_naming_the_test() -> None:
    worse = evidence(errors_ml=ArmErrors(n=400, mean=3.0, variance=2.0))
    decision = decide(CONFIG, 2, worse)
    assert decision.action is Action.ROLLBACK
    assert (decision.to_percentage, decision.to_index) == (25, 1)
    assert "ml_worse" in decision.reason and "mixture SPRT" in decision.reason
    assert "confidence sequence" in decision.reason
    # From the first step, the previous step is 0 %.
    assert decide(CONFIG, 0, worse).to_percentage == 0


def test_a_missing_share_of_ml_labels_rolls_back_with_the_arrival_ratio() -> None:
    missing = evidence(labelled_ml=int(0.8 * 0.89 * 900))  # 20 % of ML's actuals dropped
    decision = decide(CONFIG, 1, missing)
    assert decision.action is Action.ROLLBACK
    assert [c.name for c in decision.blockers if c.kind.value == "guardrail"] == [
        "label_arrival_ratio"
    ]
    assert decision.to_percentage == 10


def test_a_small_gap_in_label_arrival_is_tolerated() -> None:
    # 2 points apart over many bookings: significant, but inside the tolerated gap.
    slight = evidence(due_ml=20_000, labelled_ml=17_400, due_heuristic=180_000,
                      labelled_heuristic=160_200)  # fmt: skip
    checks = {c.name: c for c in decide(CONFIG, 0, slight).checks}
    assert checks["label_arrival_ratio"].ok


def test_severe_breaches_go_to_zero_others_to_the_previous_step() -> None:
    storm = decide(CONFIG, 2, evidence(fallbacks=600))  # 60 % of ML's bookings
    assert storm.action is Action.ROLLBACK and storm.to_percentage == 0
    some = decide(CONFIG, 2, evidence(fallbacks=150))  # 15 %
    assert some.action is Action.ROLLBACK and some.to_percentage == 25
    errors = decide(CONFIG, 2, evidence(model_errors=50, fallbacks=50))  # 5 % model errors
    assert [c.name for c in errors.blockers] == ["model_error_rate"]
    slow = decide(CONFIG, 1, evidence(latency_p99_ms=1_500.0, latency_before_p99_ms=1_200.0))
    assert slow.to_percentage == 10 and "latency_p99" in slow.reason
    stalled = evidence(latency_p99_ms=5_000.0, latency_before_p99_ms=4_000.0)
    assert decide(CONFIG, 1, stalled).to_percentage == 0
    skewed = decide(CONFIG, 1, evidence(assigned_ml=1_300, assigned_heuristic=8_700))
    assert skewed.to_percentage == 0 and "assignment_ratio" in skewed.reason
    narrow = decide(CONFIG, 1, evidence(coverage_within=560))  # 70 % within the P90
    assert narrow.to_percentage == 10 and "interval_coverage" in narrow.reason


def test_a_latency_spike_in_one_window_only_does_not_roll_back() -> None:
    """A worker's warm-up or restart makes one window slow; a breach must last two."""
    spike = decide(CONFIG, 1, evidence(latency_p99_ms=4_000.0, latency_before_p99_ms=90.0))
    assert spike.action is Action.ADVANCE
    fresh = decide(CONFIG, 1, evidence(latency_p99_ms=4_000.0, latency_before_n=0,
                                       latency_before_p99_ms=None))  # fmt: skip
    assert fresh.action is Action.ADVANCE
    assert [c.judged for c in fresh.checks if c.name == "latency_p99"] == [False]


def test_drift_and_low_label_coverage_hold_without_moving() -> None:
    drifting = decide(CONFIG, 1, evidence(drift_age_s=30.0))
    assert drifting.action is Action.HOLD and drifting.to_percentage == 25
    assert "feature-drift alarm was raised 30 s ago" in drifting.reason
    # The monitor raises at most one alarm per feature every 30 min while drift lasts: the
    # hold outlasts that by default.
    assert decide(CONFIG, 1, evidence(drift_age_s=1_700.0)).action is Action.HOLD
    assert decide(CONFIG, 1, evidence(drift_age_s=1_900.0)).action is Action.ADVANCE
    late = evidence(labelled_ml=600, labelled_heuristic=5_400)  # 67 % of both arms
    assert decide(CONFIG, 1, late).action is Action.HOLD


def test_the_last_step_completes_on_ml_alone() -> None:
    at_full = evidence(assigned_heuristic=0, expected_ml_share=1.0,
                       errors_heuristic=ArmErrors(0, 0.0, 0.0), due_heuristic=0,
                       labelled_heuristic=0)  # fmt: skip
    decision = decide(CONFIG, 3, at_full)
    assert decision.action is Action.COMPLETE and decision.to_percentage == 100
    assert decide(CONFIG, 3, dataclasses.replace(at_full, step_age_s=10.0)).action is Action.WAIT


def test_the_config_refuses_what_cannot_work_and_round_trips() -> None:
    with pytest.raises(RampConfigError, match="increasing"):
        RampConfig(steps=(10.0, 5.0), min_outcomes=100, hold_s=1.0)
    with pytest.raises(RampConfigError, match=r"\(0, 100\]"):
        RampConfig(steps=(0.0, 50.0), min_outcomes=100, hold_s=1.0)
    with pytest.raises(RampConfigError, match="at least 30"):
        RampConfig(steps=(10.0,), min_outcomes=5, hold_s=1.0)
    assert RampConfig.from_dict(CONFIG.to_dict() | {"unknown": 1}) == CONFIG
    with pytest.raises(RampConfigError, match="comma-separated"):
        parse_steps("10;20")
    assert parse_duration("2h") == 7200.0
    for bad in ("-5s", "nan", "infm", ""):
        with pytest.raises(RampConfigError):
            parse_duration(bad)


def test_the_confidence_sequence_is_wider_than_a_fixed_interval_and_shrinks() -> None:
    radii = [mixture_radius(1.0 / n, 0.25, 0.05) for n in (100, 1_000, 10_000)]
    assert radii[0] > radii[1] > radii[2]
    assert all(
        r > 1.96 * math.sqrt(1.0 / n) for r, n in zip(radii, (100, 1_000, 10_000), strict=True)
    )


def _false_advances(looks: int, runs: int, always_valid: bool, seed: int) -> float:
    """Share of runs where ML, truly worse by exactly the margin, is ever judged within it."""
    rng = np.random.default_rng(seed)
    margin, per_look = 0.25, 40
    advanced = 0
    for _ in range(runs):
        ml = np.abs(rng.normal(0, 1.6, size=looks * per_look)) + margin
        heuristic = np.abs(rng.normal(0, 1.6, size=looks * per_look * 4))
        for look in range(1, looks + 1):
            a, b = ml[: look * per_look], heuristic[: look * per_look * 4]
            ea = ArmErrors(len(a), float(a.mean()), float(a.var(ddof=1)))
            eb = ArmErrors(len(b), float(b.mean()), float(b.var(ddof=1)))
            if always_valid:
                seq = difference_sequence(ea, eb, alpha=0.05, tau=0.25)
                assert seq is not None
                high = seq.high
            else:
                se = math.sqrt(ea.variance / ea.n + eb.variance / eb.n)
                high = ea.mean - eb.mean + 1.96 * se
            if high < margin:
                advanced += 1
                break
    return advanced / runs


def test_looking_every_minute_does_not_inflate_false_advances() -> None:
    """A fixed-sample interval read at 50 looks advances a truly-worse ML far more often than
    its 2.5 % one-sided level; the confidence sequence stays under it."""
    naive = _false_advances(looks=50, runs=300, always_valid=False, seed=3)
    valid = _false_advances(looks=50, runs=300, always_valid=True, seed=3)
    assert naive > 0.08
    assert valid <= 0.025


def test_the_ratio_test_rejects_a_skew_and_accepts_the_expected_share() -> None:
    rng = np.random.default_rng(5)
    fair = [ratio_test(int(rng.binomial(n, 0.25)), n, 0.25, alpha=0.001).rejected
            for n in (100, 1_000, 10_000, 100_000)]  # fmt: skip
    assert fair == [False, False, False, False]
    assert ratio_test(2_700, 10_000, 0.25, alpha=0.001).rejected
    assert not ratio_test(5, 10, 0.25, alpha=0.001).rejected  # too few to say
    assert ratio_test(10, 10, 0.0, alpha=0.001).p_value == 1.0  # no expected share: no test


def test_a_guardrail_without_enough_evidence_says_it_is_not_judged_and_what_it_waits_for() -> None:
    thin = evidence(errors_ml=ArmErrors(12, 1.0, 1.0), latency_n=40, coverage_n=100,
                    due_ml=20)  # fmt: skip
    checks = {c.name: c for c in decide(CONFIG, 0, thin).checks}
    assert {name for name, c in checks.items() if not c.judged} == {
        "ml_worse", "latency_p99", "interval_coverage", "label_arrival_ratio",
    }  # fmt: skip
    assert checks["ml_worse"].detail == (
        "not judged: 12 ML and 7,000 heuristic outcomes, 30 per arm needed"
    )
    assert (
        checks["latency_p99"].ok and "40 and 1,000 ML predictions" in checks["latency_p99"].detail
    )
    assert checks["model_error_rate"].judged  # 1,000 bookings: judged
    at_full = decide(CONFIG, 3, evidence(assigned_heuristic=0, expected_ml_share=1.0))
    assert {c.name: c.detail for c in at_full.checks if not c.judged}["ml_worse"] == (
        "not judged: no heuristic arm to compare with"
    )
