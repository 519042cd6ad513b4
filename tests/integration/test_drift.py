"""Drift on the real stack: quiet on a stationary stream, alerted after an injected shift."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.postgres import history
from tests.integration.test_ab import MODEL_WORLD_SEED
from tests.integration.test_outcome_path import wait_for_stored, world_events
from tests.integration.test_prediction_path import set_flags, start_worker
from tests.integration.workers import collect_until_quiet, produce

DRIFT_KINDS = {"error_drift", "feature_drift", "prediction_drift"}
SHIFT = timedelta(minutes=10)


def shifted(actuals: list[tuple[bytes, bytes]], by: timedelta) -> list[tuple[bytes, bytes]]:
    """The same actual delays, every pickup ``by`` later (rush-hour-like congestion)."""
    out = []
    for key, value in actuals:
        a = json.loads(value)
        a["actual_delay_minutes"] += by.total_seconds() / 60
        a["observed_at"] = (datetime.fromisoformat(a["observed_at"]) + by).isoformat()
        out.append((key, json.dumps(a).encode()))
    return out


@pytest.mark.xfail(
    reason="issue 12, open: the test world of SyntheticWorld.past raises feature drift on "
    "lead_time_min in the calm stream; being fixed at its cause",
    strict=False,
)
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
    calm_bookings, calm_actuals = world_events(2000, "DC-", seed=21, world_seed=MODEL_WORLD_SEED)
    # Observed 10 minutes earlier than now, so that the shifted actuals are not from the future.
    drift_bookings, drift_actuals = world_events(
        1200, "DS-", seed=22, world_seed=MODEL_WORLD_SEED, now=datetime.now(UTC) - SHIFT
    )
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
    assert calm == [], calm
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
