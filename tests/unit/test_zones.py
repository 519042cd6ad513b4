from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.model_selection import KFold
from sklearn.preprocessing import TargetEncoder

from models.area import GENEVA, ServiceArea
from models.boosting import BoostingConfig
from models.features import FEATURE_INDEX, FEATURE_NAMES
from models.history import HistoryRow
from models.inputs import MODEL_FEATURES, ModelInputs, booking_zone_cells
from models.synthetic import generate_history
from models.training import TrainingConfig, train
from models.zones import (
    CELL_KEY_STRIDE,
    ZONE_FEATURES,
    ZoneEncoding,
    ZoneTable,
    prior_strength,
    zone_cells,
)

END = datetime(2026, 11, 1, tzinfo=UTC)


def keys(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """(n, 3) cell keys drawn from ``cells`` values per column, unevenly (a few busy cells)."""
    weights = rng.pareto(1.0, cells) + 0.01
    weights /= weights.sum()
    return rng.choice(cells, size=(n, 3), p=weights).astype(np.int64) * 7 - 50


def test_lookups_give_scikit_learns_own_transform_including_unseen_cells():
    rng = np.random.default_rng(0)
    cells = keys(rng, 5_000, 60)
    effect = rng.normal(0, 5, 1_000)
    y = effect[(cells[:, 0] + 50) // 7] + rng.standard_t(3, 5_000) * 4
    encoding, crossed = ZoneEncoding.fit(GENEVA, 1.0, cells, y, seed=3)
    new = keys(rng, 2_000, 90)  # cells 60-89 were never seen in training
    assert not np.isin(new[:, 0], cells[:, 0]).all()
    for j, table in enumerate(encoding.tables):
        assert table.strength == prior_strength(cells[:, j], y)
        folds = KFold(n_splits=5, shuffle=True, random_state=3)
        reference = TargetEncoder(target_type="continuous", smooth=table.strength, cv=folds)
        np.testing.assert_array_equal(
            crossed[:, j], reference.fit_transform(cells[:, j : j + 1], y)[:, 0]
        )
        np.testing.assert_array_equal(
            encoding.encode(new)[:, j], reference.transform(new[:, j : j + 1])[:, 0]
        )
    unseen = ~np.isin(new[:, 1], cells[:, 1])
    assert unseen.any()
    np.testing.assert_array_equal(encoding.encode(new)[unseen, 1], np.mean(y))
    # Each table counts the training rows of its cells.
    assert [int(t.counts.sum()) for t in encoding.tables] == [5_000] * 3


def test_few_rows_shrink_towards_the_overall_mean_and_many_rows_keep_their_own():
    rng = np.random.default_rng(1)
    # 200 cells whose true means differ by 1 minute (sd), delays noisy around them (sd 5),
    # one busy cell 3 minutes late, and one cell of a single pickup 40 minutes late.
    column = np.concatenate([rng.integers(1, 201, 10_000), np.zeros(2_000, np.int64), [999]])
    means = np.concatenate([[3.0], rng.normal(0, 1, 200)])
    y = np.concatenate([means[column[:-1]] + rng.normal(0, 5, 12_000), [40.0]])
    cells = np.stack([column] * 3, axis=1)
    encoding, _ = ZoneEncoding.fit(GENEVA, 1.0, cells, y)
    assert 5 < encoding.tables[0].strength < 60  # noise 25 over the spread of cell means
    overall = float(np.mean(y))
    lonely, crowded = encoding.encode(np.array([[999] * 3, [0] * 3]))[:, 0]
    assert crowded == pytest.approx(3.0, abs=0.3)
    # One pickup 40 minutes late moves its cell's encoding by a small part of that.
    assert abs(lonely - overall) < 0.15 * (40.0 - overall)


def test_training_rows_get_encodings_that_do_not_contain_their_own_delay():
    # Pure noise in many small cells: an encoding fitted on a row's own delay would correlate
    # with it (it cannot predict anything else); the cross-fitted one must not.
    rng = np.random.default_rng(2)
    cells = np.stack([rng.integers(0, 2_000, 20_000)] * 3, axis=1)
    y = rng.normal(0, 10, 20_000)
    encoding, crossed = ZoneEncoding.fit(GENEVA, 1.0, cells, y)
    leaked = np.corrcoef(encoding.encode(cells)[:, 0], y)[0, 1]
    honest = np.corrcoef(crossed[:, 0], y)[0, 1]
    assert leaked > 0.1
    assert abs(honest) < 0.05


def test_cells_are_squares_of_the_grid_around_the_centre():
    km = 1.0 / 111.195  # degrees of latitude per km
    lat = np.array([46.2044, 46.2044 + 0.5 * km, 46.2044 + 1.5 * km, 46.2044 - 0.5 * km])
    lon = np.full(4, 6.1432)
    trips = np.stack([lat, lon, lat, lon], axis=1)
    cells = zone_cells(GENEVA, 1.0, trips, np.array([0.5, 23.99, 12.0, 7.0]))
    assert cells[:, 0].tolist() == [0, 0, CELL_KEY_STRIDE, -CELL_KEY_STRIDE]
    assert cells[:, 2].tolist() == [0, 23, CELL_KEY_STRIDE * 24 + 12, -CELL_KEY_STRIDE * 24 + 7]
    # At twice the cell size, the first three rows share a cell.
    wide = zone_cells(GENEVA, 2.0, trips, np.zeros(4))
    assert len(set(wide[:3, 0].tolist())) == 1
    # Across the antimeridian, neighbours stay neighbours.
    fiji = ServiceArea(timezone="Pacific/Fiji", center_lat=-17.7, center_lon=179.99)
    trips = np.array([[-17.7, 179.995, -17.7, 179.995], [-17.7, -179.995, -17.7, -179.995]])
    east, west = zone_cells(fiji, 1.0, trips, np.zeros(2))[:, 0]
    assert abs(int(west) - int(east)) <= 2


def test_encodings_round_trip_as_plain_numbers_and_bad_tables_are_refused():
    rng = np.random.default_rng(4)
    cells = keys(rng, 500, 20)
    encoding, _ = ZoneEncoding.fit(GENEVA, 0.5, cells, rng.normal(0, 3, 500))
    again = ZoneEncoding.from_dict(encoding.to_dict())
    np.testing.assert_array_equal(again.encode(cells), encoding.encode(cells))
    assert again.cell_km == 0.5 and again.area == GENEVA
    summary = encoding.summary()
    assert set(summary["cells"]) == set(ZONE_FEATURES) and summary["cell_km"] == 0.5
    with pytest.raises(ValueError, match="ascending"):
        ZoneTable(np.array([3, 1]), np.zeros(2), np.ones(2, dtype=np.int64), 0.0)
    with pytest.raises(ValueError, match="finite"):
        ZoneTable(np.array([1]), np.array([np.nan]), np.ones(1, dtype=np.int64), 0.0)
    with pytest.raises(ValueError, match="cell_km"):
        replace(encoding, cell_km=0.01)
    broken = encoding.to_dict()
    del broken["tables"]["zone_dropoff"]
    with pytest.raises(ValueError, match="zone_dropoff"):
        ZoneEncoding.from_dict(broken)


def test_inputs_pick_columns_by_name_and_append_the_encodings():
    rng = np.random.default_rng(5)
    X = rng.uniform(0, 1, (50, len(FEATURE_NAMES)))
    X[:, FEATURE_INDEX["pickup_lat"]] = 46.2 + rng.uniform(0, 0.05, 50)
    X[:, FEATURE_INDEX["pickup_lon"]] = 6.1 + rng.uniform(0, 0.05, 50)
    X[:, FEATURE_INDEX["hour_local"]] = rng.uniform(0, 24, 50)
    cells = booking_zone_cells(X, GENEVA, 1.0)
    encoding, _ = ZoneEncoding.fit(GENEVA, 1.0, cells, rng.normal(0, 1, 50))
    inputs = ModelInputs(zones=encoding)
    assert inputs.names == MODEL_FEATURES + ZONE_FEATURES
    assert set(inputs.required) - set(MODEL_FEATURES) == {
        "pickup_lat",
        "pickup_lon",
        "dropoff_lat",
        "dropoff_lon",
    }
    out = inputs.transform(X)
    np.testing.assert_array_equal(out[:, : len(MODEL_FEATURES)], X[:, : len(MODEL_FEATURES)])
    np.testing.assert_array_equal(out[:, len(MODEL_FEATURES) :], encoding.encode(cells))
    assert ModelInputs.from_dict(inputs.to_dict()) == inputs
    with pytest.raises(ValueError, match=rf"expected \(rows, {len(FEATURE_NAMES)}\)"):
        inputs.transform(X[:, :20])
    with pytest.raises(ValueError, match="distinct"):
        ModelInputs(columns=("weekday", "weekday"))
    with pytest.raises(ValueError, match="no zone encodings"):
        ModelInputs().zone_cells(X)


def hot_spot_history(days: int) -> list[HistoryRow]:
    """Synthetic history where pickups in a handful of 1 km cells, scattered over the canton so
    that no distance says which, are 12 minutes later."""
    data = generate_history(END - timedelta(days=days), END, seed=8, bookings_per_day=300)
    lat = np.array([r.booking.pickup_lat for r in data.rows])
    lon = np.array([r.booking.pickup_lon for r in data.rows])
    trips = np.stack([lat, lon, lat, lon], axis=1)
    cells = zone_cells(GENEVA, 1.0, trips, np.zeros(len(lat)))[:, 0]
    busy, counts = np.unique(cells, return_counts=True)
    hot = set(np.random.default_rng(8).choice(busy[counts >= 40], 12, replace=False).tolist())
    rows = [
        replace(r, actual_delay_minutes=r.actual_delay_minutes + 12.0) if c in hot else r
        for r, c in zip(data.rows, cells.tolist(), strict=True)
    ]
    return rows, data.row_weather


def test_a_world_with_hot_spots_is_learned_by_the_zoned_candidate_only():
    rows, weathers = hot_spot_history(30)
    config = TrainingConfig(
        candidates=("boosting", "boosting_zones"),
        boosting=BoostingConfig(max_iter=100),
        bootstrap_samples=200,
    )
    result = train(rows, weathers, config)
    zoned, plain = result.candidates["boosting_zones"], result.candidates["boosting"]
    assert result.model_kind == "boosting_zones"
    assert zoned.mae < 0.9 * plain.mae
    encoding = result.predictor.inputs.zones
    assert encoding is not None
    # Fitted on the training rows only: the holdout's rows are in no count.
    assert int(encoding.tables[0].counts.sum()) == result.train_rows


def test_small_batches_get_exactly_the_encodings_of_the_array_path():
    # Trips all over a grid of 0.3 km cells, many on or next to cell edges, in an area that
    # straddles the antimeridian (longitudes on both sides, as bookings give them, in
    # [-180, 180)), at every hour edge, negative and past 24 included.
    rng = np.random.default_rng(9)
    for area in (GENEVA, ServiceArea(timezone="Pacific/Fiji", center_lat=-17.7, center_lon=179.9)):
        step = 0.3 / 111.195
        n = 4_000
        lat = area.center_lat + rng.integers(-40, 40, (n, 2)) * step
        lat[: n // 2] += rng.normal(0, step / 3, (n // 2, 2))
        lon = (area.center_lon + rng.uniform(-0.5, 0.5, (n, 2)) + 180.0) % 360.0 - 180.0
        if area.center_lon > 179:
            assert (lon < 0).any() and (lon > 0).any()
        coordinates = np.stack([lat[:, 0], lon[:, 0], lat[:, 1], lon[:, 1]], axis=1)
        hours = rng.choice([-0.5, 0.0, 0.999999, 7.5, 23.0, 23.999999, 24.5], n)
        cells = zone_cells(area, 0.3, coordinates, hours)
        seen = rng.random(n) < 0.5  # half the trips' cells were seen in training
        encoding, _ = ZoneEncoding.fit(area, 0.3, cells[seen], rng.normal(5, 3, seen.sum()))
        expected = encoding.encode(cells)
        for size in (1, 7, 8):  # the Python path, up to SMALL_BATCH rows
            small = np.vstack(
                [
                    encoding.features(coordinates[i : i + size], hours[i : i + size])
                    for i in range(0, n, size)
                ]
            )
            np.testing.assert_array_equal(small, expected)
        assert (expected[:, 0] != encoding.tables[0].default).any()
        assert (expected[:, 0] == encoding.tables[0].default).any()
