from __future__ import annotations

import csv
import math
import random
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.datasets import DatasetError, read_weather
from connectors.weather import (
    MILD_WEATHER,
    BatchWeatherProvider,
    RecordedWeather,
    WeatherHistoryError,
    WeatherNotFound,
)
from schemas.datasets import WEATHER_COLUMNS
from schemas.weather import Weather, WeatherSource

T0 = datetime(2024, 5, 1, 0, tzinfo=UTC)
BOLOGNA = (44.49, 11.34)
MODENA = (44.65, 10.92)


def row(station: tuple[float, float], hour: int, temperature: float, **extra: object) -> dict:
    values = {
        "observed_at": (T0 + timedelta(hours=hour)).isoformat(),
        "lat": station[0],
        "lon": station[1],
        "temperature_c": temperature,
        "precipitation_mm_h": 0.4,
        "wind_m_s": 3.5,
        "visibility_m": 9000,
        "humidity_pct": 81,
        "condition": "Rain",
    }
    values.update(extra)
    return values


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] = WEATHER_COLUMNS) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def history(tmp_path: Path) -> Path:
    rows = [row(BOLOGNA, h, 10.0 + h) for h in (0, 1, 2, 5, 6)]
    rows += [row(MODENA, h, 100.0 / 10 - h) for h in (0, 1, 2, 3, 4, 5, 6, 20)]
    return write_csv(tmp_path / "weather.csv", rows)


def test_answers_the_nearest_station_for_the_hour_containing_at(history):
    provider = RecordedWeather(history)
    at = datetime(2024, 5, 1, 3, 40, tzinfo=timezone(timedelta(hours=2)))  # 01:40 UTC
    weather = provider.fetch(44.50, 11.30, at)  # a few km from Bologna

    assert weather.temperature_c == 11.0
    assert weather.observed_at == T0 + timedelta(hours=1)
    assert weather.source is WeatherSource.RECORDED
    assert weather.is_default is False
    assert weather.condition == "rain"
    assert (weather.precipitation_mm_h, weather.wind_m_s, weather.visibility_m) == (0.4, 3.5, 9000)
    assert weather.humidity_pct == 81
    assert (provider.stations, len(provider)) == (2, 13)


def test_a_missing_hour_falls_back_to_the_nearest_hour_within_tolerance(history):
    provider = RecordedWeather(history)
    # Bologna has hours 2 and 5, not 3 or 4: hour 3 → 2, hour 4 → 5.
    assert provider.fetch(*BOLOGNA, T0 + timedelta(hours=3)).temperature_c == 12.0
    assert provider.fetch(*BOLOGNA, T0 + timedelta(hours=4)).temperature_c == 15.0


def test_a_tie_between_two_hours_serves_the_earlier_one(tmp_path):
    path = write_csv(tmp_path / "w.csv", [row(BOLOGNA, 0, 1.0), row(BOLOGNA, 4, 5.0)])
    assert RecordedWeather(path).fetch(*BOLOGNA, T0 + timedelta(hours=2)).temperature_c == 1.0


def test_a_station_without_data_within_tolerance_yields_to_the_next_nearest(history):
    provider = RecordedWeather(history, tolerance=timedelta(hours=1))
    # Bologna's nearest hours to 19:00 are 6 (13 h away); Modena has 20:00.
    assert provider.fetch(*BOLOGNA, T0 + timedelta(hours=19)).temperature_c == 10.0 - 20


def test_nothing_within_tolerance_anywhere_is_not_found(history):
    provider = RecordedWeather(history)
    with pytest.raises(WeatherNotFound, match="within 3:00:00"):
        provider.fetch(*BOLOGNA, T0 + timedelta(hours=12))
    with pytest.raises(WeatherNotFound):
        provider.fetch(*BOLOGNA, T0 - timedelta(hours=4))


def test_the_tolerance_is_configurable(history):
    exact = RecordedWeather(history, tolerance=timedelta(0))
    # Bologna lacks 03:00, so the exact hour comes from Modena, the next nearest station.
    assert exact.fetch(*BOLOGNA, T0 + timedelta(hours=3)).temperature_c == 7.0
    with pytest.raises(WeatherNotFound):
        exact.fetch(*BOLOGNA, T0 + timedelta(hours=12))
    wide = RecordedWeather(history, tolerance=timedelta(hours=24))
    assert wide.fetch(*BOLOGNA, T0 + timedelta(hours=12)).temperature_c == 16.0


def test_fetch_many_fills_unknown_points_with_the_default_redated(history):
    provider = RecordedWeather(history)
    far_future = datetime(2030, 1, 1, 12, 30, tzinfo=UTC)
    found = provider.fetch_many(
        [(*BOLOGNA, T0), (*MODENA, T0 + timedelta(hours=6)), (*BOLOGNA, far_future)],
        default=MILD_WEATHER,
    )
    assert [w.temperature_c for w in found[:2]] == [10.0, 4.0]
    assert found[2].is_default is True
    assert found[2].observed_at == datetime(2030, 1, 1, 12, tzinfo=UTC)
    with pytest.raises(WeatherNotFound):
        provider.fetch_many([(*BOLOGNA, T0), (*BOLOGNA, far_future)])
    assert provider.fetch_many([]) == []


