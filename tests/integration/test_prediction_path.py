"""The prediction path on the real stack: worker processes, Kafka, Redis and PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from connectors.flags import FlagState, FlagStore
from connectors.kafka import BlockingProducer
from models.routing import bucket
from models.synthetic import SyntheticWorld, invalid_booking_payloads
from tests.integration.workers import Worker, collect, collect_until_quiet, produce, worker_env

SALT = "delaycast-v1"


def booking_payloads(n: int, prefix: str, seed: int = 1) -> list[tuple[bytes, bytes]]:
    """n valid bookings created now, keyed by their ids."""
    world = SyntheticWorld(seed)
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        booking_id = f"{prefix}{i:06d}"
        booking = world.booking(now, rng).model_copy(update={"booking_id": booking_id})
        out.append((booking_id.encode(), booking.model_dump_json().encode()))
    return out


def set_flags(stack, prefix: str, *, enabled: bool, percentage: float) -> datetime:
    """Write the flags for this test's workers; returns when Redis holds them."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        FlagStore(client, f"{prefix}flags").update(
            initial=FlagState(False, 0.0, SALT),
            ml_enabled=enabled,
            ml_traffic_percentage=percentage,
            actor="test",
            now=datetime.now(UTC),
        )
    finally:
        client.close()
    return datetime.now(UTC)


@pytest.fixture
def home(tmp_path: Path, trained_model_dir: Path, migrated_database: str) -> Path:
    shutil.copytree(trained_model_dir, tmp_path / "models")
    return tmp_path


def start_worker(stack, prefix: str, home: Path, **env: str) -> Worker:
    worker = Worker(worker_env(stack, prefix, home, **env), home / f"worker-{time.time_ns()}.log")
    worker.start()
    worker.wait_for_log("Worker ready", 60)  # Faust's: partitions assigned
    return worker


def test_each_valid_booking_is_predicted_once_and_each_malformed_one_dead_lettered(
    stack, topic_prefix, home
):
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    valid = booking_payloads(600, "OK-")
    rng = random.Random(4)
    invalid = [(p.kind, p.value) for _ in range(3) for p in invalid_booking_payloads(rng)]
    bad = [(f"BAD-{i}".encode(), value) for i, (_kind, value) in enumerate(invalid)]
    mixed = valid + bad
    random.Random(9).shuffle(mixed)
    with start_worker(stack, topic_prefix, home):
        produce(stack, f"{topic_prefix}bookings", mixed)
        predictions = collect(stack, f"{topic_prefix}predictions", len(valid), timeout_s=90)
        letters = collect(stack, f"{topic_prefix}dead-letters", len(bad), timeout_s=30)
        time.sleep(2)  # anything extra (a duplicate) would arrive now
        predictions = collect_until_quiet(stack, f"{topic_prefix}predictions", quiet_s=2)

    ids = [p["booking_id"] for p in predictions]
    assert len(ids) == len(set(ids)) == len(valid)
    assert set(ids) == {key.decode() for key, _ in valid}
    served = {p["served_by"] for p in predictions}
    assert served == {"ml", "heuristic"}
    for p in predictions:
        assert (p["arm"] == "ml") == (p["bucket"] < 50)
        assert p["fallback_reason"] is None
        assert p["weather"]["source"] == "default"
        assert 0 <= p["confidence"] <= 1

    assert len(letters) == len(bad)
    by_key = dict(bad)
    kinds = dict(zip([k for k, _ in bad], [kind for kind, _ in invalid], strict=True))
    for letter in letters:
        key = base64.b64decode(letter["source_key_b64"])
        assert base64.b64decode(letter["original_value_b64"]) == by_key[key]
        assert letter["source_topic"] == f"{topic_prefix}bookings"
        assert letter["source_offset"] >= 0
        assert letter["error"]
        kind = kinds[key]
        expected = {
            "not_utf8": "decode",
            "empty": "decode",
            "not_json": "decode",
            "missing_field": "validation",
            "wrong_type": "validation",
            "lat_out_of_range": "validation",
            "naive_datetime": "validation",
            "unknown_vehicle_type": "validation",
            "not_object": "validation",
        }
        if kind in expected:
            assert letter["kind"] == expected[kind], (kind, letter["error"])
        hint = {
            "missing_field": "scheduled_pickup_at",
            "wrong_type": "pickup_lat",
            "lat_out_of_range": "pickup_lat",
            "naive_datetime": "timezone",
            "unknown_vehicle_type": "vehicle_type",
        }.get(kind)
        if hint:
            assert hint in letter["error"], (kind, letter["error"])


