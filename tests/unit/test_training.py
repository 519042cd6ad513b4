"""Training on a small synthetic history meets the model targets on a time-based holdout."""

from datetime import UTC, datetime, timedelta

import pytest

from models.features import FEATURE_NAMES
from models.inputs import MODEL_FEATURES
from models.synthetic import SyntheticWorld, generate_history
from models.training import TrainingConfig, train

END = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def trained():
    data = generate_history(END - timedelta(days=30), END, seed=1, bookings_per_day=500)
    return data, train(data.rows, data.row_weather)


def test_forest_meets_the_targets_and_beats_the_fitted_heuristic(trained):
    _, result = trained
    assert result.model_scores.mae < 2.5
    assert result.model_scores.r2 > 0.68
    assert result.model_scores.mae < result.heuristic_scores.mae
    assert result.model_scores.r2 > result.heuristic_scores.r2


def test_holdout_is_the_latest_fifth_by_pickup_time(trained):
    data, result = trained
    assert result.rows == len(data.rows) == result.train_rows + result.holdout_rows
    assert result.holdout_rows == round(0.2 * result.rows)
    pickups = sorted(r.booking.scheduled_pickup_at for r in data.rows)
    assert result.window_start == pickups[0] and result.window_end == pickups[-1]
    assert result.holdout_start == pickups[result.train_rows]
    assert pickups[result.train_rows - 1] <= result.holdout_start


def test_result_records_features_and_their_training_distribution(trained):
    _, result = trained
    coordinates = ("pickup_lat", "pickup_lon", "dropoff_lat", "dropoff_lon")
    if result.model_kind == "boosting_zones":
        assert result.feature_names == (*MODEL_FEATURES, *coordinates)
    else:
        assert result.feature_names == MODEL_FEATURES
    assert list(result.feature_distributions) == list(FEATURE_NAMES)
    hours = result.feature_distributions["hour_local"]
    assert hours.count == result.train_rows
    assert 0 <= hours.min <= hours.quantiles["p50"] <= hours.max < 24
    assert sum(hours.bin_fractions) == pytest.approx(1.0)
    assert result.heuristic.version.startswith("heuristic-")


def test_too_little_history_is_refused(trained):
    data, _ = trained
    rows = data.rows[:10]
    with pytest.raises(ValueError, match="at least"):
        train(rows, [SyntheticWorld(1).weather(46.2, 6.1, END)] * 10, TrainingConfig())
