import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from models.features import FEATURE_INDEX, feature_matrix
from models.synthetic import (
    STATIONS,
    SyntheticWorld,
    generate_history,
    invalid_booking_payloads,
    weather_series,
)
from schemas import BookingRequested

END = datetime(2026, 11, 1, tzinfo=UTC)
START = END - timedelta(days=14)


@pytest.fixture(scope="module")
def history():
    return generate_history(START, END, seed=5, bookings_per_day=400)


def test_history_is_deterministic_given_the_seed(history):
    again = generate_history(START, END, seed=5, bookings_per_day=400)
    assert again.rows == history.rows
    assert again.weather == history.weather
    other = generate_history(START, END, seed=6, bookings_per_day=400)
    assert other.rows != history.rows
    assert other.weather != history.weather


def test_history_lies_in_the_period_sorted_by_pickup(history):
    pickups = [r.booking.scheduled_pickup_at for r in history.rows]
    assert pickups == sorted(pickups)
    assert pickups[0] >= START and pickups[-1] < END
    assert 14 * 400 * 0.9 < len(history.rows) < 14 * 400 * 1.1
    assert all(r.booking.created_at < r.booking.scheduled_pickup_at for r in history.rows)
    assert len({r.booking.booking_id for r in history.rows}) == len(history.rows)


def test_history_looks_like_the_business(history):
    bookings = [r.booking for r in history.rows]
    vehicles = Counter(b.vehicle_type.value for b in bookings)
    total = len(bookings)
    assert vehicles["standard"] / total == pytest.approx(0.65, abs=0.03)
    assert vehicles["wheelchair"] / total == pytest.approx(0.25, abs=0.03)
    assert vehicles["stretcher"] / total == pytest.approx(0.10, abs=0.02)
    X = feature_matrix(bookings, [history.weather[0].weather] * total)
    hours = X[:, FEATURE_INDEX["hour_local"]].astype(int)
    weekday = X[:, FEATURE_INDEX["is_weekend"]] == 0
    by_hour = Counter(hours[weekday].tolist())
    assert by_hour[8] > 5 * by_hour[3] and by_hour[17] > 5 * by_hour[23]
    weekend_days, weekdays = 4, 10  # 18 Oct 2026 … 31 Oct 2026
    assert (~weekday).sum() / weekend_days < 0.7 * weekday.sum() / weekdays
    delays = np.array([r.actual_delay_minutes for r in history.rows])
    assert 4 < delays.mean() < 12 and delays.min() >= -15 and delays.max() <= 180


def test_weather_of_an_hour_does_not_depend_on_the_period_asked(history):
    later = weather_series(5, END - timedelta(days=2), END + timedelta(days=3))
    overlap = {(s.lat, s.lon, s.weather.observed_at): s for s in history.weather}
    shared = [s for s in later if (s.lat, s.lon, s.weather.observed_at) in overlap]
    assert len(shared) == 2 * 24 * len(STATIONS)
    assert all(s == overlap[s.lat, s.lon, s.weather.observed_at] for s in shared)
    world = SyntheticWorld(5)
    station = STATIONS[0]
    at = END - timedelta(hours=5, minutes=20)
    live = world.weather(station.lat, station.lon, at)
    recorded = overlap[station.lat, station.lon, END - timedelta(hours=6)].weather
    assert live == recorded


def test_live_bookings_are_created_now_and_reproducible():
    world = SyntheticWorld(seed=9)
    now = datetime(2026, 11, 23, 7, 3, 12, tzinfo=UTC)
    first = [world.booking(now, np.random.default_rng(1)) for _ in range(2)]
    assert first[0] == first[1]
    rng = np.random.default_rng(2)
    bookings = [world.booking(now, rng) for _ in range(300)]
    assert all(b.created_at == now for b in bookings)
    assert all(b.scheduled_pickup_at >= now + timedelta(minutes=10) for b in bookings)
    assert len({b.booking_id for b in bookings}) == 300
    from_stdlib = world.booking(now, random.Random(4))
    assert from_stdlib == world.booking(now, random.Random(4))


def test_actual_delays_follow_the_same_ground_truth_as_history():
    world = SyntheticWorld(seed=9)
    rng = np.random.default_rng(3)
    booking = world.booking(datetime(2026, 11, 23, 7, 0, tzinfo=UTC), rng)
    weather = world.weather(booking.pickup_lat, booking.pickup_lon, booking.scheduled_pickup_at)
    d1 = world.actual_delay(booking, weather, np.random.default_rng(4))
    d2 = world.actual_delay(booking, weather, np.random.default_rng(4))
    assert d1 == d2 and -15 <= d1 <= 180
    actual = world.actual(booking, weather, np.random.default_rng(4))
    assert actual.booking_id == booking.booking_id and actual.actual_delay_minutes == d1
    assert actual.observed_at == booking.scheduled_pickup_at + timedelta(minutes=d1)


def test_invalid_payloads_cover_every_kind_and_are_all_rejected():
    payloads = invalid_booking_payloads(np.random.default_rng(0))
    kinds = [p.kind for p in payloads]
    assert kinds == [
        "not_utf8",
        "empty",
        "not_json",
        "not_object",
        "missing_field",
        "wrong_type",
        "lat_out_of_range",
        "naive_datetime",
        "unknown_vehicle_type",
        "nan_value",
    ]
    for _kind, value in payloads:  # unpacks like a tuple
        assert isinstance(value, bytes)
        with pytest.raises(ValueError):  # UnicodeDecodeError, JSONDecodeError, ValidationError
            BookingRequested.model_validate(json.loads(value.decode("utf-8")))
        with pytest.raises(ValueError):
            BookingRequested.model_validate_json(value)
    assert invalid_booking_payloads(random.Random(1))[4].kind == "missing_field"


def test_the_noise_scale_is_what_the_observed_delays_are_drawn_with():
    from models.synthetic.truth import noise_scale, observed_delays

    X = np.zeros((2, len(FEATURE_INDEX)))
    X[1, FEATURE_INDEX["hour_local"]] = 17.6  # the weekday evening peak ...
    X[1, FEATURE_INDEX["precipitation_mm_h"]] = 2.0  # ... in the rain
    X[:, FEATURE_INDEX["visibility_m"]] = 10_000
    X[:, FEATURE_INDEX["lead_time_min"]] = 600
    np.testing.assert_allclose(noise_scale(X), [1.3, 1.3 * 1.8], rtol=1e-3)
    # The spread of many draws of each row follows that scale (t(4) scaled to unit variance,
    # plus rare mishaps, which lengthen the tail but barely move the median absolute noise).
    many = np.repeat(X, 20_000, axis=0)
    noise = observed_delays(many, np.zeros(len(many)), np.random.default_rng(0))
    centred = noise - np.median(noise.reshape(2, -1), axis=1).repeat(20_000)
    spread = np.median(np.abs(centred.reshape(2, -1)), axis=1)
    assert spread[1] / spread[0] == pytest.approx(1.8, rel=0.08)