def test_ml_share_follows_the_rollout_and_raising_it_keeps_ml_bookings_on_ml(
    stack, topic_prefix, home
):
    topic = f"{topic_prefix}predictions"
    rounds = [(0, "R0-"), (30, "R30-"), (100, "R100-"), (60, "R30-")]
    arms: dict[tuple[int, str], str] = {}
    total = 0
    with start_worker(stack, topic_prefix, home):
        for percentage, prefix in rounds:
            set_flags(stack, topic_prefix, enabled=True, percentage=percentage)
            time.sleep(1.2)  # the flags reach every worker within 1 s
            produce(
                stack, f"{topic_prefix}bookings", booking_payloads(5000, prefix, seed=percentage)
            )
            total += 5000
            seen = collect(stack, topic, total, timeout_s=120)
            assert len(seen) == total
            mine = [
                p
                for p in seen
                if p["booking_id"].startswith(prefix) and p["ml_traffic_percentage"] == percentage
            ]
            assert len(mine) == 5000
            share = 100 * sum(p["arm"] == "ml" for p in mine) / 5000
            assert abs(share - percentage) <= 2, (percentage, share)
            for p in mine:
                arms[(percentage, p["booking_id"])] = p["arm"]
                assert p["bucket"] == bucket(SALT, p["booking_id"])
    on_ml_at_30 = [b for (pct, b), arm in arms.items() if pct == 30 and arm == "ml"]
    assert len(on_ml_at_30) > 1000
    assert all(arms[(60, b)] == "ml" for b in on_ml_at_30)
    assert sum(arm == "ml" for (pct, _), arm in arms.items() if pct == 100) == 5000
    assert sum(arm == "ml" for (pct, _), arm in arms.items() if pct == 0) == 0


def test_a_flag_change_reaches_a_running_worker_within_one_second(stack, topic_prefix, home):
    set_flags(stack, topic_prefix, enabled=True, percentage=0)
    payloads = booking_payloads(600, "F-")
    changed_at: list[datetime] = []

    def feed() -> None:
        producer = BlockingProducer(stack.kafka_bootstrap_servers, **{"linger.ms": 0})
        for i, (key, value) in enumerate(payloads):  # one booking every ~5 ms, ~3 s in all
            producer.send(f"{topic_prefix}bookings", key, value)
            if i == 200:
                changed_at.append(set_flags(stack, topic_prefix, enabled=True, percentage=100))
            time.sleep(0.005)
        producer.flush()

    with start_worker(stack, topic_prefix, home):
        feeder = threading.Thread(target=feed)
        feeder.start()
        feeder.join()
        predictions = collect(stack, f"{topic_prefix}predictions", len(payloads), timeout_s=60)
    assert len(predictions) == len(payloads)
    t0 = changed_at[0]
    after = [
        p
        for p in predictions
        if datetime.fromisoformat(p["predicted_at"]) > t0 + timedelta(seconds=1)
    ]
    assert len(after) >= 50
    assert all(p["ml_traffic_percentage"] == 100 for p in after)
    first_new = min(
        datetime.fromisoformat(p["predicted_at"])
        for p in predictions
        if p["ml_traffic_percentage"] == 100
    )
    print(f"flag change seen in predictions after {(first_new - t0).total_seconds() * 1000:.0f} ms")
    assert any(p["ml_traffic_percentage"] == 0 for p in predictions)


