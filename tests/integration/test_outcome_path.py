"""The outcome path on the real stack: actual delays joined with predictions into outcomes."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from connectors.postgres import history
from models.synthetic import SyntheticWorld
from schemas import BookingRequested
from schemas.tables import metric_buckets
from schemas.tables import outcomes as outcomes_table
from tests.integration.test_prediction_path import (
    children_of,
    gone,
    left_running,
    set_flags,
    start_worker,
)
from tests.integration.workers import collect, collect_until_quiet, produce


@pytest.fixture
def home(tmp_path: Path, trained_model_dir: Path, migrated_database: str) -> Path:
    shutil.copytree(trained_model_dir, tmp_path / "models")
    return tmp_path


def world_events(
    n: int,
    prefix: str,
    seed: int = 2,
    world_seed: int | None = None,
    now: datetime | None = None,
) -> tuple[list[BookingRequested], list[tuple[bytes, bytes]]]:
    """n bookings and their actual delays, from the synthetic world's ground truth: pickups in
    the day before ``now`` (default: the wall clock) less 3 hours, so every actual is observed
    by then, whatever the day and the hour the test runs."""
    world = SyntheticWorld(seed if world_seed is None else world_seed)
    ids = [f"{prefix}{i:05d}" for i in range(n)]
    events = world.past(now or datetime.now(UTC), n, random.Random(seed), ids=ids)
    bookings = [e.booking for e in events]
    actuals = [(e.booking.booking_id.encode(), e.actual.model_dump_json().encode()) for e in events]
    return bookings, actuals


def test_mixed_order_and_duplicates_give_exactly_one_outcome_per_booking(stack, topic_prefix, home):
    n = 1500
    bookings, actuals = world_events(n, "J-")
    booking_records = [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings]
    rng = random.Random(5)
    early = actuals[: n // 3]  # these actuals arrive before their bookings are even published
    late = actuals[n // 3 :]
    duplicated_actuals = rng.sample(actuals, 200)
    duplicated_bookings = rng.sample(booking_records, 150)  # predicted twice
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    engine = sa.create_engine(stack.database_url)
    before = history.read_counters(engine)
    # The actuals of a day of pickups arrive at once, in random order: a horizon far wider than
    # that keeps every entry, whatever the order the sweeps see them in.
    env = {"JOIN_SWEEP_INTERVAL_S": "1", "JOIN_HORIZON_DAYS": "60"}
    with start_worker(stack, topic_prefix, home, **env):
        produce(stack, f"{topic_prefix}actual-delays", early)
        produce(stack, f"{topic_prefix}bookings", booking_records)
        collect(stack, f"{topic_prefix}predictions", n, timeout_s=90)
        late_and_dupes = late + duplicated_actuals
        rng.shuffle(late_and_dupes)
        produce(stack, f"{topic_prefix}actual-delays", late_and_dupes)
        produce(stack, f"{topic_prefix}bookings", duplicated_bookings)
        collect(stack, f"{topic_prefix}outcomes", n, timeout_s=90)
        outcomes = collect_until_quiet(stack, f"{topic_prefix}outcomes", quiet_s=3)
        predictions = collect_until_quiet(stack, f"{topic_prefix}predictions", quiet_s=1)
        time.sleep(2)  # the counters are flushed every second
    after = history.read_counters(engine)
    engine.dispose()
    grew = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert grew["join.outcomes"] == n
    assert grew["join.duplicate_actuals"] == len(duplicated_actuals)
    assert grew.get("join.expired_predictions", 0) == 0

    assert len(outcomes) == n
    assert sorted(o["booking_id"] for o in outcomes) == sorted(b.booking_id for b in bookings)
    first_prediction: dict[str, dict] = {}
    for p in predictions:
        first_prediction.setdefault(p["booking_id"], p)
    truth = {key.decode(): json.loads(value)["actual_delay_minutes"] for key, value in actuals}
    for o in outcomes:
        p = first_prediction[o["booking_id"]]
        assert o["arm"] == p["arm"] and o["model_version"] == p["model_version"]
        assert o["predicted_delay_minutes"] == p["predicted_delay_minutes"]
        expected_actual = truth[o["booking_id"]]
        assert o["actual_delay_minutes"] == expected_actual
        assert o["error"] == pytest.approx(o["predicted_delay_minutes"] - expected_actual)


def stored_outcomes(database_url: str, prefix: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as c:
            return int(
                c.execute(
                    sa.select(sa.func.count()).where(outcomes_table.c.booking_id.like(f"{prefix}%"))
                ).scalar_one()
            )
    finally:
        engine.dispose()


def wait_for_stored(database_url: str, prefix: str, n: int, timeout_s: float = 90) -> int:
    deadline = time.monotonic() + timeout_s
    count = stored_outcomes(database_url, prefix)
    while count < n and time.monotonic() < deadline:
        time.sleep(0.5)
        count = stored_outcomes(database_url, prefix)
    return count


def assert_buckets_equal_offline(database_url: str) -> None:
    """The hourly buckets equal a computation over every stored outcome, within 1e-9."""
    engine = sa.create_engine(database_url)
    with engine.connect() as c:
        rows = c.execute(sa.select(outcomes_table).where(outcomes_table.c.replay.is_(False))).all()
        buckets = c.execute(
            sa.select(metric_buckets).where(metric_buckets.c.replay.is_(False))
        ).all()
    engine.dispose()
    offline: dict[tuple, list] = {}
    for r in rows:
        hour = r.observed_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        offline.setdefault((hour, r.arm, r.model_version), []).append(r)
    assert len(buckets) == len(offline)
    for b in buckets:
        group = offline[(b.hour_start.astimezone(UTC), b.arm, b.model_version)]
        errors = np.array([r.error for r in group])
        actual = np.array([r.actual_delay_minutes for r in group])
        predicted = np.array([r.predicted_delay_minutes for r in group])
        assert b.n == len(group)
        assert b.sum_error == pytest.approx(errors.sum(), rel=1e-9, abs=1e-9)
        assert b.sum_abs_error == pytest.approx(np.abs(errors).sum(), rel=1e-9, abs=1e-9)
        assert b.sum_sq_error == pytest.approx((errors**2).sum(), rel=1e-9, abs=1e-9)
        assert b.sum_actual == pytest.approx(actual.sum(), rel=1e-9, abs=1e-9)
        assert b.sum_actual_sq == pytest.approx((actual**2).sum(), rel=1e-9, abs=1e-9)
        assert b.n_underestimated == int(((actual - predicted) > 5).sum())


def test_outcomes_are_stored_once_with_exact_hourly_metrics(
    stack, topic_prefix, home, migrated_database
):
    n = 800
    bookings, actuals = world_events(n, "PG-", seed=8)
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    with start_worker(stack, topic_prefix, home):
        produce(
            stack,
            f"{topic_prefix}bookings",
            [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings],
        )
        produce(stack, f"{topic_prefix}actual-delays", actuals + actuals[:100])  # 100 redelivered
        assert wait_for_stored(migrated_database, "PG-", n) == n
        time.sleep(2)
    assert stored_outcomes(migrated_database, "PG-") == n
    assert_buckets_equal_offline(migrated_database)


def test_a_worker_killed_mid_stream_gives_the_same_outcomes_and_metrics(
    stack, topic_prefix, home, migrated_database
):
    n = 2000
    bookings, actuals = world_events(n, "KR-", seed=9)
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    worker = start_worker(stack, topic_prefix, home)
    try:
        produce(
            stack,
            f"{topic_prefix}bookings",
            [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings],
        )
        produce(stack, f"{topic_prefix}actual-delays", actuals)
        collect(stack, f"{topic_prefix}outcomes", 200, timeout_s=60)
        worker.kill()
    finally:
        worker.stop()
    with start_worker(stack, topic_prefix, home) as restarted:
        assert wait_for_stored(migrated_database, "KR-", n, timeout_s=120) == n
        time.sleep(2)
        log = restarted.log()
    assert stored_outcomes(migrated_database, "KR-") == n
    assert_buckets_equal_offline(migrated_database)
    # Read from the start where the killed worker never committed, not rescued by the
    # consumer's watchdog after its 10 s (streams/faust_config.py).
    assert "those records are read again" not in log


def test_the_two_paths_in_processes_of_their_own_give_the_same_outcomes(stack, topic_prefix, home):
    n = 400
    bookings, actuals = world_events(n, "R-", seed=8)
    booking_records = [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings]
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    with (
        start_worker(stack, topic_prefix, home, WORKER_ROLE="predict") as predicting,
        start_worker(stack, topic_prefix, home, WORKER_ROLE="outcomes") as joining,
    ):
        produce(stack, f"{topic_prefix}bookings", booking_records)
        predictions = collect(stack, f"{topic_prefix}predictions", n, timeout_s=90)
        produce(stack, f"{topic_prefix}actual-delays", actuals)
        outcomes = collect(stack, f"{topic_prefix}outcomes", n, timeout_s=90)
        stored = wait_for_stored(stack.database_url, "R-", n)
        time.sleep(2)  # a duplicate would arrive now
        outcomes = collect_until_quiet(stack, f"{topic_prefix}outcomes", quiet_s=2)
        predict_log, join_log = predicting.log(), joining.log()

    assert sorted(o["booking_id"] for o in outcomes) == sorted(b.booking_id for b in bookings)
    assert stored == n
    by_id = {p["booking_id"]: p for p in predictions}
    assert all(o["arm"] == by_id[o["booking_id"]]["arm"] for o in outcomes)
    # Each process ran its own path only, under its own consumer group.
    assert f"role predict, group {topic_prefix}delaycast, predicting in an engine" in predict_log
    assert f"role outcomes, group {topic_prefix}delaycast-outcomes, predicting nothing" in join_log
    assert "drift monitors:" not in predict_log  # the recorder (history, drift) ...
    assert "drift monitors:" in join_log  # ... runs with the outcome path
    assert "model not loaded (this role does not predict)" in join_log  # nor holds the forest


RECORDER_STARTED = re.compile(r"history recorder started in process (\d+)")


def recorder_pids(log: str) -> list[int]:
    return [int(pid) for pid in RECORDER_STARTED.findall(log)]


def test_a_recorder_killed_mid_stream_is_started_again_and_records_every_outcome(
    stack, topic_prefix, home, migrated_database
):
    n = 1500
    bookings, actuals = world_events(n, "RK-", seed=12)
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    with start_worker(stack, topic_prefix, home) as worker:
        [first] = recorder_pids(worker.log())
        produce(
            stack,
            f"{topic_prefix}bookings",
            [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings],
        )
        produce(stack, f"{topic_prefix}actual-delays", actuals)
        deadline = time.monotonic() + 60
        while stored_outcomes(migrated_database, "RK-") < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
        seen = len(worker.log())
        os.kill(first, signal.SIGKILL)
        worker.wait_for_log("the history recorder process ended (exit code -9)", 30, start_at=seen)
        worker.wait_for_log("history recorder started in process", 30, start_at=seen)
        assert wait_for_stored(migrated_database, "RK-", n, timeout_s=120) == n
        time.sleep(2)
        pids = recorder_pids(worker.log())
    assert gone(first)
    assert len(pids) == 2 and pids[1] != first  # exactly one new recorder
    assert stored_outcomes(migrated_database, "RK-") == n  # once each, none lost
    assert_buckets_equal_offline(migrated_database)


def test_a_worker_killed_with_sigkill_leaves_no_recorder_behind(stack, topic_prefix, home):
    worker = start_worker(stack, topic_prefix, home, WORKER_ROLE="outcomes")
    try:
        [recorder] = recorder_pids(worker.log())
        assert worker.process is not None
        assert recorder in children_of(worker.process.pid)
        worker.kill()
        assert left_running({recorder}) == []
    finally:
        worker.stop()


def test_an_orderly_stop_stops_the_recorder_without_killing_it(stack, topic_prefix, home):
    worker = start_worker(stack, topic_prefix, home, WORKER_ROLE="outcomes")
    [recorder] = recorder_pids(worker.log())
    worker.wait_for_log("drift monitors:", 60)  # restored (none yet): the recorder runs
    worker.stop()
    assert gone(recorder)
    log = worker.log()
    assert "[ML] history recorder stopped" in log  # it ended itself: not killed
    assert "did not stop" not in log
