import numpy as np
import pytest

from models.risk import risk_levels
from schemas import RiskLevel


def test_thresholds_are_inclusive_lower_bounds():
    levels = risk_levels(np.array([-3.0, 4.99, 5.0, 14.99, 15.0, 90.0]), 5.0, 15.0)
    low, medium, high = RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH
    assert levels == [low, low, medium, medium, high, high]


def test_equal_thresholds_skip_medium():
    assert risk_levels(np.array([9.0, 10.0]), 10.0, 10.0) == [RiskLevel.LOW, RiskLevel.HIGH]


def test_empty_batch_and_inverted_thresholds():
    assert risk_levels(np.array([]), 5.0, 15.0) == []
    with pytest.raises(ValueError):
        risk_levels(np.array([1.0]), 15.0, 5.0)