@pytest.mark.parametrize(
    ("make_bad", "reason"),
    [
        ("missing", "no_model"),
        ("corrupt", "bad_artifact"),
        ("features", "missing_feature"),
    ],
)
def test_a_missing_or_broken_artifact_gives_heuristic_predictions_with_the_reason(
    stack, topic_prefix, home, make_bad, reason
):
    models = home / "models"
    champion = models / (models / "CHAMPION").read_text().strip()
    if make_bad == "missing":
        shutil.rmtree(models)
        models.mkdir()
    elif make_bad == "corrupt":
        raw = bytearray((champion / "model.joblib").read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (champion / "model.joblib").write_bytes(bytes(raw))
    else:
        meta = json.loads((champion / "metadata.json").read_text())
        meta["features"] = [*meta["features"], "road_works_nearby"]
        (champion / "metadata.json").write_text(json.dumps(meta))
    set_flags(stack, topic_prefix, enabled=True, percentage=100)
    with start_worker(stack, topic_prefix, home) as worker:
        produce(stack, f"{topic_prefix}bookings", booking_payloads(200, "A-"))
        predictions = collect(stack, f"{topic_prefix}predictions", 200, timeout_s=60)
        log = worker.log()
    assert len(predictions) == 200
    assert {(p["arm"], p["served_by"], p["fallback_reason"]) for p in predictions} == {
        ("ml", "heuristic", reason)
    }
    assert all(p["model_version"].startswith("heuristic") for p in predictions)
    assert f"[ML] no model served ({reason}" in log


def test_a_worker_killed_mid_stream_loses_no_booking(stack, topic_prefix, home):
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    payloads = booking_payloads(4000, "K-")
    topic = f"{topic_prefix}predictions"
    worker = start_worker(stack, topic_prefix, home)
    try:
        produce(stack, f"{topic_prefix}bookings", payloads)
        collect(stack, topic, 300, timeout_s=60)
        worker.kill()  # SIGKILL: no orderly shutdown, no final commit
    finally:
        worker.stop()
    with start_worker(stack, topic_prefix, home):
        predictions = collect_until_quiet(stack, topic, quiet_s=4, timeout_s=120)
    ids = {p["booking_id"] for p in predictions}
    assert ids == {key.decode() for key, _ in payloads}
    print(f"{len(predictions) - len(ids)} bookings predicted twice after the kill")


ENGINE_READY = re.compile(r"prediction engine ready in process (\d+)")


def engine_pids(worker: Worker) -> list[int]:
    return engine_pids_from(worker.log())


def engine_pids_from(log: str) -> list[int]:
    return [int(pid) for pid in ENGINE_READY.findall(log)]


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        found |= {int(child) for child in path.read_text().split()}
    return found


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # a zombie has ended
    except OSError:
        return True


def left_running(pids: set[int], timeout_s: float = 15.0) -> list[int]:
    """The processes of ``pids`` still running after up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if not gone(pid)]


def test_an_engine_killed_mid_stream_is_replaced_and_no_booking_is_lost(stack, topic_prefix, home):
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    payloads = booking_payloads(3000, "E-")
    with start_worker(stack, topic_prefix, home) as worker:
        [first] = engine_pids(worker)
        produce(stack, f"{topic_prefix}bookings", payloads)
        collect(stack, f"{topic_prefix}predictions", 300, timeout_s=60)
        seen = len(worker.log())
        os.kill(first, signal.SIGKILL)
        worker.wait_for_log("the next batch starts a new one", 30, start_at=seen)
        worker.wait_for_log("prediction engine ready in process", 60, start_at=seen)
        predictions = collect_until_quiet(
            stack, f"{topic_prefix}predictions", quiet_s=4, timeout_s=120
        )
        pids = engine_pids(worker)
    assert gone(first)
    assert len(pids) == 2 and pids[1] != first  # exactly one new engine
    assert {p["booking_id"] for p in predictions} == {key.decode() for key, _ in payloads}
    # The batches the dead engine held were predicted again by the new one, not dead-lettered.
    letters = collect_until_quiet(stack, f"{topic_prefix}dead-letters", quiet_s=1, timeout_s=5)
    assert letters == []


def test_an_engine_killed_while_idle_is_replaced_at_the_next_batch(stack, topic_prefix, home):
    """The out-of-memory killer picks the engine (it holds the model), often between batches:
    the next batch finds the pool broken, starts a new engine, and is predicted there."""
    set_flags(stack, topic_prefix, enabled=True, percentage=100)
    payloads = booking_payloads(200, "I-")
    with start_worker(stack, topic_prefix, home) as worker:
        [first] = engine_pids(worker)
        seen = len(worker.log())
        os.kill(first, signal.SIGKILL)
        assert left_running({first}) == []
        produce(stack, f"{topic_prefix}bookings", payloads)
        predictions = collect(stack, f"{topic_prefix}predictions", 200, timeout_s=90)
        worker.wait_for_log("prediction engine ready in process", 60, start_at=seen)
        log = worker.log()[seen:]
        pids = engine_pids(worker)
    assert len(pids) == 2 and pids[1] != first
    assert {p["booking_id"] for p in predictions} == {key.decode() for key, _ in payloads}
    # Predicted by the new engine (ML at 100 %), not by the worker's fallback.
    assert {p["served_by"] for p in predictions} == {"ml"}
    assert "predicting in this process until it is back" not in log


def test_a_worker_killed_with_sigkill_leaves_no_engine_behind(stack, topic_prefix, home):
    worker = start_worker(stack, topic_prefix, home)
    try:
        [engine] = engine_pids(worker)
        assert worker.process is not None
        helpers = children_of(worker.process.pid)
        assert engine in helpers
        worker.kill()
        assert left_running(helpers) == []
    finally:
        worker.stop()


def test_the_inline_engine_gives_the_engine_process_s_predictions(stack, topic_prefix, home):
    """PREDICT_ENGINE=inline runs the same path in the worker's own loop. Two workers in
    consumer groups of their own, one per engine, predict the same bookings: each booking's two
    predictions are equal field by field, but for the times."""
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    produce(stack, f"{topic_prefix}bookings", booking_payloads(300, "S-", seed=11))
    logs = {}
    for n, engine in enumerate(["inline", "process"], start=1):
        group = {"CONSUMER_GROUP": f"engine-{engine}", "PREDICT_ENGINE": engine}
        with start_worker(stack, topic_prefix, home, **group) as worker:
            collect(stack, f"{topic_prefix}predictions", 300 * n, timeout_s=60)
            logs[engine] = worker.log()
    assert "prediction engine ready" not in logs["inline"]
    assert "prediction engine ready" in logs["process"]
    predictions = collect_until_quiet(stack, f"{topic_prefix}predictions", quiet_s=2)
    timeless = {"predicted_at", "processing_ms", "latency_ms"}
    pairs: dict[str, list[dict[str, object]]] = {}
    for p in predictions:
        pairs.setdefault(p["booking_id"], []).append(
            {k: v for k, v in p.items() if k not in timeless}
        )
    assert len(pairs) == 300
    assert all(len(pair) == 2 and pair[0] == pair[1] for pair in pairs.values())
    assert {pair[0]["served_by"] for pair in pairs.values()} == {"ml", "heuristic"}


def test_while_no_engine_can_start_the_worker_predicts_in_its_own_process(
    stack, topic_prefix, home
):
    """An engine that never gets ready in time (here: a start timeout of 1 ms) must not stop
    predictions: the worker loads the model itself and serves every booking, ML included."""
    set_flags(stack, topic_prefix, enabled=True, percentage=100)
    payloads = booking_payloads(300, "F-")
    with start_worker(stack, topic_prefix, home, PREDICT_ENGINE_START_TIMEOUT_S="0.001") as worker:
        produce(stack, f"{topic_prefix}bookings", payloads)
        predictions = collect(stack, f"{topic_prefix}predictions", 300, timeout_s=60)
        log = worker.log()
        assert worker.process is not None
        helpers = children_of(worker.process.pid)
    assert "predicting in this process until it starts" in log
    assert "worker ready (role all, group" in log and "predicting in this process)" in log
    assert engine_pids_from(log) == []
    assert len(predictions) == 300
    assert {p["served_by"] for p in predictions} == {"ml"}
    assert left_running(helpers) == []  # the failed starts left no process


def test_an_orderly_stop_stops_the_engine_without_killing_it(stack, topic_prefix, home):
    worker = start_worker(stack, topic_prefix, home)
    [engine] = engine_pids(worker)
    worker.stop()
    assert gone(engine)
    assert "[ML] prediction engine stopped" in worker.log()  # it ended itself: not killed
