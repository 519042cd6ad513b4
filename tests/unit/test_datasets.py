from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connectors.datasets import (
    DatasetError,
    read_history,
    read_weather,
    write_history,
    write_weather,
)
from models.synthetic import generate_history
from schemas.datasets import HISTORY_COLUMNS, WEATHER_COLUMNS

END = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data():
    return generate_history(END - timedelta(days=2), END, seed=1, bookings_per_day=200)


def test_history_and_weather_round_trip_through_csv(tmp_path, data):
    assert write_history(tmp_path / "h.csv", data.rows) == len(data.rows)
    assert write_weather(tmp_path / "w.csv", data.weather) == len(data.weather)
    assert (tmp_path / "h.csv").read_text().splitlines()[0] == ",".join(HISTORY_COLUMNS)
    assert (tmp_path / "w.csv").read_text().splitlines()[0] == ",".join(WEATHER_COLUMNS)
    assert read_history(tmp_path / "h.csv") == data.rows
    assert read_weather(tmp_path / "w.csv") == data.weather
    assert any(r.booking.patient_priority is None for r in data.rows)


def test_a_bad_history_row_is_reported_with_its_line_and_field(tmp_path, data):
    path = tmp_path / "h.csv"
    write_history(path, data.rows[:5])
    lines = path.read_text().splitlines()
    lines[3] = (
        lines[3].replace(",standard,", ",helicopter,").replace(",wheelchair,", ",helicopter,")
    )
    lines[3] = lines[3].replace(",stretcher,", ",helicopter,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"h\.csv, line 4: vehicle_type: .*helicopter"):
        read_history(path)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("actual_delay_minutes", "soon", "line 2: actual_delay_minutes"),
        ("actual_delay_minutes", "nan", "line 2: actual_delay_minutes"),
        ("scheduled_pickup_at", "2026-05-30T08:00:00", "line 2: scheduled_pickup_at"),
        ("pickup_lat", "123", "line 2: pickup_lat"),
    ],
)
def test_bad_values_are_refused(tmp_path, data, column, value, message):
    path = tmp_path / "h.csv"
    write_history(path, data.rows[:1])
    header, row = path.read_text().splitlines()
    cells = row.split(",")
    cells[HISTORY_COLUMNS.index(column)] = value
    path.write_text(f"{header}\n{','.join(cells)}\n")
    with pytest.raises(DatasetError, match=message):
        read_history(path)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("lat", "123", r"line 2: lat: 123\.0 is outside \[-90, 90\]"),
        ("lon", "nan", r"line 2: lon: nan is outside \[-180, 180\]"),
        ("lon", "east", r"line 2: lon: not a number \(got 'east'\)"),
        ("temperature_c", "95", r"line 2: temperature_c: Input should be less than or equal"),
        ("observed_at", "2026-05-30T08:00:00", r"line 2: observed_at: .*timezone"),
        ("condition", "", r"line 2: condition"),
    ],
)
def test_bad_weather_values_are_refused_naming_line_and_field(
    tmp_path, data, column, value, message
):
    path = tmp_path / "w.csv"
    write_weather(path, data.weather[:1])
    header, row = path.read_text().splitlines()
    cells = row.split(",")
    cells[WEATHER_COLUMNS.index(column)] = value
    path.write_text(f"{header}\n{','.join(cells)}\n")
    with pytest.raises(DatasetError, match=message):
        read_weather(path)


def test_a_second_observation_of_a_station_in_one_hour_names_both_lines(tmp_path, data):
    first, other = data.weather[0], data.weather[1]
    later_same_hour = replace(
        first,
        weather=first.weather.model_copy(
            update={"observed_at": first.weather.observed_at + timedelta(minutes=30)}
        ),
    )
    path = tmp_path / "w.csv"
    write_weather(path, [first, other, later_same_hour])
    with pytest.raises(DatasetError, match=r"line 4: a second observation for station .*line 2"):
        read_weather(path)


def test_blank_lines_are_skipped_and_a_short_row_is_refused_with_its_line(tmp_path, data):
    path = tmp_path / "w.csv"
    write_weather(path, data.weather[:2])
    header, first, second = path.read_text().splitlines()
    path.write_text(f"{header}\n\n{first}\n\n{second}\n")
    assert read_weather(path) == data.weather[:2]
    path.write_text(f"{header}\n{first}\n\n{second.rsplit(',', 1)[0]}\n")
    with pytest.raises(DatasetError, match=r"line 4: too few values"):
        read_weather(path)


def test_extra_columns_are_ignored_even_when_a_row_leaves_them_out(tmp_path, data):
    path = tmp_path / "w.csv"
    write_weather(path, data.weather[:2])
    header, first, second = path.read_text().splitlines()
    path.write_text(f"note,{header},station_name\nx,{first},Cointrin\n,{second}\n")
    assert read_weather(path) == data.weather[:2]


def test_missing_columns_and_files_are_clear_errors(tmp_path):
    (tmp_path / "w.csv").write_text("observed_at,lat\n")
    with pytest.raises(DatasetError, match="line 1: missing column"):
        read_weather(tmp_path / "w.csv")
    with pytest.raises(DatasetError, match="cannot read"):
        read_history(tmp_path / "absent.csv")
