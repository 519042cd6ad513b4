"""The outcome path on the real stack: actual delays joined with predictions into outcomes."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import redis
import sqlalchemy as sa

from connectors.postgres import history
from models.synthetic import SyntheticWorld
from schemas import Arm, BookingRequested
from schemas.tables import alerts as alerts_table
from schemas.tables import metric_buckets
from schemas.tables import outcomes as outcomes_table
from tests import factories
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
    """The hourly buckets equal a computation over every stored outcome, within 1e-9 (counts,
    the P90 coverage counts included, exactly)."""
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
        with_p90 = [r for r in group if r.predicted_p90_minutes is not None]
        assert b.p90_n == len(with_p90)
        assert b.p90_covered == sum(
            r.actual_delay_minutes <= r.predicted_p90_minutes for r in with_p90
        )


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


def test_p90s_published_with_predictions_are_counted_once_and_a_breach_raises_one_alert(
    stack, topic_prefix, home, migrated_database
):
    """Predictions with a P90, published as a producer would, joined with their actuals on the
    outcome path alone: the buckets' P90 counts equal the truth computed from the events, and
    the ML arm, whose every actual is beyond its P90, raises one interval_coverage alert."""
    n = 300
    tag = uuid.uuid4().hex[:8]
    prefix = f"CV{tag}-"
    bookings, actuals = world_events(n, prefix, seed=14)
    actual_of = {key.decode(): json.loads(value) for key, value in actuals}
    now = datetime.now(UTC)
    predictions = []
    for i, b in enumerate(bookings):
        arm = Arm.ML if i % 2 else Arm.HEURISTIC
        actual = actual_of[b.booking_id]["actual_delay_minutes"]
        if i % 7 == 0:
            p90 = None  # a producer that computes none: counted nowhere
        elif arm is Arm.ML:
            p90 = actual - 0.25  # beyond: the ML arm's P90s are too low
        else:
            p90 = actual if i % 4 == 0 else actual + 3.0  # within, at its edge or above
        predictions.append(
            factories.prediction(
                b.booking_id,
                at=now,
                arm=arm,
                model_version=f"{tag}-{arm.value}",
                predicted_delay_minutes=round(actual + (i % 5 - 2) * 1.5, 2),
                delay_p90_minutes=p90,
                scheduled_pickup_at=b.scheduled_pickup_at,
                booking_created_at=b.created_at,
            )
        )
    records = [(p.booking_id.encode(), p.model_dump_json().encode()) for p in predictions]
    # The heuristic's P90s are all within: a band reaching 1.0 keeps it quiet.
    env = {
        "ALERT_WINDOW": "20",
        "COVERAGE_ALERT_WINDOW": "20",
        "COVERAGE_ALERT_HIGH": "1.0",
        "P90_TRACKING_REDIS_KEY": f"{tag}:p90-tracking",
    }
    with start_worker(stack, topic_prefix, home, WORKER_ROLE="outcomes", **env):
        produce(stack, f"{topic_prefix}predictions", records + records[:40])  # 40 twice
        produce(stack, f"{topic_prefix}actual-delays", actuals + actuals[100:150])  # 50 twice
        assert wait_for_stored(migrated_database, prefix, n) == n
        time.sleep(2)  # alerts come back from their topic to be stored
        alerts = collect_until_quiet(stack, f"{topic_prefix}alerts", quiet_s=3)
    assert stored_outcomes(migrated_database, prefix) == n

    engine = sa.create_engine(migrated_database)
    with engine.connect() as c:
        stored = {
            r.booking_id: r
            for r in c.execute(
                sa.select(outcomes_table).where(outcomes_table.c.booking_id.like(f"{prefix}%"))
            )
        }
        buckets = c.execute(
            sa.select(metric_buckets).where(metric_buckets.c.model_version.like(f"{tag}-%"))
        ).all()
        coverage_alerts = [a for a in alerts if a["kind"] == "interval_coverage"]
        stored_alerts = c.execute(
            sa.select(alerts_table.c.alert_id).where(
                alerts_table.c.alert_id.in_([a["alert_id"] for a in coverage_alerts])
            )
        ).all()
    engine.dispose()

    # Each outcome keeps its prediction's P90, to the last bit.
    assert {b: r.predicted_p90_minutes for b, r in stored.items()} == {
        p.booking_id: p.delay_p90_minutes for p in predictions
    }
    # The truth, from the published events alone: per hour of the actual, arm and version.
    truth: dict[tuple, list[int]] = {}
    for p in predictions:
        a = actual_of[p.booking_id]
        hour = datetime.fromisoformat(a["observed_at"]).astimezone(UTC)
        key = (hour.replace(minute=0, second=0, microsecond=0), p.arm.value, p.model_version)
        counts = truth.setdefault(key, [0, 0, 0])
        counts[0] += 1
        if p.delay_p90_minutes is not None:
            counts[1] += 1
            counts[2] += a["actual_delay_minutes"] <= p.delay_p90_minutes
    got = {
        (b.hour_start.astimezone(UTC), b.arm, b.model_version): [b.n, b.p90_n, b.p90_covered]
        for b in buckets
    }
    assert got == truth
    totals = {arm: [0, 0, 0] for arm in ("ml", "heuristic")}
    for (_, arm, _), counts in truth.items():
        totals[arm] = [t + c for t, c in zip(totals[arm], counts, strict=True)]
    assert totals == {"ml": [150, 129, 0], "heuristic": [150, 128, 128]}
    assert_buckets_equal_offline(migrated_database)

    # One alert for the arm in breach, with its evidence, on Kafka and in PostgreSQL.
    assert [(a["subject"], a["evidence"]) for a in coverage_alerts] == [
        ("ml", {"n": 20, "covered": 0, "coverage": 0.0, "band_low": 0.85, "band_high": 1.0})
    ]
    assert len(stored_alerts) == 1

    # The online P90 tracking learned each version's misses: +0.9 per outcome beyond its P90,
    # -0.1 per outcome within, each outcome once (duplicates of the topics included).
    client = redis.Redis.from_url(stack.redis_url)
    sums = {k.decode(): float(v) for k, v in client.hgetall(f"{tag}:p90-tracking").items()}
    client.close()
    assert sums == pytest.approx({f"{tag}-ml": 0.9 * 129, f"{tag}-heuristic": -0.1 * 128}, abs=1e-6)


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
    # consumer's watchdog after its 10 s (streams/worker/faust_config.py).
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
