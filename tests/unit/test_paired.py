"""The paired comparison of two predictors, and the stored features as a matrix."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from connectors.postgres.history import ServedRow
from models.features import FEATURE_NAMES
from models.paired import paired_difference
from streams.outcomes.counterfactual import EvaluationError, feature_rows, parse_models
from tests.factories import T0


def test_the_paired_difference_is_scipys_paired_t_test():
    rng = np.random.default_rng(3)
    a = np.abs(rng.normal(2.0, 1.5, 500))
    b = np.abs(a + rng.normal(0.3, 1.0, 500))
    d = paired_difference("a", a, "b", b, confidence=0.9)
    test = stats.ttest_rel(a, b)
    interval = test.confidence_interval(0.9)
    assert d.difference == pytest.approx(float(np.mean(a - b)), abs=1e-12)
    assert (d.low, d.high) == pytest.approx((interval.low, interval.high), abs=1e-12)
    assert d.p_value == pytest.approx(float(test.pvalue), abs=1e-12)
    assert (d.mae_a, d.mae_b, d.n) == (pytest.approx(a.mean()), pytest.approx(b.mean()), 500)
    assert d.difference < 0 and d.high < 0  # a errs less, and the interval says so


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1.0], [2.0], "at least 2 rows, got 1"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], "the same length"),
    ],
)
def test_a_comparison_that_cannot_be_made_says_why(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_difference("a", np.array(a), "b", np.array(b))


def row(features: dict[str, object]) -> ServedRow:
    return ServedRow("B1", features, 5.0, 4.0, "ml", "gb-1", T0)  # type: ignore[arg-type]


def test_stored_features_become_the_models_matrix_and_incomplete_rows_are_marked():
    full = {name: float(i) for i, name in enumerate(FEATURE_NAMES)}
    missing = {k: v for k, v in full.items() if k != "hour_local"}
    not_a_number = {**full, "distance_km": "7.5"}
    a_bool = {**full, "is_weekend": True}
    extra = {**full, "a_feature_of_a_later_version": 1.0}
    x, complete = feature_rows(
        [row(full), row(missing), row(not_a_number), row(a_bool), row(extra)]
    )
    assert x.shape == (5, len(FEATURE_NAMES))
    assert x[0].tolist() == [float(i) for i in range(len(FEATURE_NAMES))]
    assert complete.tolist() == [True, False, False, False, True]
    assert x[4].tolist() == x[0].tolist()


def test_models_are_named_once_each_and_at_least_one():
    assert parse_models("champion,served, champion ,gb-1") == ["champion", "served", "gb-1"]
    with pytest.raises(EvaluationError, match="no model named"):
        parse_models(",")
