"""The operator commands on the real stack: verify, weather check, produce csv, replay,
reset-group and dead letters, each run as a subprocess like an operator would."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer

from connectors.datasets import write_history
from connectors.kafka import OffsetRange, RangeReader, committed_offsets
from connectors.kafka_admin import delete_topics
from connectors.postgres import history
from models.history import HistoryRow
from models.synthetic import invalid_booking_payloads
from tests.fakes.openweather_server import FakeOpenWeather
from tests.integration.test_outcome_path import world_events
from tests.integration.test_prediction_path import set_flags, start_worker
from tests.integration.workers import collect, collect_until_quiet, produce, worker_env

CHECKS = 16  # 3 model, kafka, 7 topics, 2 redis, 2 postgres, weather


@pytest.fixture
def home(tmp_path: Path, trained_model_dir: Path, migrated_database: str) -> Path:
    shutil.copytree(trained_model_dir, tmp_path / "models")
    return tmp_path


def run(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def lines_of(text: str, status: str) -> dict[str, str]:
    """check name -> detail of the verify lines with that status."""
    found = {}
    for line in text.splitlines():
        if line.startswith(f"{status}  "):
            name, detail = line[6:28].strip(), line[29:]
            found[name] = detail
    return found


def topic_size(stack, topic: str) -> int:
    with RangeReader(stack.kafka_bootstrap_servers) as reader:
        return sum(high - low for low, high in reader.watermarks(topic).values())


# --- verify ----------------------------------------------------------------------------------


def test_verify_passes_every_check_on_a_good_setup(stack, topic_prefix, home):
    secret = "verify-s3cret-key"
    with FakeOpenWeather(api_key=secret) as fake:
        env = worker_env(
            stack,
            topic_prefix,
            home,
            WEATHER_PROVIDER="openweather",
            OPENWEATHER_URL=fake.url,
            OPENWEATHER_API_KEY=secret,
        )
        result = ok(run(env, "verify"))
        as_json = json.loads(ok(run(env, "verify", "--json")).stdout)
    passed = lines_of(result.stdout, "PASS")
    assert len(passed) == CHECKS and not lines_of(result.stdout, "FAIL")
    assert f"all {CHECKS} checks passed" in result.stdout
    version = (home / "models" / "CHAMPION").read_text().strip()
    assert passed["model champion"].startswith(version)
    assert "sha256 verified" in passed["model checksum+load"]
    assert "for a synthetic booking" in passed["model predict"]
    assert passed["topic bookings"] == f"{topic_prefix}bookings, 4 partitions"
    assert "at the migrations head" in passed["postgres schema"]
    assert "the API key works" in passed["weather"] and "appid=***" in passed["weather"]
    assert secret not in result.stdout + result.stderr
    assert as_json["ok"] is True and len(as_json["checks"]) == CHECKS


def test_verify_fails_the_model_and_topic_lines_and_never_prints_a_password(
    stack, topic_prefix, home
):
    empty = home / "empty-models"
    empty.mkdir()
    delete_topics(stack.kafka_bootstrap_servers, [f"{topic_prefix}alerts"])
    password = "hunter2-redis"
    env = worker_env(
        stack,
        topic_prefix,
        home,
        MODEL_DIR=str(empty),
        REDIS_URL=stack.redis_url.replace("redis://", f"redis://nobody:{password}@"),
    )
    result = run(env, "verify")
    assert result.returncode == 1
    failed = lines_of(result.stdout, "FAIL")
    assert set(failed) == {"model champion", "topic alerts", "redis"}
    assert failed["model champion"].startswith(f"no CHAMPION in {empty}")
    assert failed["topic alerts"] == (
        f"{topic_prefix}alerts does not exist (delaycast topics create)"
    )
    assert password not in result.stdout + result.stderr
    passed = lines_of(result.stdout, "PASS")
    assert {"kafka", "topic bookings", "postgres", "postgres schema", "weather"} <= set(passed)
    assert f"3 of {len(failed) + len(passed)} checks FAILED" in result.stdout


# --- weather check ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "key", "code", "status", "says"),
    [
        ("ok", "good-key", 0, "ok", "18.4 °C, rain"),
        ("ok", "wrong-key", 1, "bad_key", "the API key was refused"),
        ("429", "good-key", 1, "rate_limited", "rate limited"),
        ("malformed", "good-key", 1, "malformed", "not OpenWeather's"),
        ("hang", "good-key", 1, "timeout", "did not answer within 1.0 s"),
    ],
)
def test_weather_check_tells_each_outcome_apart_and_hides_the_key(
    tmp_path, mode, key, code, status, says
):
    with FakeOpenWeather(api_key="good-key", hang_s=10) as fake:
        fake.mode = mode
        env = worker_env(
            _NoStack(),
            "t-weather.",
            tmp_path,
            WEATHER_PROVIDER="openweather",
            OPENWEATHER_URL=fake.url,
            OPENWEATHER_API_KEY=key,
            WEATHER_TIMEOUT_S="1",
        )
        started = time.monotonic()
        result = run(env, "weather", "check", "--lat", "46.5", "--lon", "6.6")
        elapsed = time.monotonic() - started
        assert fake.requests == 1  # once: no retries
        assert fake.queries[0]["lat"] == "46.5"
    assert result.returncode == code, result.stdout + result.stderr
    assert f"{'PASS' if code == 0 else 'FAIL'} {status}" in result.stdout
    assert says in result.stdout
    assert "appid=***" in result.stdout
    assert key not in result.stdout + result.stderr
    if mode == "hang":
        assert elapsed < 8


class _NoStack:
    """The weather check talks to no server of the stack."""

    kafka_bootstrap_servers = "127.0.0.1:1"
    redis_url = "redis://127.0.0.1:1/0"
    database_url = "postgresql+psycopg2://nobody@127.0.0.1:1/none"


# --- produce csv -----------------------------------------------------------------------------


def test_produce_csv_publishes_exactly_the_valid_rows_and_names_the_invalid_lines(
    stack, topic_prefix, tmp_path
):
    bookings, actuals = world_events(5, "CSV-")
    truth = {key.decode(): json.loads(value) for key, value in actuals}
    rows = [HistoryRow(b, truth[b.booking_id]["actual_delay_minutes"]) for b in bookings]
    path = tmp_path / "bookings.csv"
    write_history(path, rows)
    lines = path.read_text().splitlines()
    # Line 3 gets an unknown vehicle, line 5 a pickup off the globe: 5 valid rows, 2 invalid.
    bad_vehicle = lines[1].replace(",standard,", ",bus,").replace(",wheelchair,", ",bus,")
    bad_vehicle = bad_vehicle.replace(",stretcher,", ",bus,").replace("CSV-", "BAD-", 1)
    bad_lat = lines[2].replace("CSV-", "BAD-", 1).split(",")
    bad_lat[3] = "123.4"
    lines[2:2] = [bad_vehicle]
    lines[4:4] = [",".join(bad_lat)]
    path.write_text("\n".join(lines) + "\n")

    env = worker_env(stack, topic_prefix, tmp_path)
    result = run(env, "produce", "csv", str(path), "--actuals")
    assert result.returncode == 1, result.stderr
    assert (
        f"published 5 bookings to {topic_prefix}bookings and 5 actual delays to "
        f"{topic_prefix}actual-delays" in result.stdout
    )
    assert "2 invalid rows not sent (lines 3, 5)" in result.stdout
    assert f"{path}, line 3: vehicle_type" in result.stderr
    assert f"{path}, line 5: pickup_lat" in result.stderr

    sent = collect_until_quiet(stack, f"{topic_prefix}bookings", quiet_s=2)
    assert sorted(b["booking_id"] for b in sent) == sorted(b.booking_id for b in bookings)
    observed = collect_until_quiet(stack, f"{topic_prefix}actual-delays", quiet_s=1)
    assert {a["booking_id"]: a["actual_delay_minutes"] for a in observed} == {
        k: v["actual_delay_minutes"] for k, v in truth.items()
    }


# --- replay ----------------------------------------------------------------------------------


def test_replay_predicts_exactly_the_range_and_adds_no_outcome(stack, topic_prefix, home):
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    bookings, actuals = world_events(90, "RP-")
    records = [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings]
    topic = f"{topic_prefix}bookings"
    produce(stack, topic, records[:30])
    time.sleep(0.05)
    since = datetime.now(UTC)
    time.sleep(0.05)
    produce(stack, topic, records[30:70])
    time.sleep(0.05)
    until = datetime.now(UTC)
    time.sleep(0.05)
    produce(stack, topic, records[70:])
    env = worker_env(stack, topic_prefix, home, JOIN_SWEEP_INTERVAL_S="1")
    window = ["--since", since.isoformat(), "--until", until.isoformat()]

    dry = ok(run(env, "replay", "bookings", *window, "--dry-run"))
    assert "would replay 40 bookings" in dry.stdout
    assert topic_size(stack, f"{topic_prefix}predictions") == 0

    replayed = ok(run(env, "replay", "bookings", *window))
    assert "replayed 40 bookings" in replayed.stdout
    assert "40 predictions (replay=true)" in replayed.stdout
    assert "0 dead letters" in replayed.stdout
    predictions = collect_until_quiet(stack, f"{topic_prefix}predictions", quiet_s=2)
    assert len(predictions) == 40
    assert sorted(p["booking_id"] for p in predictions) == sorted(
        b.booking_id for b in bookings[30:70]
    )
    assert all(p["replay"] is True for p in predictions)
    # The flags now in Redis and the current champion, as a live worker would use them.
    version = (home / "models" / "CHAMPION").read_text().strip()
    assert {(p["ml_enabled"], p["ml_traffic_percentage"]) for p in predictions} == {(True, 50.0)}
    assert all((p["served_by"] == "ml") == (p["bucket"] < 50) for p in predictions)
    assert {p["model_version"] for p in predictions if p["served_by"] == "ml"} == {version}
    share = sum(p["served_by"] == "ml" for p in predictions) / 40
    assert f"ML share {100 * share:.1f} %" in replayed.stdout

    # An offset range: the first three bookings of one partition.
    with RangeReader(stack.kafka_bootstrap_servers) as reader:
        partition, (low, high) = max(reader.watermarks(topic).items(), key=lambda i: i[1][1])
    assert high - low >= 3
    by_offset = ok(
        run(
            env,
            *("replay", "bookings", "--partition", str(partition)),
            *("--from-offset", str(low), "--to-offset", str(low + 2)),
        )
    )
    assert "replayed 3 bookings" in by_offset.stdout
    replays = 43

    engine = sa.create_engine(stack.database_url)
    before = history.read_counters(engine)
    with start_worker(stack, topic_prefix, home, JOIN_SWEEP_INTERVAL_S="1"):
        collect(stack, f"{topic_prefix}predictions", replays + 90, timeout_s=90)
        produce(stack, f"{topic_prefix}actual-delays", actuals)
        collect(stack, f"{topic_prefix}outcomes", 90, timeout_s=90)
        outcomes = collect_until_quiet(stack, f"{topic_prefix}outcomes", quiet_s=3)
        time.sleep(2.5)  # the join's counters are flushed every second
    after = history.read_counters(engine)
    engine.dispose()
    assert len(outcomes) == 90
    assert sorted(o["booking_id"] for o in outcomes) == sorted(b.booking_id for b in bookings)
    grew = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert grew["join.outcomes"] == 90
    assert grew["join.replayed_predictions_skipped"] == replays
    assert grew.get("join.duplicate_predictions", 0) == 0


def test_replay_says_what_is_wrong_with_an_offset_range(stack, topic_prefix, home):
    produce(stack, f"{topic_prefix}bookings", [(b"k", b"{}")] * 2)
    env = worker_env(stack, topic_prefix, home)
    result = run(
        env, "replay", "bookings", "--partition", "99", "--from-offset", "0", "--to-offset", "1"
    )
    assert result.returncode == 2
    assert "partition 99 does not exist; the topic has 0, 1, 2, 3" in result.stderr


# --- reset-group -----------------------------------------------------------------------------


def consume_all_and_commit(stack, group: str, topic: str, count: int) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 60
    while seen < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen += 1
    assert seen == count
    consumer.commit(asynchronous=False)
    consumer.close()


def test_reset_group_moves_offsets_to_a_time_and_refuses_while_a_consumer_is_in(
    stack, topic_prefix, home
):
    topic = f"{topic_prefix}bookings"
    group = f"{topic_prefix}ops-group"
    produce(stack, topic, [(f"A-{i}".encode(), b"{}") for i in range(20)])
    time.sleep(0.05)
    to = datetime.now(UTC)
    time.sleep(0.05)
    produce(stack, topic, [(f"B-{i}".encode(), b"{}") for i in range(30)])
    consume_all_and_commit(stack, group, topic, 50)
    before = committed_offsets(stack.kafka_bootstrap_servers, group)
    assert sum(before.values()) == 50
    env = worker_env(stack, topic_prefix, home)
    args = ("replay", "reset-group", "--group", group, "--to", to.isoformat())

    dry = ok(run(env, *args, "--dry-run"))  # every topic the group has offsets on
    assert "would move group" in dry.stdout
    assert committed_offsets(stack.kafka_bootstrap_servers, group) == before

    moved = ok(run(env, *args, "--topic", "bookings"))
    after = committed_offsets(stack.kafka_bootstrap_servers, group)
    with RangeReader(stack.kafka_bootstrap_servers) as reader:
        marks = reader.watermarks(topic)
        at = reader.offsets_for_time(topic, sorted(marks), int(to.timestamp() * 1000))
    expected = {(topic, p): (marks[p][1] if o < 0 else o) for p, o in at.items()}
    assert after == expected
    assert sum(before.values()) - sum(after.values()) == 30  # B's 30 to be read again
    for (name, p), offset in expected.items():
        assert f"{name}[{p}] {before[(name, p)]} → {offset}" in moved.stdout

    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap_servers, "group.id": group})
    assigned: list[int] = []
    consumer.subscribe([topic], on_assign=lambda _c, parts: assigned.extend(parts))
    deadline = time.monotonic() + 30
    while not assigned and time.monotonic() < deadline:
        consumer.poll(0.2)
    try:
        assert assigned
        refused = run(env, *args, "--topic", "bookings")
    finally:
        consumer.close()
    assert refused.returncode == 1
    assert f"consumer group {group} has 1 active member(s)" in refused.stderr
    assert "stop its consumers (the workers) first" in refused.stderr


# --- dead letters ----------------------------------------------------------------------------


def test_dead_letters_are_listed_then_requeued_exactly_once(stack, topic_prefix, home):
    rng = random.Random(3)
    bad = [(f"BAD-{i}".encode(), p.value) for i, p in enumerate(invalid_booking_payloads(rng))]
    n = len(bad)
    bookings, _ = world_events(5, "DL-")
    good = [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings]
    topic = f"{topic_prefix}bookings"
    with start_worker(stack, topic_prefix, home):
        produce(stack, topic, good + bad)
        letters = collect(stack, f"{topic_prefix}dead-letters", n, timeout_s=60)
        collect(stack, f"{topic_prefix}predictions", len(good), timeout_s=60)
    assert len(letters) == n
    env = worker_env(stack, topic_prefix, home)

    listed = ok(run(env, "dead-letters", "list"))
    assert len(listed.stdout.splitlines()) == n
    assert all(f"  {topic}[" in line for line in listed.stdout.splitlines())
    assert f"{n} dead letters listed" in listed.stderr
    decode = sum(letter["kind"] == "decode" for letter in letters)
    by_kind = ok(run(env, "dead-letters", "list", "--kind", "decode"))
    assert len(by_kind.stdout.splitlines()) == decode
    first = ok(
        run(env, "dead-letters", "list", "--json", "--max", "3", "--source-topic", "bookings")
    )
    assert [json.loads(line)["source_topic"] for line in first.stdout.splitlines()] == [topic] * 3

    with RangeReader(stack.kafka_bootstrap_servers) as reader:
        marks_before = reader.watermarks(topic)
    size = topic_size(stack, topic)
    dry = ok(run(env, "dead-letters", "requeue", "--dry-run"))
    assert f"would requeue {n} of {n} dead letters ({topic} {n})" in dry.stdout
    assert topic_size(stack, topic) == size

    requeued = json.loads(ok(run(env, "dead-letters", "requeue", "--json")).stdout)
    assert (requeued["total_sent"], requeued["sent"]) == (n, {topic: n})
    assert topic_size(stack, topic) == size + n
    with RangeReader(stack.kafka_bootstrap_servers) as reader:
        ranges = [
            OffsetRange(p, high, end)
            for (p, (_low, high)), (_, (_l, end)) in zip(
                sorted(marks_before.items()), sorted(reader.watermarks(topic).items()), strict=True
            )
        ]
        resent = [
            (m.key(), m.value() or b"") for batch in reader.read(topic, ranges) for m in batch
        ]
    assert sorted(resent) == sorted(bad)  # the original key and value bytes

    again = ok(run(env, "dead-letters", "requeue"))
    assert "requeued 0 of 0 dead letters" in again.stdout
    assert topic_size(stack, topic) == size + n


def test_requeue_refuses_letters_naming_a_topic_that_is_not_an_input_topic(
    stack, topic_prefix, home
):
    """A dead letter is data any client can write: one naming predictions (forged or a bug)
    must not let requeue write predictions."""
    from schemas import DeadLetter, DeadLetterKind

    def forged(topic: str, i: int) -> tuple[bytes, bytes]:
        letter = DeadLetter(
            source_topic=topic,
            source_partition=0,
            source_offset=i,
            source_key_b64=DeadLetter.encode_bytes(f"FL-{i}".encode()),
            original_value_b64=DeadLetter.encode_bytes(b'{"forged": true}'),
            kind=DeadLetterKind.VALIDATION,
            error="forged for the test",
            failed_at=datetime.now(UTC),
            agent="predict",
        )
        return f"FL-{i}".encode(), letter.model_dump_json().encode()

    p = topic_prefix
    names = [f"{p}predictions"] * 3 + [f"{p}alerts", f"{p}outcomes"]
    names += [f"{p}bookings", f"{p}actual-delays"]
    produce(stack, f"{p}dead-letters", [forged(t, i) for i, t in enumerate(names)])
    sizes = {t: topic_size(stack, t) for t in set(names)}
    env = worker_env(stack, topic_prefix, home)

    dry = ok(run(env, "dead-letters", "requeue", "--dry-run"))
    assert dry.stdout.count("refused, not an input topic:") == 5
    assert "would requeue 2 of 7 dead letters" in dry.stdout
    assert (
        f"5 refused: they name topics that are not input topics ({p}alerts, {p}outcomes, "
        f"{p}predictions); requeue writes only to {p}actual-delays and {p}bookings"
    ) in dry.stdout

    report = json.loads(ok(run(env, "dead-letters", "requeue", "--json")).stdout)
    assert report["sent"] == {f"{p}bookings": 1, f"{p}actual-delays": 1}
    assert report["refused"] == {f"{p}predictions": 3, f"{p}alerts": 1, f"{p}outcomes": 1}
    assert report["allowed_topics"] == [f"{p}actual-delays", f"{p}bookings"]
    after = {t: topic_size(stack, t) for t in set(names)}
    assert after == {
        t: n + (1 if t in (f"{p}bookings", f"{p}actual-delays") else 0) for t, n in sizes.items()
    }
