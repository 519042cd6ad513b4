"""Incidents give the synthetic world a heavy tail: about the configured share of bookings is
hit, by 20–120 minutes more, in clusters of area and hour, the same for the history, live
bookings and their actuals; without them the world is byte for byte what it was."""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from connectors.datasets import write_history, write_weather
from models.synthetic import IncidentConfig, SyntheticWorld, generate_history, incidents_between
from models.synthetic.bookings import pickups_between
from models.synthetic.incidents import MAX_RATE, IncidentExposure, exposure, incident_hits
from models.synthetic.places import trip_coordinates
from models.synthetic.world import DEFAULT_WORLD_SEED
from schemas import ActualDelay
from streams.operate.cli.main import cli
from streams.operate.cli.params import DEFAULT_WORLD_SEED as CLI_WORLD_SEED
from streams.operate.cli.params import MAX_INCIDENT_RATE
from streams.operate.cli.produce_plan import synthetic_plans

END = datetime(2026, 11, 1, tzinfo=UTC)
DAYS, PER_DAY, SEED = 30, 600, 42
THREE_PERCENT = IncidentConfig(rate=0.03)


@pytest.fixture(scope="module")
def without():
    return generate_history(END - timedelta(days=DAYS), END, seed=SEED, bookings_per_day=PER_DAY)


@pytest.fixture(scope="module")
def with_incidents():
    return generate_history(
        END - timedelta(days=DAYS),
        END,
        seed=SEED,
        bookings_per_day=PER_DAY,
        incidents=THREE_PERCENT,
    )


def delays(history) -> np.ndarray:
    return np.array([r.actual_delay_minutes for r in history.rows])


