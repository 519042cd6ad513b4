"""The closed loop's views on the real stack: the incident timeline (flag changes, model changes,
ramp moves, alerts, in time order, each linked to its evidence) and each pickup hour's MAE
estimated from the P90s, then realized, against an offline computation of the seeded rows."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.model_store import record_audit
from connectors.postgres import make_engine, write_alerts, write_outcomes, write_predictions
from models.estimate import expected_abs_error
from schemas import Arm, Outcome
from tests.factories import prediction
from tests.integration.ramp_world import drift_alert
from tests.integration.test_api import running_api
from tests.integration.workers import worker_env


@pytest.fixture
def env(stack: Any, own_database: str, topic_prefix: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "models").mkdir()
    return worker_env(stack, topic_prefix, tmp_path, DATABASE_URL=own_database)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_timeline_lists_every_kind_of_change_in_time_order_with_working_links(
    env: dict[str, str], tmp_path: Path
) -> None:
    run(env, "flags", "enable", "--percentage", "5", "--actor", "alice")
    record_audit(Path(env["MODEL_DIR"]), "promote", version="gb-1", previous="gb-0")
    engine = make_engine(env["DATABASE_URL"])
    try:
        write_alerts(engine, alerts=[drift_alert()])
    finally:
        engine.dispose()
    run(env, "ramp", "start", "--steps", "10,50", "--min-outcomes", "30", "--actor", "bob")
    with running_api(env, tmp_path / "api.log") as api:
        answer = api.get("/api/timeline?hours=1")
        items = answer.json()["items"]
        links = {item["link"]: api.get(item["link"]).status_code for item in items}
        bad = api.get("/api/timeline?hours=0")
    assert answer.status_code == 200
    kinds = [item["kind"] for item in items]
    assert kinds == ["flag_change", "model_promote", "feature_drift", "ramp_start", "flag_change"]
    times = [instant(item["at"]) for item in items]
    assert times == sorted(times)
    assert items[0]["title"] == "ML disabled at 0 % -> ML enabled at 5 %"
    assert items[0]["actor"] == "alice"
    assert items[3]["actor"] == "bob" and "ML to 10 %" in items[3]["detail"]
    assert items[4]["actor"] == "ramp" and items[4]["evidence"]["to"] == 10.0
    assert items[1]["evidence"]["version"] == "gb-1"
    assert set(links.values()) == {200}, links
    assert bad.status_code == 400 and bad.json()["detail"].startswith("hours: ")


def test_each_hour_s_mae_is_estimated_from_the_p90s_then_realized(
    env: dict[str, str], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    past = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    ahead = past + timedelta(hours=5)  # pickups still to come: estimated only
    rng = random.Random(4)
    predictions, outcomes, seeded = [], [], []
    for i in range(120):
        pickup = (past if i < 80 else ahead) + timedelta(minutes=rng.randrange(60))
        delay, spread = rng.uniform(2, 20), rng.uniform(0.5, 6)
        p = prediction(
            f"E-{i}", at=now - timedelta(hours=4), arm=Arm.ML, predicted_delay_minutes=delay,
            delay_p90_minutes=delay + spread, scheduled_pickup_at=pickup,
        )  # fmt: skip
        predictions.append(p)
        actual = None
        if i < 70:  # 70 of the 80 past pickups have their actual: 87.5 %
            actual = delay + rng.gauss(0, spread / 1.28)
            outcomes.append(
                Outcome(
                    booking_id=p.booking_id,
                    arm=Arm.ML,
                    served_by=Arm.ML,
                    model_version="rf-1",
                    bucket=1,
                    ml_traffic_percentage=50,
                    predicted_delay_minutes=delay,
                    predicted_p90_minutes=delay + spread,
                    actual_delay_minutes=actual,
                    error=delay - actual,
                    abs_error=abs(delay - actual),
                    scheduled_pickup_at=pickup,
                    predicted_at=p.predicted_at,
                    observed_at=pickup,
                )
            )
        seeded.append((pickup, delay, delay + spread, actual))
    engine = make_engine(env["DATABASE_URL"])
    try:
        write_predictions(engine, predictions=predictions)
        write_outcomes(engine, outcomes=outcomes)
    finally:
        engine.dispose()
    with running_api({**env, "LABEL_COVERAGE_TARGET": "0.8"}, tmp_path / "api.log") as api:
        body = api.get("/api/ml-monitoring/estimated?hours=6&ahead_hours=6").json()
    by_hour = {instant(h["hour_start"]): h for h in body["hours"]}
    assert set(by_hour) == {past, ahead}
    for hour, h in by_hour.items():
        rows = [s for s in seeded if s[0] >= hour and s[0] < hour + timedelta(hours=1)]
        estimated = [expected_abs_error(d, p90) for _, d, p90, _ in rows]
        realized = [abs(d - a) for _, d, _, a in rows if a is not None]
        assert h["n"] == h["n_estimated"] == len(rows)
        assert h["estimated_mae"] == pytest.approx(sum(estimated) / len(estimated), abs=1e-9)
        assert h["n_realized"] == len(realized)
        if realized:
            both = [
                expected_abs_error(d, p90) - abs(d - a) for _, d, p90, a in rows if a is not None
            ]
            assert h["realized_mae"] == pytest.approx(sum(realized) / len(realized), abs=1e-9)
            assert h["estimate_error"] == pytest.approx(sum(both) / len(both), abs=1e-9)
    assert by_hour[past]["status"] == "realized"  # 87.5 % >= the 80 % asked for
    assert by_hour[past]["mae"] == by_hour[past]["realized_mae"]
    assert by_hour[ahead]["status"] == "estimated" and by_hour[ahead]["realized_mae"] is None
    assert by_hour[ahead]["mae"] == by_hour[ahead]["estimated_mae"]
    assert body["estimate_error"]["hours"] == 1
    assert body["estimate_error"]["bias"] == pytest.approx(by_hour[past]["estimate_error"])