def test_fetch_each_answers_each_point_alone_and_makes_a_batch_provider(history):
    provider = RecordedWeather(history)
    far_future = datetime(2030, 1, 1, 12, 30, tzinfo=UTC)
    found = provider.fetch_each(
        [(*BOLOGNA, T0), (*BOLOGNA, far_future), (*MODENA, T0 + timedelta(hours=6))]
    )
    assert isinstance(found[0], Weather) and found[0].temperature_c == 10.0
    assert isinstance(found[1], WeatherNotFound) and "2030-01-01T12:30:00+00:00" in str(found[1])
    assert isinstance(found[2], Weather) and found[2].temperature_c == 4.0
    assert provider.fetch_each([]) == []
    assert isinstance(provider, BatchWeatherProvider)


def test_fetch_many_agrees_with_a_brute_force_search_and_is_fast(tmp_path):
    rng = random.Random(7)
    stations = [(round(rng.uniform(44, 46), 3), round(rng.uniform(9, 12), 3)) for _ in range(20)]
    rows = [
        row(station, h, round(rng.uniform(-10, 35), 1))
        for station in stations
        for h in range(24 * 30)
        if rng.random() > 0.1  # gaps, so the tolerance fallback is exercised
    ]
    provider = RecordedWeather(write_csv(tmp_path / "big.csv", rows))
    points = [
        (rng.uniform(43.5, 46.5), rng.uniform(8.5, 12.5), T0 + timedelta(minutes=m))
        for m in (rng.randrange(-600, 45_000) for _ in range(100_000))
    ]

    started = time.perf_counter()
    found = provider.fetch_many(points, default=MILD_WEATHER)
    elapsed = time.perf_counter() - started

    assert len(found) == 100_000
    assert elapsed < 5.0, f"fetch_many of 100k points took {elapsed:.2f} s"
    by_station: dict[tuple[float, float], dict[int, float]] = {}
    for r in rows:
        hour = int(datetime.fromisoformat(r["observed_at"]).timestamp() // 3600)
        by_station.setdefault((r["lat"], r["lon"]), {})[hour] = r["temperature_c"]
    for (lat, lon, at), weather in zip(points[:500], found[:500], strict=True):
        expected = _brute_force(by_station, lat, lon, int(at.timestamp() // 3600), tolerance_h=3)
        if expected is None:
            assert weather.is_default
        else:
            assert weather.temperature_c == expected


def _brute_force(by_station, lat, lon, hour, tolerance_h):
    def km(station):
        p1, p2 = math.radians(lat), math.radians(station[0])
        dl = math.radians(station[1] - lon)
        a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        return 2 * 6371.0088 * math.asin(math.sqrt(a))

    for station in sorted(by_station, key=km):
        hours = by_station[station]
        candidates = [h for h in hours if abs(h - hour) <= tolerance_h]
        if candidates:
            best = min(candidates, key=lambda h: (abs(h - hour), h))
            return hours[best]
    return None


def test_a_naive_at_is_refused(history):
    with pytest.raises(ValueError, match="timezone-aware"):
        RecordedWeather(history).fetch(*BOLOGNA, datetime(2024, 5, 1, 3))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"temperature_c": "hot"}, r"line 3: temperature_c: Input should be a valid number"),
        ({"temperature_c": 95}, r"line 3: temperature_c: Input should be less than or equal"),
        ({"humidity_pct": ""}, r"line 3: humidity_pct"),
        ({"lat": 123}, r"line 3: lat: 123.0 is outside \[-90, 90\]"),
        ({"lon": "east"}, r"line 3: lon: not a number"),
        ({"observed_at": "2024-05-01T01:00:00"}, r"line 3: observed_at: .*timezone"),
        ({"condition": ""}, r"line 3: condition"),
    ],
)
def test_an_invalid_row_is_reported_with_its_line(tmp_path, bad, message):
    path = write_csv(tmp_path / "w.csv", [row(BOLOGNA, 0, 1.0), row(BOLOGNA, 1, 2.0, **bad)])
    with pytest.raises(WeatherHistoryError, match=message):
        RecordedWeather(path)


def test_a_duplicate_observation_names_both_lines(tmp_path):
    path = write_csv(tmp_path / "w.csv", [row(BOLOGNA, 0, 1.0), row(BOLOGNA, 0, 2.0)])
    with pytest.raises(WeatherHistoryError, match=r"line 3: a second observation.*line 2"):
        RecordedWeather(path)


def test_missing_columns_an_empty_file_and_a_missing_file_are_clear_errors(tmp_path):
    columns = tuple(c for c in WEATHER_COLUMNS if c != "wind_m_s")
    path = write_csv(tmp_path / "a.csv", [row(BOLOGNA, 0, 1.0)], columns)
    with pytest.raises(WeatherHistoryError, match=r"missing column.*wind_m_s"):
        RecordedWeather(path)
    with pytest.raises(WeatherHistoryError, match="no observations"):
        RecordedWeather(write_csv(tmp_path / "b.csv", []))
    with pytest.raises(WeatherHistoryError, match="cannot read"):
        RecordedWeather(tmp_path / "absent.csv")


def test_file_errors_are_the_dataset_readers_own_under_the_weather_name(tmp_path):
    path = write_csv(tmp_path / "w.csv", [row(BOLOGNA, 0, 1.0), row(BOLOGNA, 1, 2.0, lat="x")])
    with pytest.raises(DatasetError) as read:
        read_weather(path)
    with pytest.raises(WeatherHistoryError) as loaded:
        RecordedWeather(path)
    assert str(loaded.value) == str(read.value)
    assert isinstance(loaded.value, DatasetError)