@pytest.fixture(scope="module")
def year_of_pickups() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pickup times (Unix s), latitudes and longitudes of 100,000 bookings over a year."""
    rng = np.random.default_rng(11)
    pickups = pickups_between(rng, END - timedelta(days=365), END, 100_000)
    lat, lon, _, _ = trip_coordinates(rng, len(pickups))
    return np.array([p.timestamp() for p in pickups]), lat, lon


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Recorded from the code before incidents existed (commit e30b42a), with the computations below.
BEFORE_INCIDENTS = {
    "history_csv": "2f7c955b90b3dab6fae7a8fa1cc9c035f0d5b1be6b2b4353d0c22c0cbaabd3c7",
    "weather_csv": "867681498bb9d72a0a209aeb70be4c56da50127482da27bb0c7329b960490c2e",
    "past": "eda8f7cb5d4782ceeccd25f573abc5ed8f817d2de593cc7997fa281f6d00735e",
    "due": "b7eccc80f1a527c827cb9a822a85eef0d9c3622ad0d7dc0b3349023d1e751181",
    "plans": "fa6a4f27ca91ee1cc2c037580af6f9c077d6bb871577c32fa2a82d0a3278b41a",
}


def test_without_incidents_the_world_writes_the_same_bytes_as_before(tmp_path: Path):
    data = generate_history(END - timedelta(days=3), END, seed=42, bookings_per_day=300)
    assert len(data.rows) == 893
    write_history(tmp_path / "history.csv", data.rows)
    write_weather(tmp_path / "weather.csv", data.weather)
    world, now = SyntheticWorld(42), datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    past = world.past(now, 300, np.random.default_rng(3))
    rng = np.random.default_rng(5)
    due = [world.due(now, rng, after=timedelta(seconds=10)) for _ in range(100)]
    plans = synthetic_plans(
        count=100,
        invalid_fraction=0.05,
        seed=4,
        prefix="P",
        world_seed=42,
        actual_after=timedelta(seconds=10),
        clock=lambda: now,
    )
    records = b"".join(
        f"{r.due.isoformat()}|{r.topic}|".encode() + r.key + b"|" + r.value + b"\n"
        for plan in plans
        for r in plan
    )

    def events(some) -> bytes:
        return "".join(
            e.booking.model_dump_json() + e.actual.model_dump_json() for e in some
        ).encode()

    assert {
        "history_csv": sha256((tmp_path / "history.csv").read_bytes()),
        "weather_csv": sha256((tmp_path / "weather.csv").read_bytes()),
        "past": sha256(events(past)),
        "due": sha256(events(due)),
        "plans": sha256(records),
    } == BEFORE_INCIDENTS


@pytest.mark.parametrize("rate", [0.01, 0.03, 0.10])
def test_a_year_of_pickups_has_about_the_configured_share_hit(year_of_pickups, rate):
    hit = incident_hits(11, IncidentConfig(rate=rate), *year_of_pickups)
    assert hit.mean() == pytest.approx(rate, rel=0.1)


def test_incidents_hit_about_three_percent_of_a_history_and_none_when_off(without, with_incidents):
    assert [r.booking for r in with_incidents.rows] == [r.booking for r in without.rows]
    changed = delays(with_incidents) != delays(without)
    assert len(changed) > 17_000
    # A month is a few dozen incidents: the share of one month scatters around the rate.
    assert 0.02 < changed.mean() < 0.04
    unchanged = generate_history(
        END - timedelta(days=DAYS), END, seed=SEED, bookings_per_day=PER_DAY, incidents=None
    )
    assert np.count_nonzero(delays(unchanged) != delays(without)) == 0


def test_hit_bookings_are_late_by_20_to_120_minutes_more_and_the_others_unchanged(
    without, with_incidents
):
    hit = exposure(SEED, THREE_PERCENT, [r.booking for r in with_incidents.rows]).hit
    extra = delays(with_incidents) - delays(without)
    assert np.array_equal(extra != 0, hit)
    unclipped = hit & (delays(with_incidents) < 180)
    # Delays are rounded to 0.1 minute, before and after the extra.
    assert extra[unclipped].min() >= 20 - 0.1 and extra[unclipped].max() <= 120 + 0.1
    assert delays(without).max() < 80 < delays(with_incidents).max()


def test_the_extra_delay_is_heavy_tailed_within_its_range():
    extra = IncidentExposure(np.ones(100_000, dtype=bool), THREE_PERCENT).extra_minutes(
        np.random.default_rng(0)
    )
    assert extra.min() >= 20 and extra.max() <= 120
    median, p90, p99 = np.percentile(extra, [50, 90, 99])
    assert 30 < median < 35  # most incidents cost half an hour...
    assert p90 > 70 and p99 > 110  # ...and some nearly two hours
    assert extra.mean() > median + 5


def test_hit_bookings_cluster_in_few_areas_and_hours(year_of_pickups):
    pickup_s, lat, lon = year_of_pickups
    hit = np.flatnonzero(incident_hits(11, THREE_PERCENT, pickup_s, lat, lon))
    sample = np.random.default_rng(0).choice(len(pickup_s), size=len(hit), replace=False)

    def cells(index: np.ndarray) -> int:
        """Distinct (2-km square, hour) cells of the pickups."""
        return len(
            set(
                zip(
                    np.floor(lat[index] / 0.02).astype(int).tolist(),
                    np.floor(lon[index] / 0.03).astype(int).tolist(),
                    (pickup_s[index] // 3600).astype(int).tolist(),
                    strict=True,
                )
            )
        )

    def hours(index: np.ndarray) -> int:
        return len(set((pickup_s[index] // 3600).astype(int).tolist()))

    assert len(hit) > 2_500
    assert cells(hit) < 0.65 * cells(sample)
    assert hours(hit) < 0.5 * hours(sample)


def test_incidents_are_fixed_by_the_seed_whatever_the_period_asked(with_incidents):
    again = generate_history(
        END - timedelta(days=DAYS),
        END,
        seed=SEED,
        bookings_per_day=PER_DAY,
        incidents=THREE_PERCENT,
    )
    assert again.rows == with_incidents.rows
    week = incidents_between(SEED, THREE_PERCENT, END - timedelta(days=7), END)
    day = incidents_between(SEED, THREE_PERCENT, END - timedelta(days=1), END)
    assert 5 < len(week) < 50 and day == [i for i in week if i.end > END - timedelta(days=1)]
    other = incidents_between(SEED + 1, THREE_PERCENT, END - timedelta(days=7), END)
    assert other != week


def test_live_actual_delays_see_the_incidents_the_history_saw(with_incidents):
    rows, weathers = with_incidents.rows, with_incidents.row_weather
    hit = exposure(SEED, THREE_PERCENT, [r.booking for r in rows]).hit
    live, plain = SyntheticWorld(SEED, THREE_PERCENT), SyntheticWorld(SEED)
    picked = np.concatenate([np.flatnonzero(hit)[:40], np.flatnonzero(~hit)[:40]]).tolist()
    for i in picked:
        rng = np.random.default_rng(i)
        late = live.actual_delay(rows[i].booking, weathers[i], rng)
        rng = np.random.default_rng(i)
        usual = plain.actual_delay(rows[i].booking, weathers[i], rng)
        if hit[i]:
            assert 20 - 0.1 <= late - usual <= 120 + 0.1
        else:
            assert late == usual


def test_past_events_with_incidents_keep_their_bookings_and_add_the_extra_delay():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    plain = SyntheticWorld(SEED).past(now, 3000, np.random.default_rng(2))
    late = SyntheticWorld(SEED, THREE_PERCENT).past(now, 3000, np.random.default_rng(2))
    assert [e.booking for e in late] == [e.booking for e in plain]
    extra = np.array(
        [
            a.actual.actual_delay_minutes - b.actual.actual_delay_minutes
            for a, b in zip(late, plain, strict=True)
        ]
    )
    hit = exposure(SEED, THREE_PERCENT, [e.booking for e in late]).hit
    assert hit.any() and np.array_equal(extra != 0, hit)
    assert extra[hit].min() >= 20 - 0.1 and extra[hit].max() <= 120 + 0.1


# 24 November 2026, 16:34–18:25 UTC: an incident of 3 km around the centre of Geneva.
DURING_AN_INCIDENT = datetime(2026, 11, 24, 17, 10, tzinfo=UTC)


def test_due_bookings_an_incident_hits_are_observed_later_by_their_extra_delay():
    now, after = DURING_AN_INCIDENT, timedelta(seconds=10)
    (incident,) = [
        i
        for i in incidents_between(SEED, THREE_PERCENT, now, now + timedelta(seconds=1))
        if i.place == "Genève"
    ]
    assert incident.radius_km > 2.9
    plain, live = SyntheticWorld(SEED), SyntheticWorld(SEED, THREE_PERCENT)
    rng_plain, rng_live = np.random.default_rng(6), np.random.default_rng(6)
    pairs = [
        (plain.due(now, rng_plain, after=after), live.due(now, rng_live, after=after))
        for _ in range(120)
    ]
    assert all(a.booking == b.booking for a, b in pairs)  # placed as if there were none
    hit = exposure(SEED, THREE_PERCENT, [b.booking for _, b in pairs]).hit
    assert 15 < hit.sum() < 90  # the incident covers the busy centre
    for (usual, late), was_hit in zip(pairs, hit.tolist(), strict=True):
        later = late.actual.observed_at - usual.actual.observed_at
        if was_hit:
            assert timedelta(minutes=19.9) <= later <= timedelta(minutes=120.1)
        else:
            assert later == timedelta(0)


def test_the_producer_publishes_the_incidents_late_actuals():
    def actuals(incidents: IncidentConfig | None) -> dict[bytes, ActualDelay]:
        plans = synthetic_plans(
            count=120,
            invalid_fraction=0.0,
            seed=1,
            prefix="P",
            world_seed=SEED,
            actual_after=timedelta(seconds=10),
            clock=lambda: DURING_AN_INCIDENT,
            incidents=incidents,
        )
        records = [r for plan in plans for r in plan if r.topic == "actual-delays"]
        return {r.key: ActualDelay.model_validate_json(r.value) for r in records}

    usual, late = actuals(None), actuals(THREE_PERCENT)
    assert usual.keys() == late.keys()
    extra = [late[k].actual_delay_minutes - usual[k].actual_delay_minutes for k in sorted(usual)]
    hit = [e for e in extra if e != 0]
    assert len(hit) > 15 and all(19.9 <= e <= 120.1 for e in hit)
    assert all(
        late[k].observed_at - usual[k].observed_at == timedelta(minutes=e)
        for k, e in zip(sorted(usual), extra, strict=True)
        if e != 0
    )


@pytest.mark.parametrize("rate", [0.0, -0.01, 0.51, float("nan")])
def test_an_incident_config_refuses_a_rate_out_of_range(rate):
    with pytest.raises(ValueError, match="incident rate must be in"):
        IncidentConfig(rate=rate)


def test_the_command_line_knows_the_models_highest_rate_and_default_seed():
    assert MAX_INCIDENT_RATE == MAX_RATE
    assert CLI_WORLD_SEED == DEFAULT_WORLD_SEED


@pytest.mark.parametrize("value", ["0.7", "-0.1", "abc", "nan"])
@pytest.mark.parametrize(
    "command", [["synthetic", "history", "--out", "unused"], ["produce", "synthetic"]]
)
def test_a_bad_incident_rate_gets_a_message_saying_what_is_expected(command, value):
    result = CliRunner().invoke(cli, [*command, "--incidents", value])
    assert result.exit_code == 2
    assert "--incidents" in result.output
    assert "expected the share of bookings hit by incidents" in result.output
    assert "a number from 0 (none) to 0.5" in result.output


def test_synthetic_history_with_incidents_writes_later_delays(tmp_path: Path):
    def history(rate: str) -> tuple[dict, list[str]]:
        out = tmp_path / rate
        args = "synthetic history --days 7 --end 2026-11-01T00:00Z --bookings-per-day 400 "
        args += f"--weather-days-after 0 --seed 8 --incidents {rate} --out {out}"
        result = CliRunner().invoke(cli, args.split())
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout), (out / "history.csv").read_text().splitlines()

    (off, plain), (on, late) = history("0"), history("0.05")
    assert off["incidents"] == 0 and on["incidents"] == 0.05
    assert len(plain) == len(late) > 2_500
    changed = sum(a != b for a, b in zip(plain, late, strict=True))
    assert 0 < changed < 0.15 * len(plain)
