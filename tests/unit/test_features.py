from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from models.features import (
    FEATURE_INDEX,
    FEATURE_NAMES,
    LEAD_TIME_CAP_MIN,
    feature_dict,
    feature_matrix,
    haversine_km,
)
from models.synthetic import SyntheticWorld
from schemas import BookingRequested, PatientPriority, VehicleType, Weather, WeatherSource

PICKUP = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)  # a Monday


def booking(
    scheduled: datetime = PICKUP,
    created: datetime | None = None,
    vehicle: str = "standard",
    priority: str | None = None,
    **coords: float,
) -> BookingRequested:
    return BookingRequested(
        booking_id="B-1",
        scheduled_pickup_at=scheduled,
        created_at=created or scheduled - timedelta(hours=2),
        pickup_lat=coords.get("pickup_lat", 46.2044),
        pickup_lon=coords.get("pickup_lon", 6.1432),
        dropoff_lat=coords.get("dropoff_lat", 46.1930),
        dropoff_lon=coords.get("dropoff_lon", 6.1490),
        vehicle_type=VehicleType(vehicle),
        patient_priority=PatientPriority(priority) if priority else None,
    )


def weather(is_default: bool = False, **values: float) -> Weather:
    return Weather(
        temperature_c=values.get("temperature_c", 12.0),
        precipitation_mm_h=values.get("precipitation_mm_h", 0.0),
        wind_m_s=values.get("wind_m_s", 3.0),
        visibility_m=values.get("visibility_m", 20_000.0),
        humidity_pct=values.get("humidity_pct", 70.0),
        condition="clear",
        observed_at=PICKUP,
        source=WeatherSource.DEFAULT if is_default else WeatherSource.RECORDED,
        is_default=is_default,
    )


def features_of(b: BookingRequested, w: Weather | None = None) -> dict[str, float]:
    return feature_dict(feature_matrix([b], [w or weather()])[0])


def test_haversine_matches_known_distances():
    paris_london = haversine_km(48.8566, 2.3522, 51.5074, -0.1278)
    assert paris_london == pytest.approx(343.56, abs=0.05)
    assert haversine_km(0.0, 0.0, 1.0, 0.0) == pytest.approx(111.195, abs=0.001)
    assert haversine_km(46.2, 6.1, 46.2, 6.1) == 0.0


def test_distance_feature_is_the_pickup_to_dropoff_haversine():
    f = features_of(booking())
    assert f["distance_km"] == pytest.approx(float(haversine_km(46.2044, 6.1432, 46.1930, 6.1490)))
    assert f["pickup_center_km"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("utc_time", "local_hour"),
    [
        # spring forward on 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), 1.5),
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), 3.5),
        # fall back on 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), 2.5),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), 2.5),
        (datetime(2026, 7, 1, 6, 15, tzinfo=UTC), 8.25),
        (datetime(2026, 1, 15, 6, 15, tzinfo=UTC), 7.25),
    ],
)
def test_hour_is_local_zurich_time_across_dst_changes(utc_time, local_hour):
    assert features_of(booking(scheduled=utc_time))["hour_local"] == local_hour


def test_hour_does_not_depend_on_the_offset_the_booking_was_written_with():
    tokyo = timezone(timedelta(hours=9))
    same_instant = PICKUP.astimezone(tokyo)
    assert features_of(booking(scheduled=same_instant)) == features_of(booking())


def test_weekday_weekend_and_month_follow_the_local_date():
    saturday_night_utc = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)  # Sunday 1 Nov, 00:30 local
    f = features_of(booking(scheduled=saturday_night_utc))
    assert (f["weekday"], f["is_weekend"], f["month"]) == (6.0, 1.0, 11.0)
    friday_evening = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # Friday 23:30 local
    f = features_of(booking(scheduled=friday_evening))
    assert (f["weekday"], f["is_weekend"], f["month"]) == (4.0, 0.0, 11.0)


@pytest.mark.parametrize(
    ("local_time", "rush"),
    [
        ("2026-11-23T07:00:00+01:00", 1.0),
        ("2026-11-23T08:59:00+01:00", 1.0),
        ("2026-11-23T09:00:00+01:00", 0.0),
        ("2026-11-23T16:00:00+01:00", 1.0),
        ("2026-11-23T19:00:00+01:00", 0.0),
        ("2026-11-23T12:00:00+01:00", 0.0),
        ("2026-11-22T08:00:00+01:00", 0.0),  # Sunday
    ],
)
def test_rush_hour_is_weekday_morning_and_evening(local_time, rush):
    assert (
        features_of(booking(scheduled=datetime.fromisoformat(local_time)))["is_rush_hour"] == rush
    )


@pytest.mark.parametrize(
    ("created", "lead"),
    [
        (PICKUP - timedelta(minutes=45), 45.0),
        (PICKUP + timedelta(minutes=5), 0.0),  # created after the pickup: clipped
        (PICKUP - timedelta(days=10), LEAD_TIME_CAP_MIN),
    ],
)
def test_lead_time_is_minutes_from_creation_to_pickup_clipped(created, lead):
    assert features_of(booking(created=created))["lead_time_min"] == lead


