"""Every command of every runbook, run against a real stack of its own.

Some runbooks stop Redis or PostgreSQL, so this module starts a dedicated stack (Kafka, Redis,
PostgreSQL in ``session_dir/runbooks``) instead of using the session's, and the commands find it
the way an operator's would: ``DELAYCAST_HOME`` names that stack and no server URL is set, so
``delaycast stack up`` in a runbook restarts what was stopped. Each test prepares the situation
its runbook is for (a worker with traffic, dead letters, a server really stopped), runs the
runbook by the rules of runbooks/README.md (see ``runbook_harness``), and asserts the effect with
values.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from confluent_kafka import Producer

from connectors.flags import FlagState, FlagStore
from connectors.kafka import BlockingProducer, RangeReader, read_topic
from connectors.kafka_admin import KafkaAdminError, delete_topics, ensure_topics, list_topics
from connectors.model_store import set_challenger
from connectors.postgres import make_engine, upgrade
from models.synthetic import SyntheticWorld, invalid_booking_payloads
from schemas.tables import alerts as alerts_table
from schemas.tables import flag_changes, outcomes, predictions, ramp_moves
from schemas.topics import TOPICS, topic_name
from streams.settings import Settings
from streams.tools.stack import Endpoints, External, StackManager
from streams.tools.stack.manager import DEFAULT_PARTITIONS
from streams.tools.stack.ports import any_free_port
from tests.fakes.openweather_server import FakeOpenWeather
from tests.hostile.corpus import actual as hostile_actual
from tests.hostile.corpus import booking as hostile_booking
from tests.integration.conftest import xdist_ports
from tests.integration.runbook_harness import RunbookRun, Service, answers, run_runbook, service
from tests.integration.test_hostile_traffic import PASSED_OVER, publish_in_transactions
from tests.integration.workers import Worker

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "runbooks"
VENV_BIN = Path(sys.executable).parent
DELAYCAST = str(VENV_BIN / "delaycast")
PORTS = xdist_ports(kafka=39092, redis=36379, postgres=35432)
WEATHER_KEY = "runbook-weather-key"
VERIFY_PASSED = re.compile(r"^verify: all \d+ checks passed$", re.MULTILINE)
# Variables the runbooks read besides the settings; never inherited from the caller's shell.
RUNBOOK_VARS = (
    "DELAYCAST_HOME",
    "API_URL",
    "HISTORY_CSV",
    "WEATHER_CSV",
    "BACKUP_DIR",
    "STAMP",
    "SINCE",
    "UNTIL",
    "GAP_TOPIC",
    "GAP_PARTITION",
    "GAP_FROM",
    "GAP_TO",
)


# --- the stack, the data and the environment ----------------------------------------------------


@pytest.fixture(scope="module")
def runbook_stack(session_dir: Path, request: pytest.FixtureRequest) -> Iterator[StackManager]:
    manager = StackManager(session_dir / "runbooks", ports=PORTS, external=External())
    try:
        # Kafka's start and the model's training overlap: each takes seconds of one core.
        with ThreadPoolExecutor(max_workers=1) as pool:
            starting = pool.submit(manager.up)
            request.getfixturevalue("trained_model_dir")
            request.getfixturevalue("history_csvs")
            result = starting.result()
        engine = make_engine(result.endpoints.database_url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield manager
    finally:
        manager.down()


def endpoints(manager: StackManager) -> Endpoints:
    """The stack's endpoints now: a runbook's `delaycast stack up` may have moved a server."""
    found = manager.endpoints()
    assert found is not None, "the runbook stack is not running"
    return found


@contextlib.contextmanager
def database(manager: StackManager) -> Iterator[sa.Connection]:
    engine = make_engine(endpoints(manager).database_url)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def history_csvs(session_dir: Path) -> tuple[Path, Path]:
    out = session_dir / "runbook-history"
    subprocess.run(
        [
            *(DELAYCAST, "synthetic", "history", "--out", str(out), "--days", "20"),
            *("--bookings-per-day", "300", "--seed", "11"),
        ],
        check=True,
        capture_output=True,
    )
    return out / "history.csv", out / "weather.csv"


@pytest.fixture(scope="module")
def openweather() -> Iterator[FakeOpenWeather]:
    with FakeOpenWeather(api_key=WEATHER_KEY) as fake:
        yield fake


@pytest.fixture
def env(
    runbook_stack: StackManager,
    history_csvs: tuple[Path, Path],
    openweather: FakeOpenWeather,
    trained_model_dir: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, str]]:
    """The environment of the runbooks' shells: what the deployment's settings would hold."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name.removeprefix("test_"))[:30]
    prefix = f"rb-{slug}-{uuid.uuid4().hex[:6]}."
    bootstrap = endpoints(runbook_stack).kafka_bootstrap_servers
    ensure_topics(bootstrap, [topic_name(t.name, prefix) for t in TOPICS], DEFAULT_PARTITIONS)
    models = tmp_path / "models"
    shutil.copytree(trained_model_dir, models)
    settings_names = {name.upper() for name in Settings.model_fields}
    values = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in settings_names and k not in RUNBOOK_VARS
    }
    port = any_free_port()
    values.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        DELAYCAST_HOME=str(runbook_stack.paths.home),
        TOPIC_PREFIX=prefix,
        FLAGS_REDIS_KEY=f"{prefix}flags",
        MODEL_DIR=str(models),
        API_TOKEN=secrets.token_hex(16),
        API_PORT=str(port),
        API_URL=f"http://127.0.0.1:{port}",
        HISTORY_CSV=str(history_csvs[0]),
        WEATHER_CSV=str(history_csvs[1]),
        BACKUP_DIR=str(tmp_path / "backups"),
        WEATHER_PROVIDER="openweather",
        OPENWEATHER_API_KEY=WEATHER_KEY,
        OPENWEATHER_URL=openweather.url,
        LOG_LEVEL="info",
        BATCH_WITHIN_S="0.02",
        # Actual delays of pickups days ahead arrive at once; keep them all joinable.
        JOIN_HORIZON_DAYS="60",
    )
    (tmp_path / "work").mkdir()
    (tmp_path / "logs").mkdir()
    yield values
    with contextlib.suppress(KafkaAdminError):
        bootstrap = endpoints(runbook_stack).kafka_bootstrap_servers
        delete_topics(bootstrap, [n for n in list_topics(bootstrap) if n.startswith(prefix)])


