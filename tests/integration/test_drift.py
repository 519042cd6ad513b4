"""Drift on the real stack: quiet on a stationary stream, alerted after an injected shift."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from connectors.postgres import history
from models.synthetic import SyntheticWorld
from schemas import BookingRequested
from tests.integration.test_ab import MODEL_WORLD_SEED
from tests.integration.test_outcome_path import wait_for_stored
from tests.integration.test_prediction_path import set_flags, start_worker
from tests.integration.workers import collect_until_quiet, produce

DRIFT_KINDS = {"error_drift", "feature_drift", "prediction_drift"}
SHIFT = timedelta(minutes=10)


def booked_together(
    n: int, prefix: str, seed: int, created: datetime
) -> tuple[list[BookingRequested], list[tuple[bytes, bytes]]]:
    """n bookings made within ten minutes of ``created``, as a live stream makes them, and
    their actual delays.

    The recorder's drift monitors take predictions in booking-creation order. Bookings whose
    pickups all fall in one past day (``SyntheticWorld.past``) have their creation times spread
    over the ten days before, so in creation order the long leads come first and the short ones
    last: a window then sees a lead-time mix no live stream has (lead_time_min crossed 0.15 on
    the "stationary" stream). Made together twelve days ago, every pickup (at most eleven days
    ahead) and every observation lies in the past, and the lead times are the world's own.
    """
    world = SyntheticWorld(MODEL_WORLD_SEED)
    rng = random.Random(seed)
    bookings, actuals = [], []
    for i in range(n):
        at = created + timedelta(seconds=rng.uniform(0, 600))
        booking = world.booking(at, rng).model_copy(update={"booking_id": f"{prefix}{i:05d}"})
        weather = world.weather(booking.pickup_lat, booking.pickup_lon, booking.scheduled_pickup_at)
        bookings.append(booking)
        actuals.append(
            (
                booking.booking_id.encode(),
                world.actual(booking, weather, rng).model_dump_json().encode(),
            )
        )
    return bookings, actuals


def shifted(actuals: list[tuple[bytes, bytes]], by: timedelta) -> list[tuple[bytes, bytes]]:
    """The same actual delays, every pickup ``by`` later (rush-hour-like congestion)."""
    out = []
    for key, value in actuals:
        a = json.loads(value)
        a["actual_delay_minutes"] += by.total_seconds() / 60
        a["observed_at"] = (datetime.fromisoformat(a["observed_at"]) + by).isoformat()
        out.append((key, json.dumps(a).encode()))
    return out


def test_a_stationary_stream_stays_quiet_and_a_shift_raises_error_drift(
    stack, topic_prefix, tmp_path: Path, trained_model_dir: Path, migrated_database
):
    shutil.copytree(trained_model_dir, tmp_path / "models")
    weather = trained_model_dir.parent / "model-data" / "weather.csv"
    # Weather may not fall back to its default while the recorded provider warms up on a busy
    # machine (34 of 2,000 lookups did once, past the default 250 ms wait): defaults are a real
    # shift of weather_is_default, which this test does not inject.
    env = {
        "WEATHER_PROVIDER": "recorded",
        "WEATHER_HISTORY_CSV": str(weather),
        "WEATHER_WAIT_MS": "5000",
    }
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    twelve_days_ago = datetime.now(UTC) - timedelta(days=12)
    calm_bookings, calm_actuals = booked_together(2000, "DC-", 21, twelve_days_ago)
    # Shifted by 10 minutes, these actuals are still observed before now.
    drift_bookings, drift_actuals = booked_together(1200, "DS-", 22, twelve_days_ago)
    alerts_topic = f"{topic_prefix}alerts"
    with start_worker(stack, topic_prefix, tmp_path, **env) as worker:
        produce(
            stack,
            f"{topic_prefix}bookings",
            [(b.booking_id.encode(), b.model_dump_json().encode()) for b in calm_bookings],
        )
        produce(stack, f"{topic_prefix}actual-delays", calm_actuals)
        assert wait_for_stored(migrated_database, "DC-", 2000) == 2000
        calm = [
            a
            for a in collect_until_quiet(stack, alerts_topic, quiet_s=2)
            if a["kind"] in DRIFT_KINDS
        ]

        produce(
            stack,
            f"{topic_prefix}bookings",
            [(b.booking_id.encode(), b.model_dump_json().encode()) for b in drift_bookings],
        )
        produce(stack, f"{topic_prefix}actual-delays", shifted(drift_actuals, SHIFT))
        assert wait_for_stored(migrated_database, "DS-", 1200) == 1200
        after = [
            a
            for a in collect_until_quiet(stack, alerts_topic, quiet_s=3)
            if a["kind"] in DRIFT_KINDS
        ]
        log = worker.log()
    assert calm == [], json.dumps(calm)[:3000]
    error_drift = [a for a in after if a["kind"] == "error_drift"]
    assert error_drift, after
    assert {a["subject"] for a in error_drift} <= {"ml", "heuristic"}
    assert "ALERT WARNING error_drift" in log
    # Stopping saved the monitors' state; the next worker restores it.
    engine = sa.create_engine(migrated_database)
    prefix = f"{topic_prefix}delaycast:drift:"
    for name in ("errors", "predictions"):
        state = history.load_checkpoint(engine, name=prefix + name)
        assert state is not None and len(state) > 100
    engine.dispose()
    with start_worker(stack, topic_prefix, tmp_path, **env) as again:
        again.wait_for_log("drift monitors: 3 restored", 30)