@pytest.mark.parametrize("vehicle", ["standard", "wheelchair", "stretcher"])
def test_vehicle_type_is_one_hot(vehicle):
    f = features_of(booking(vehicle=vehicle))
    assert [f[f"vehicle_{v}"] for v in ("standard", "wheelchair", "stretcher")].count(1.0) == 1
    assert f[f"vehicle_{vehicle}"] == 1.0


def test_priority_is_one_hot_and_all_zero_when_not_given():
    assert features_of(booking(priority="urgent"))["priority_urgent"] == 1.0
    f = features_of(booking(priority=None))
    assert f["priority_routine"] == f["priority_urgent"] == f["priority_emergency"] == 0.0


def test_weather_columns_carry_the_weather_values():
    w = weather(
        temperature_c=-2.5,
        precipitation_mm_h=3.0,
        wind_m_s=11.0,
        visibility_m=400.0,
        humidity_pct=97.0,
        is_default=True,
    )
    f = features_of(booking(), w)
    assert (f["temperature_c"], f["precipitation_mm_h"], f["wind_m_s"]) == (-2.5, 3.0, 11.0)
    assert (f["visibility_m"], f["humidity_pct"], f["weather_is_default"]) == (400.0, 97.0, 1.0)


def test_columns_are_in_feature_names_order():
    assert FEATURE_NAMES[:8] == (
        "distance_km",
        "pickup_center_km",
        "hour_local",
        "weekday",
        "month",
        "is_weekend",
        "is_rush_hour",
        "lead_time_min",
    )
    assert FEATURE_NAMES[-10:] == (
        "temperature_c",
        "precipitation_mm_h",
        "wind_m_s",
        "visibility_m",
        "humidity_pct",
        "weather_is_default",
        "pickup_lat",
        "pickup_lon",
        "dropoff_lat",
        "dropoff_lon",
    )
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == 24
    b = booking()
    X = feature_matrix([b], [weather()])
    coordinates = X[0, FEATURE_INDEX["pickup_lat"] :].tolist()
    assert coordinates == [b.pickup_lat, b.pickup_lon, b.dropoff_lat, b.dropoff_lon]
    assert X.dtype == np.float64 and X.shape == (1, len(FEATURE_NAMES))
    assert X[0, FEATURE_INDEX["hour_local"]] == 9.5  # 08:30 UTC is 09:30 in Geneva in November
    assert list(feature_dict(X[0])) == list(FEATURE_NAMES)


def test_vectorized_matrix_equals_row_by_row():
    world = SyntheticWorld(seed=3)
    rng = np.random.default_rng(5)
    start = datetime(2026, 3, 27, tzinfo=UTC)  # spans the spring DST change
    bookings = [world.booking(start + timedelta(minutes=37 * i), rng) for i in range(300)]
    weathers = [world.weather(b.pickup_lat, b.pickup_lon, b.scheduled_pickup_at) for b in bookings]
    batch = feature_matrix(bookings, weathers)
    rows = np.vstack([feature_matrix([b], [w]) for b, w in zip(bookings, weathers, strict=True)])
    np.testing.assert_array_equal(batch, rows)


def test_empty_batch_and_misaligned_weather():
    assert feature_matrix([], []).shape == (0, len(FEATURE_NAMES))
    with pytest.raises(ValueError, match="1 bookings but 2 weathers"):
        feature_matrix([booking()], [weather(), weather()])
    with pytest.raises(ValueError):
        feature_dict(np.zeros(3))


def test_local_time_and_centre_distance_are_those_of_the_configured_area():
    from models.area import ServiceArea

    new_york = ServiceArea(timezone="America/New_York", center_lat=40.6413, center_lon=-73.7781)
    jfk_to_lga = {"pickup_lat": 40.6413, "pickup_lon": -73.7781}
    jfk_to_lga |= {"dropoff_lat": 40.7769, "dropoff_lon": -73.874}
    # 2026-01-10 is a Saturday; 12:30 UTC is 07:30 in New York (EST, -5) and 13:30 in Geneva.
    winter = booking(datetime(2026, 1, 10, 12, 30, tzinfo=UTC), **jfk_to_lga)
    # 2026-07-13 is a Monday; 12:30 UTC is 08:30 in New York (EDT, -4).
    summer = booking(datetime(2026, 7, 13, 12, 30, tzinfo=UTC), **jfk_to_lga)
    X = feature_matrix([winter, summer], [weather(), weather()], new_york)
    here = [feature_dict(row) for row in X]
    assert [f["hour_local"] for f in here] == [7.5, 8.5]
    assert [f["weekday"] for f in here] == [5.0, 0.0]
    assert [f["is_weekend"] for f in here] == [1.0, 0.0]
    assert here[0]["pickup_center_km"] == pytest.approx(0.0, abs=1e-9)
    geneva = features_of(winter)
    assert geneva["hour_local"] == 13.5
    assert geneva["pickup_center_km"] == pytest.approx(6_200, rel=0.01)