# --- helpers ------------------------------------------------------------------------------------


def delaycast(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([DELAYCAST, *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"delaycast {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def runbook(
    name: str,
    env: dict[str, str],
    tmp_path: Path,
    *,
    before: dict[str, Callable[[], None]] | None = None,
) -> contextlib.AbstractContextManager[RunbookRun]:
    return run_runbook(
        RUNBOOKS / name, env, tmp_path / "work", logs=tmp_path / "logs", before=before
    )


def api(
    env: dict[str, str], tmp_path: Path, *, wait: bool = True
) -> contextlib.AbstractContextManager[Service]:
    return service(
        [DELAYCAST, "api"],
        env,
        tmp_path / "logs" / "api.log",
        ready=lambda: answers(f"{env['API_URL']}/api/health"),
        wait=wait,
    )


def producer(
    env: dict[str, str], tmp_path: Path, id_prefix: str, rate: int = 50
) -> contextlib.AbstractContextManager[Service]:
    """An endless synthetic producer: live traffic while a runbook runs."""
    argv = [DELAYCAST, "produce", "synthetic", "--count", "0", "--rate", str(rate)]
    argv.extend(["--id-prefix", id_prefix])
    return service(argv, env, tmp_path / "logs" / "producer.log")


def set_flags(manager: StackManager, env: dict[str, str], *, percentage: float) -> None:
    """ML enabled at ``percentage`` in Redis, as the situation a runbook starts from."""
    client = redis.Redis.from_url(endpoints(manager).redis_url)
    try:
        FlagStore(client, env["FLAGS_REDIS_KEY"]).update(
            initial=FlagState(False, 0.0, "delaycast-v1"),
            ml_enabled=True,
            ml_traffic_percentage=percentage,
            actor="test-setup",
            now=datetime.now(UTC),
        )
    finally:
        client.close()


def worker(env: dict[str, str], tmp_path: Path, **overrides: str) -> Worker:
    return Worker({**env, **overrides}, tmp_path / "logs" / "worker.log")


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout_s:.0f} s: {what}")
        time.sleep(0.3)


def flags_in_redis(manager: StackManager, env: dict[str, str]) -> FlagState | None:
    client = redis.Redis.from_url(endpoints(manager).redis_url)
    try:
        return FlagStore(client, env["FLAGS_REDIS_KEY"]).read()
    finally:
        client.close()


def last_flag_change_id(manager: StackManager) -> int:
    with database(manager) as db:
        return int(
            db.execute(sa.select(sa.func.coalesce(sa.func.max(flag_changes.c.id), 0))).scalar_one()
        )


def flag_changes_since(manager: StackManager, after_id: int) -> list[tuple[str, bool, float]]:
    with database(manager) as db:
        rows = db.execute(
            sa.select(flag_changes).where(flag_changes.c.id > after_id).order_by(flag_changes.c.id)
        ).all()
    return [(r.actor, r.new_ml_enabled, r.new_ml_traffic_percentage) for r in rows]


def whoami() -> str:
    return subprocess.run(["whoami"], capture_output=True, text=True, check=True).stdout.strip()


def topic_values(manager: StackManager, topic: str) -> list[bytes]:
    """The value of every message ``topic`` holds now (the end offsets of now, read to)."""
    bootstrap = endpoints(manager).kafka_bootstrap_servers
    with RangeReader(bootstrap) as reader:
        count = sum(high - low for low, high in reader.watermarks(topic).values())
    if count == 0:
        return []
    messages = read_topic(bootstrap, topic, from_beginning=True, count=count, timeout_s=60)
    values = [m.value() or b"" for m in messages]
    assert len(values) == count, f"read {len(values)} of the {count} messages of {topic}"
    return values


def topic_events(manager: StackManager, topic: str) -> list[dict[str, Any]]:
    return [json.loads(value) for value in topic_values(manager, topic)]


def topic_size(manager: StackManager, topic: str) -> int:
    with RangeReader(endpoints(manager).kafka_bootstrap_servers) as reader:
        return sum(high - low for low, high in reader.watermarks(topic).values())


def world_bookings(
    n: int, prefix: str, seed: int, created: datetime | None = None
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """n synthetic bookings created at ``created`` (default now), and their actual delays
    observed now, keyed by id. Publish the bookings with ``created`` as their timestamp: a
    booking created after its record was published is refused (schemas/bounds.py)."""
    world = SyntheticWorld(42)
    rng = random.Random(seed)
    now = datetime.now(UTC)
    created = created or now
    bookings, actuals = [], []
    for i in range(n):
        booking = world.booking(created, rng).model_copy(update={"booking_id": f"{prefix}{i:05d}"})
        weather = world.weather(booking.pickup_lat, booking.pickup_lon, booking.scheduled_pickup_at)
        # Observed now, as a driver's app reports it (the world's own time is the pickup's, in
        # the days ahead, which would move the API's event-time windows into the future).
        actual = world.actual(booking, weather, rng).model_copy(update={"observed_at": now})
        key = booking.booking_id.encode()
        bookings.append((key, booking.model_dump_json().encode()))
        actuals.append((key, actual.model_dump_json().encode()))
    return bookings, actuals


def send(
    manager: StackManager,
    topic: str,
    records: list[tuple[bytes, bytes]],
    timestamp: datetime | None = None,
) -> None:
    out = BlockingProducer(endpoints(manager).kafka_bootstrap_servers)
    stamp = None if timestamp is None else int(timestamp.timestamp() * 1000)
    for key, value in records:
        out.send(topic, key, value, timestamp_ms=stamp)
    out.flush()


def count_rows(manager: StackManager, table: sa.Table, *where: Any) -> int:
    with database(manager) as db:
        return int(
            db.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


# --- the runbooks -------------------------------------------------------------------------------


def test_readme_sets_up_the_environment_the_runbooks_assume(env, tmp_path):
    with runbook("README.md", env, tmp_path) as run:
        out = run.output("The environment the commands assume")
    assert VERIFY_PASSED.search(out), out


def test_rollout_goes_10_25_50_100_with_a_go_no_go_check_between_steps(
    runbook_stack, env, tmp_path
):
    after = last_flag_change_id(runbook_stack)
    with api(env, tmp_path), runbook("rollout.md", env, tmp_path) as run:
        confirm = run.output("Confirm")
    state = flags_in_redis(runbook_stack, env)
    assert state is not None
    assert (state.ml_enabled, state.ml_traffic_percentage, state.version) == (True, 100.0, 4)
    me = whoami()
    steps = [
        (me, True, 10.0),
        (f"api:{me}", True, 25.0),
        (me, True, 50.0),
        (f"api:{me}", True, 100.0),
    ]
    assert flag_changes_since(runbook_stack, after) == steps
    assert [line.split()[1:] for line in confirm.splitlines()[-4:]] == [
        [f"api:{me}", "100%"],
        [me, "50%"],
        [f"api:{me}", "25%"],
        [me, "10%"],
    ]


def test_kill_switch_puts_every_booking_on_the_heuristic_then_re_enables_at_10(
    runbook_stack, env, tmp_path
):
    set_flags(runbook_stack, env, percentage=50)
    after = last_flag_change_id(runbook_stack)
    me = whoami()
    predictions_topic = f"{env['TOPIC_PREFIX']}predictions"

    def switched_off() -> None:
        state = flags_in_redis(runbook_stack, env)
        assert state is not None
        assert (state.ml_enabled, state.ml_traffic_percentage) == (False, 50.0)
        assert flag_changes_since(runbook_stack, after) == [
            (me, False, 50.0),
            (f"api:{me}", False, 50.0),
        ]
        with database(runbook_stack) as db:
            switched_at = db.execute(
                sa.select(flag_changes.c.changed_at).where(flag_changes.c.id > after).limit(1)
            ).scalar_one()
        events = topic_events(runbook_stack, predictions_topic)
        before = [
            e["arm"] for e in events if datetime.fromisoformat(e["predicted_at"]) < switched_at
        ]
        later = [
            e["arm"]
            for e in events
            if datetime.fromisoformat(e["predicted_at"]) > switched_at + timedelta(seconds=1)
        ]
        assert before.count("ml") > 0 and before.count("heuristic") > 0
        assert len(later) >= 50 and set(later) == {"heuristic"}

    with (
        api(env, tmp_path, wait=False) as api_service,
        worker(env, tmp_path).start(),
        producer(env, tmp_path, "KS"),
    ):
        api_service.wait_ready()
        wait_until(
            "ML predictions before the switch",
            lambda: any(e["arm"] == "ml" for e in topic_events(runbook_stack, predictions_topic)),
        )
        with runbook("kill-switch.md", env, tmp_path, before={"Re-enable later": switched_off}):
            pass
    state = flags_in_redis(runbook_stack, env)
    assert state is not None and (state.ml_enabled, state.ml_traffic_percentage) == (True, 10.0)


def test_replay_re_predicts_exactly_the_last_hour_and_counts_no_outcome_twice(
    runbook_stack, env, tmp_path
):
    set_flags(runbook_stack, env, percentage=50)
    tag = f"RP{uuid.uuid4().hex[:6]}-"
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    old, old_actuals = world_bookings(30, f"{tag}old-", seed=3, created=two_hours_ago)
    recent, recent_actuals = world_bookings(40, f"{tag}new-", seed=4)
    bookings_topic = f"{env['TOPIC_PREFIX']}bookings"
    mine = predictions.c.booking_id.like(f"{tag}%")
    live_worker = worker(env, tmp_path).start()
    try:
        # Bookings of two hours ago (outside the window), then of now; every actual delay.
        send(runbook_stack, bookings_topic, old, two_hours_ago)
        send(runbook_stack, bookings_topic, recent)
        send(runbook_stack, f"{env['TOPIC_PREFIX']}actual-delays", old_actuals + recent_actuals)
        wait_until(
            "70 live outcomes recorded",
            lambda: (
                count_rows(runbook_stack, outcomes, outcomes.c.booking_id.like(f"{tag}%")) == 70
            ),
        )

        def stop_the_workers() -> None:
            live_worker.stop()

        with runbook(
            "replay.md",
            env,
            tmp_path,
            before={"2. Reprocess from a time: reset the consumer group": stop_the_workers},
        ) as run:
            dry = run.output("1. Re-predict the bookings of the last hour")
            assert "would replay 40 bookings" in dry
            assert "replayed 40 bookings" in dry

            # The runbook's worker re-predicts the 40 recent bookings as live predictions; the
            # history keeps each booking's first one, so its assignments count once.
            def live_on_kafka() -> int:
                return sum(
                    1
                    for e in topic_events(runbook_stack, f"{env['TOPIC_PREFIX']}predictions")
                    if e["booking_id"].startswith(tag) and not e["replay"]
                )

            wait_until(
                "the reprocessed predictions on Kafka", lambda: live_on_kafka() == 110, timeout_s=90
            )
            wait_until(
                "the replayed predictions recorded",
                lambda: count_rows(runbook_stack, predictions, mine, predictions.c.replay) == 40,
            )
            time.sleep(2)  # time to count an outcome twice, if anything would
            assert count_rows(runbook_stack, predictions, mine, ~predictions.c.replay) == 70
    finally:
        live_worker.stop()
    replayed = [
        e
        for e in topic_events(runbook_stack, f"{env['TOPIC_PREFIX']}predictions")
        if e["booking_id"].startswith(tag) and e["replay"]
    ]
    assert sorted(e["booking_id"] for e in replayed) == sorted(k.decode() for k, _ in recent)
    with database(runbook_stack) as db:
        rows = db.execute(
            sa.select(outcomes.c.booking_id, outcomes.c.replay).where(
                outcomes.c.booking_id.like(f"{tag}%")
            )
        ).all()
    assert len(rows) == 70 and not any(r.replay for r in rows)
    assert len({r.booking_id for r in rows}) == 70


def test_retrain_promote_and_rollback_leave_the_previous_champion(runbook_stack, env, tmp_path):
    models = Path(env["MODEL_DIR"])
    before = (models / "CHAMPION").read_text().strip()
    with runbook("retrain-rollback.md", env, tmp_path) as run:
        promoted = re.search(r"champion: (\S+) -> (\S+)", run.output("3. Promote"))
        rolled = re.search(r"champion: (\S+) -> (\S+)", run.output("5. Roll back"))
    versions = sorted(p.name for p in models.iterdir() if (p / "metadata.json").is_file())
    assert len(versions) == 2 and versions[0] == before
    assert promoted is not None and promoted.groups() == (before, versions[1])
    assert rolled is not None and rolled.groups() == (versions[1], before)
    assert (models / "CHAMPION").read_text().strip() == before
    audit = [json.loads(line) for line in (models / "AUDIT.jsonl").read_text().splitlines()]
    assert [(e["action"], e["version"], e["previous"]) for e in audit[-2:]] == [
        ("promote", versions[1], before),
        ("rollback", before, versions[1]),
    ]


def test_drift_alert_runbook_shows_the_alert_from_kafka_and_the_api(runbook_stack, env, tmp_path):
    # Default weather on every booking: the model was trained on recorded weather, so the
    # feature `weather_is_default` drifts, as in a real weather outage.
    tag = f"DR{uuid.uuid4().hex[:6]}-"
    bookings, _ = world_bookings(1000, tag, seed=5)

    def drift_alerts() -> list[Any]:
        with database(runbook_stack) as db:
            return list(
                db.execute(
                    sa.select(alerts_table).where(
                        alerts_table.c.kind == "feature_drift",
                        alerts_table.c.subject == "weather_is_default",
                    )
                ).all()
            )

    with (
        api(env, tmp_path, wait=False) as api_service,
        worker(env, tmp_path, WEATHER_PROVIDER="default").start(),
    ):
        send(runbook_stack, f"{env['TOPIC_PREFIX']}bookings", bookings)
        wait_until("a feature_drift alert on weather_is_default", lambda: bool(drift_alerts()))
        (alert,) = drift_alerts()
        api_service.wait_ready()
        with runbook("drift-alert.md", env, tmp_path) as run:
            read = run.output("1. Read the alerts")
    from_kafka = [json.loads(line) for line in read.splitlines() if line.startswith('{"')]
    assert {
        "kind": "feature_drift",
        "subject": "weather_is_default",
        "message": alert.message,
    }.items() <= next(a for a in from_kafka if a["kind"] == "feature_drift").items()
    from_api = [line.split("\t") for line in read.splitlines() if "\t" in line]
    assert [alert.severity, "feature_drift", "weather_is_default", alert.message] in [
        row[1:] for row in from_api
    ]
    evidence = json.loads(read[read.rindex("\n{\n") + 1 :])  # jq's pretty print, last
    assert evidence == alert.evidence


def test_dead_letter_requeue_sends_each_letter_back_once(runbook_stack, env, tmp_path):
    prefix = env["TOPIC_PREFIX"]
    rng = random.Random(9)
    bad = [(f"BAD-{i:02d}".encode(), p.value) for i, p in enumerate(invalid_booking_payloads(rng))]
    good, _ = world_bookings(20, f"DL{uuid.uuid4().hex[:6]}-", seed=6)
    with worker(env, tmp_path).start():
        send(runbook_stack, f"{prefix}bookings", good + bad)
        wait_until(
            "every booking predicted or dead-lettered",
            lambda: (
                topic_size(runbook_stack, f"{prefix}predictions")
                + topic_size(runbook_stack, f"{prefix}dead-letters")
                == len(good) + len(bad)
            ),
        )
    # The workers are stopped here, as while a fix is deployed: a requeued booking that still
    # failed would come back as a new dead letter, and the second requeue would send it.
    letters = topic_events(runbook_stack, f"{prefix}dead-letters")
    assert len(letters) >= len(bad) - 1  # `nan_value` may pass a lenient JSON parser
    size = topic_size(runbook_stack, f"{prefix}bookings")
    with runbook("dead-letters.md", env, tmp_path) as run:
        grouped = run.output("2. Group them by reason")
    assert topic_size(runbook_stack, f"{prefix}bookings") == size + len(letters)
    values = topic_values(runbook_stack, f"{prefix}bookings")
    for letter in letters:
        assert values.count(base64.b64decode(letter["original_value_b64"])) == 2
    counts = [int(line.split()[0]) for line in grouped.splitlines() if line.strip()]
    assert sum(counts) == 2 * len(letters)  # grouped by reason, then by producer


def test_a_poison_event_is_found_inspected_and_dropped(runbook_stack, env, tmp_path):
    prefix = env["TOPIC_PREFIX"]
    tag = f"PO{uuid.uuid4().hex[:6]}-"
    now = datetime.now(UTC)
    good, _ = world_bookings(10, tag, seed=8)
    big = (f"{tag}big".encode(), b"{" + b"x" * 900_000)
    wrong_key = (b"someone-else", json.dumps(hostile_booking(f"{tag}key", now)).encode())
    future = json.dumps(
        hostile_actual(f"{tag}fut", now, observed_at="2099-01-01T00:00:00+00:00")
    ).encode()
    poison = {"too_large", "key_mismatch", "time_bounds"}
    with worker(env, tmp_path).start():
        send(runbook_stack, f"{prefix}bookings", [*good[:5], big, wrong_key, *good[5:]])
        send(runbook_stack, f"{prefix}actual-delays", [(f"{tag}fut".encode(), future)])
        wait_until(
            "the three poison events dead-lettered and the rest predicted",
            lambda: (
                {d["kind"] for d in topic_events(runbook_stack, f"{prefix}dead-letters")} == poison
                and topic_size(runbook_stack, f"{prefix}predictions") == len(good)
            ),
        )
    sizes = [topic_size(runbook_stack, f"{prefix}{t}") for t in ("bookings", "actual-delays")]
    with runbook("poison-event.md", env, tmp_path) as run:
        found = run.output("1. Find it")
        inspected = run.output("2. Inspect it")
        decided = run.output("3. Drop it, or fix and requeue it")
    assert "larger than the cap of 65536 bytes" in found
    assert "observed_at 2099-01-01T00:00:00+00:00 is later than" in found
    assert "'someone-else' is not its booking_id" in found
    rows = {r["kind"]: r for r in map(json.loads, inspected.splitlines()) if r}
    assert set(rows) == poison
    assert (rows["too_large"]["size"], rows["too_large"]["truncated"]) == (900_001, True)
    assert rows["too_large"]["head"] == "{" + "x" * 119
    assert rows["key_mismatch"]["truncated"] is False
    assert "would requeue 0 of 3 dead letters" in decided
    after = [topic_size(runbook_stack, f"{prefix}{t}") for t in ("bookings", "actual-delays")]
    assert after == sizes  # dropped: nothing was sent back


def test_offsets_passed_over_are_told_apart_and_lost_bookings_predicted(
    runbook_stack, env, tmp_path
):
    """Two warnings: a transactional producer's gap (nothing lost), then bookings no worker
    read (lost): the runbook says which, and predicts the lost ones."""
    prefix = env["TOPIC_PREFIX"]
    topic = f"{prefix}bookings"
    tag = f"GP{uuid.uuid4().hex[:6]}-"
    bookings, _ = world_bookings(60, tag, seed=14)
    committed_before, aborted, committed_after = bookings[:24], bookings[24:36], bookings[36:]
    with worker(env, tmp_path).start() as running:
        publish_in_transactions(
            endpoints(runbook_stack).kafka_bootstrap_servers,
            topic,
            [(committed_before, True), (aborted, False), (committed_after, True)],
        )
        wait_until(
            "the committed bookings predicted",
            lambda: topic_size(runbook_stack, f"{prefix}predictions") == 48,
        )
        gaps = [g for g in PASSED_OVER.findall(running.log()) if g[0] == topic]
    assert gaps, "the worker logged no gap for the aborted transaction"
    predicted = {e["booking_id"] for e in topic_events(runbook_stack, f"{prefix}predictions")}
    assert predicted == {k.decode() for k, _ in committed_before + committed_after}
    # Lost: bookings committed where no worker of the group will read them (as after a gap).
    lost, _ = world_bookings(3, f"{tag}L", seed=15)
    out = Producer({"bootstrap.servers": endpoints(runbook_stack).kafka_bootstrap_servers})
    placed: list[tuple[int, int]] = []
    for key, value in lost:
        out.produce(
            topic,
            value=value,
            key=key,
            partition=0,
            on_delivery=lambda err, msg: placed.append((msg.partition(), msg.offset())),
        )
    assert out.flush(30) == 0 and len(placed) == 3
    first, last = min(o for _, o in placed), max(o for _, o in placed)

    for run_dir in ("tx", "loss"):
        (tmp_path / run_dir / "work").mkdir(parents=True)
    _, partition, start, end = gaps[0]
    expected_gap = dict(GAP_TOPIC="bookings", GAP_PARTITION=partition, GAP_FROM=start, GAP_TO=end)
    with runbook("offsets-passed-over.md", {**env, **expected_gap}, tmp_path / "tx") as run:
        told = run.output("1. Read the range")
        told_err = "".join(r.stderr for r in run.results if r.block.section == "1. Read the range")
        replayed = run.output("2. Bring them back")
    assert told.strip() == "0 record(s) passed over"
    assert f"offsets {start}..{end}: only transaction markers or aborted records" in told_err
    assert "replayed 0 bookings" in replayed
    loss = dict(GAP_TOPIC="bookings", GAP_PARTITION="0", GAP_FROM=str(first), GAP_TO=str(last))
    with runbook("offsets-passed-over.md", {**env, **loss}, tmp_path / "loss") as run:
        told = run.output("1. Read the range")
        read_back = (tmp_path / "loss" / "work" / "passed-over.jsonl").read_text().splitlines()
        replayed = run.output("2. Bring them back")
    assert told.strip() == "3 record(s) passed over"
    assert sorted(json.loads(line)["booking_id"] for line in read_back) == sorted(
        k.decode() for k, _ in lost
    )
    assert "replayed 3 bookings" in replayed and "3 predictions (replay=true)" in replayed
    replays = [e for e in topic_events(runbook_stack, f"{prefix}predictions") if e["replay"]]
    assert sorted(e["booking_id"] for e in replays) == sorted(k.decode() for k, _ in lost)


def test_weather_outage_is_diagnosed_then_confirmed_recovered(runbook_stack, env, tmp_path):
    with FakeOpenWeather(api_key=WEATHER_KEY) as failing:
        failing.mode = "500"
        outage_env = {**env, "OPENWEATHER_URL": failing.url}

        def provider_back() -> None:
            assert failing.requests == 2  # `weather check` and `verify`, once each, no retries
            failing.mode = "ok"

        with runbook(
            "weather-outage.md", outage_env, tmp_path, before={"Confirm recovery": provider_back}
        ) as run:
            diagnosis = run.output("Diagnose")
            recovered = run.output("Confirm recovery")
        assert failing.requests == 4
    assert "result    FAIL http_error" in diagnosis
    assert re.findall(r"^FAIL\s+(\S+)", diagnosis, re.MULTILINE) == ["weather"]  # `verify`
    assert "PASS ok" in recovered and VERIFY_PASSED.search(recovered), recovered


def test_backup_restore_brings_back_a_row_lost_after_the_backup(runbook_stack, env, tmp_path):
    delaycast(env, "flags", "enable", "--percentage", "30", "--actor", "before-backup")
    with database(runbook_stack) as db:
        kept = db.execute(
            sa.select(flag_changes.c.id).where(flag_changes.c.actor == "before-backup")
        ).scalar_one()
    champion = (Path(env["MODEL_DIR"]) / "CHAMPION").read_text()

    def lose_data() -> None:
        with database(runbook_stack) as db:
            gone = db.execute(sa.delete(flag_changes).where(flag_changes.c.id == kept))
            assert gone.rowcount == 1
        delaycast(env, "flags", "disable", "--actor", "after-backup")
        (Path(env["MODEL_DIR"]) / "CHAMPION").unlink()

    with runbook("backup-restore.md", env, tmp_path, before={"Restore": lose_data}) as run:
        rewind = run.output("Write again what came after the backup")
    group = f"{env['TOPIC_PREFIX']}delaycast-history"
    assert re.search(rf"^moved group {re.escape(group)} to .* 3 topic\(s\)", rewind, re.M), rewind

    backups = sorted(p.name for p in Path(env["BACKUP_DIR"]).iterdir())
    assert [re.sub(r"\d{8}T\d{6}Z", "STAMP", n) for n in backups] == [
        "before-restore-STAMP.dump",
        "delaycast-STAMP.dump",
        "flags-STAMP.json",
        "models-STAMP.tar.gz",
    ]
    with database(runbook_stack) as db:
        rows = db.execute(sa.select(flag_changes.c.id, flag_changes.c.actor)).all()
    assert (kept, "before-backup") in [tuple(r) for r in rows]
    assert "after-backup" not in [r.actor for r in rows]  # written after the backup: gone
    assert (Path(env["MODEL_DIR"]) / "CHAMPION").read_text() == champion
    state = flags_in_redis(runbook_stack, env)
    assert state is not None
    assert (state.ml_enabled, state.ml_traffic_percentage) == (True, 30.0)
    assert state.updated_by == f"restore:{whoami()}"


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_a_stopped_server_is_diagnosed_restarted_and_verified(runbook_stack, env, tmp_path, server):
    set_flags(runbook_stack, env, percentage=20)
    audit_rows = count_rows(runbook_stack, flag_changes)
    assert runbook_stack.down(only=[server]) == [server]
    with runbook(f"{server}-down.md", env, tmp_path) as run:
        diagnosis, confirm = run.output("Diagnose"), run.output("Confirm")
    failed = re.findall(r"^FAIL\s+(\S+)", diagnosis, re.MULTILINE)
    assert failed and all(name == server for name in failed), diagnosis
    assert VERIFY_PASSED.search(confirm), confirm
    status = {s.name: s for s in runbook_stack.status()}
    assert all(s.ok for s in status.values()), status
    # Nothing was lost with the restart: the flags (Redis' append-only file), the audit rows.
    state = flags_in_redis(runbook_stack, env)
    assert state is not None and (state.ml_enabled, state.ml_traffic_percentage) == (True, 20.0)
    assert count_rows(runbook_stack, flag_changes) == audit_rows


def register_twin_challenger(models: Path) -> str:
    """A challenger beside the champion, as `delaycast retrain` leaves one: here the
    champion's twin under another version name (what the runbook does is the same)."""
    champion = (models / "CHAMPION").read_text().strip()
    twin = f"{champion}-twin"
    shutil.copytree(models / champion, models / twin)
    metadata = json.loads((models / twin / "metadata.json").read_text())
    (models / twin / "metadata.json").write_text(json.dumps(metadata | {"model_version": twin}))
    set_challenger(models, twin)
    return twin


def test_a_guarded_rollout_promotes_the_challenger_and_ramps_under_the_controller(
    runbook_stack, env, tmp_path
):
    models = Path(env["MODEL_DIR"])
    twin = register_twin_challenger(models)
    after = last_flag_change_id(runbook_stack)
    with database(runbook_stack) as db:
        first_move = db.execute(sa.select(sa.func.count()).select_from(ramp_moves)).scalar_one()
    with api(env, tmp_path), runbook("guarded-rollout.md", env, tmp_path) as run:
        before = run.output("Before you start")
        watch = run.output("Watch it")
        reason = run.output("When it holds or rolls back")
    assert f"c {twin}" in before and "Shadow comparison" in before
    assert (models / "CHAMPION").read_text().strip() == twin
    me = whoami()
    assert flag_changes_since(runbook_stack, after) == [(me, False, 0.0), ("ramp", True, 10.0)]
    assert "running at 10 %" in watch and "next step        not allowed" in watch
    assert "NO gate      hold_time" in watch and "true" in watch
    assert reason.startswith("Ramp started by") and "ramp start: 0 % -> 10 %" in reason
    with database(runbook_stack) as db:
        moves = db.execute(
            sa.select(ramp_moves.c.kind, ramp_moves.c.actor).order_by(ramp_moves.c.at)
        ).all()[first_move:]
    assert [tuple(m) for m in moves] == [
        ("start", me), ("pause", me), ("resume", me), ("stop", me),
    ]  # fmt: skip
