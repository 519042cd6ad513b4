"""The challenger in shadow through a real worker: scored on every booking beside the champion,
never served, joined with the actuals, and compared paired, the same in the CLI, the API and an
offline scoring of the stored features."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from connectors.model_store import (
    challenger_version,
    champion_version,
    load_version,
    set_challenger,
    set_champion,
)
from connectors.postgres import make_engine
from models.features import FEATURE_NAMES
from models.paired import paired_difference
from schemas import tables
from tests.integration.test_ab import MODEL_WORLD_SEED
from tests.integration.test_api import running_api
from tests.integration.test_outcome_path import wait_for_stored, world_events
from tests.integration.test_prediction_path import set_flags, start_worker
from tests.integration.workers import produce, worker_env

N = 600


@pytest.fixture
def models(trained_model_dir: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """The trained champion, and a challenger trained beside it (another candidate kind)."""
    directory = tmp_path / "models"
    shutil.copytree(trained_model_dir, directory)
    champion = champion_version(directory)
    data = trained_model_dir.parent / "model-data"
    subprocess.run(
        [sys.executable, "-m", "streams", "train", "--history", str(data / "history.csv"),
         "--weather", str(data / "weather.csv"), "--out", str(directory), "--trees", "20",
         "--candidates", "forest"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    challenger = champion_version(directory)
    assert champion is not None and challenger is not None and challenger != champion
    set_challenger(directory, challenger)
    set_champion(directory, champion)  # as `delaycast retrain` leaves them
    assert challenger_version(directory) == challenger
    return directory, champion, challenger


def rows(database_url: str) -> tuple[list[Any], dict[str, Any]]:
    engine = make_engine(database_url)
    p, o = tables.predictions, tables.outcomes
    try:
        with engine.connect() as connection:
            predictions = connection.execute(sa.select(p).where(sa.not_(p.c.replay))).all()
            outcomes = {
                r.booking_id: r
                for r in connection.execute(sa.select(o).where(sa.not_(o.c.replay))).all()
            }
    finally:
        engine.dispose()
    return predictions, outcomes


def test_the_challenger_is_scored_in_shadow_joined_and_compared_paired(
    stack: Any, topic_prefix: str, tmp_path: Path, models: tuple[Path, str, str], own_database: str
) -> None:
    directory, champion, challenger = models
    bookings, actuals = world_events(N, "SHD-", seed=21, world_seed=MODEL_WORLD_SEED)
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    with start_worker(
        stack, topic_prefix, tmp_path, DATABASE_URL=own_database, MODEL_DIR=str(directory)
    ):
        produce(
            stack,
            f"{topic_prefix}bookings",
            [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings],
        )
        produce(stack, f"{topic_prefix}actual-delays", actuals)
        assert wait_for_stored(own_database, "SHD-", N) == N
    predictions, outcomes = rows(own_database)
    assert len(predictions) == N
    # Every booking, in both arms, carries the challenger's prediction; none is served by it.
    assert {p.shadow_model_version for p in predictions} == {challenger}
    assert {p.arm for p in predictions} == {"ml", "heuristic"}
    assert {p.model_version for p in predictions if p.served_by == "ml"} == {champion}
    # The shadow equals the challenger scored offline on the features each booking was served.
    x = np.array([[p.features[name] for name in FEATURE_NAMES] for p in predictions])
    offline, _ = load_version(directory, challenger).predictor.predict(x)
    shadow = np.array([p.shadow_delay_minutes for p in predictions])
    assert np.max(np.abs(offline - shadow)) <= 0.0005 + 1e-9  # rounded to 3 decimals
    # Joined with the actuals like the served prediction.
    for p in predictions:
        o = outcomes[p.booking_id]
        assert o.shadow_model_version == challenger
        assert o.shadow_predicted_delay_minutes == p.shadow_delay_minutes
        assert o.shadow_abs_error == pytest.approx(
            abs(p.shadow_delay_minutes - o.actual_delay_minutes), abs=1e-9
        )
    # Paired, on identical bookings: the CLI's figures equal an offline paired computation.
    env = worker_env(stack, topic_prefix, tmp_path, DATABASE_URL=own_database)
    out = subprocess.run(
        [sys.executable, "-m", "streams", "ab", "report", "--shadow", "--since",
         "2000-01-01T00:00:00+00:00", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert report["challengers"] == [challenger]
    compared = {c["against"]: c for c in report["comparisons"]}
    assert set(compared) == {"champion", "heuristic", "served"}
    for against, served_by in (("champion", ["ml"]), ("heuristic", ["heuristic"]),
                               ("served", ["ml", "heuristic"])):  # fmt: skip
        group = [o for o in outcomes.values() if o.served_by in served_by]
        expected = paired_difference(
            "c", np.array([o.shadow_abs_error for o in group]),
            "s", np.array([o.abs_error for o in group]),
        )  # fmt: skip
        got = compared[against]
        assert got["n"] == expected.n == len(group)
        for key, value in (("difference", expected.difference), ("ci_low", expected.low),
                           ("ci_high", expected.high), ("p_value", expected.p_value),
                           ("mae_challenger", expected.mae_a)):  # fmt: skip
            assert got[key] == pytest.approx(value, abs=1e-9), (against, key)
    # Per UTC hour of the actuals: every hour with two outcomes or more (one has no interval).
    per_hour = Counter(
        o.observed_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        for o in outcomes.values()
    )
    got_hours = {
        datetime.fromisoformat(h["hour_start"]).astimezone(UTC): c["n"]
        for h in report["hours"]
        for c in h["comparisons"]
        if c["against"] == "served"
    }
    assert got_hours == {hour: n for hour, n in per_hour.items() if n >= 2}
    # The API says the same, and the text report names the challenger.
    with running_api(env, tmp_path / "api.log") as api:
        answer = api.get("/api/shadow/report?window=all").json()
    for mine, theirs in zip(answer["comparisons"], report["comparisons"], strict=True):
        assert mine["against"] == theirs["against"] and mine["n"] == theirs["n"]
        assert mine["difference"] == pytest.approx(theirs["difference"], abs=1e-9)
    text = subprocess.run(
        [sys.executable, "-m", "streams", "ab", "report", "--shadow", "--window", "all"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert challenger in text and "champion" in text and "paired" in text
    refused = subprocess.run(
        [sys.executable, "-m", "streams", "ab", "report", "--shadow", "--min-samples", "5"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2 and "takes no --out or --min-samples" in refused.stderr
