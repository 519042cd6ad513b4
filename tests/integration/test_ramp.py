"""The guarded ramp on real PostgreSQL and Redis, in compressed time: `delaycast ramp` commands and
the controller run as subprocesses, as an operator runs them, over a world that routes bookings by
the flags in Redis and stores them as the recorder does (:mod:`tests.integration.ramp_world`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from connectors.flags import FlagState, FlagStore
from connectors.postgres import make_engine
from connectors.postgres import ramp as store
from schemas import tables
from streams.clock import utc_now
from streams.operate.flag_change import change_flags
from streams.outcomes.labels import periodic_task as labels_task
from tests.integration.ramp_world import World, wait_until
from tests.integration.test_ab import MODEL_WORLD_SEED, with_late_heuristic
from tests.integration.test_api import running_api
from tests.integration.test_outcome_path import world_events
from tests.integration.workers import Worker, produce, worker_env

# Compressed time: a step may advance after 2 s and 200 outcomes per arm.
START = (
    *("--steps", "10,25,50,100", "--min-outcomes", "200", "--hold", "2s", "--label-wait", "0s"),
    *("--settle", "0.3s", "--drift-quiet", "3s", "--actor", "tester"),
)
LOOK = "0.3s"
# A challenger whose errors are twice the heuristic's is rolled back within this many ML
# outcomes of its step (the look interval and the world's batches add a few hundred at most).
ROLLBACK_WITHIN = 600


@pytest.fixture
def env(stack: Any, own_database: str, topic_prefix: str, tmp_path: Path) -> dict[str, str]:
    return worker_env(stack, topic_prefix, tmp_path, DATABASE_URL=own_database)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", "ramp", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


@contextmanager
def controller(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    handle = log.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "streams", "ramp", "run", "--interval", LOOK],
        env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        handle.close()


def world(env: dict[str, str], seed: int = 0) -> World:
    return World(env["DATABASE_URL"], env["REDIS_URL"], env["FLAGS_REDIS_KEY"], seed=seed)


def latest(env: dict[str, str]) -> store.Ramp:
    engine = make_engine(env["DATABASE_URL"])
    try:
        ramp = store.latest_ramp(engine)
    finally:
        engine.dispose()
    assert ramp is not None
    return ramp


def moves(env: dict[str, str]) -> list[dict[str, Any]]:
    engine = make_engine(env["DATABASE_URL"])
    try:
        return store.ramp_moves(engine, latest(env).id)
    finally:
        engine.dispose()


def ramp_flag_changes(env: dict[str, str]) -> list[float]:
    engine = make_engine(env["DATABASE_URL"])
    f = tables.flag_changes.c
    query = sa.select(f.new_ml_traffic_percentage).where(f.actor == "ramp").order_by(f.id)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(query)]
    finally:
        engine.dispose()


def ramp_alerts(env: dict[str, str]) -> list[dict[str, Any]]:
    engine = make_engine(env["DATABASE_URL"])
    a = tables.alerts.c
    query = sa.select(a.severity, a.message).where(a.kind == "ramp").order_by(a.raised_at)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
    finally:
        engine.dispose()


def flags(env: dict[str, str]) -> tuple[bool, float, str | None]:
    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        state = FlagStore(client, env["FLAGS_REDIS_KEY"]).read()
    finally:
        client.close()
    assert state is not None
    return state.ml_enabled, state.ml_traffic_percentage, state.updated_by


def at_status(env: dict[str, str], status: str, percentage: float | None = None) -> bool:
    ramp = latest(env)
    return ramp.status == status and (percentage is None or ramp.percentage == percentage)


def test_a_better_challenger_is_ramped_to_100_percent_with_no_human_step(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = ok(cli(env, "start", *START))
    assert "ML to 10 %" in first
    assert flags(env) == (True, 10.0, "ramp")  # the first step is in force at once
    with world(env) as w, controller(env, tmp_path / "controller.log"):
        wait_until(lambda: at_status(env, store.COMPLETED), 120, w, "the ramp to complete")
    kinds = [(m["kind"], m["from_percentage"], m["to_percentage"]) for m in moves(env)]
    assert kinds == [
        ("start", 0.0, 10.0),
        ("advance", 10.0, 25.0),
        ("advance", 25.0, 50.0),
        ("advance", 50.0, 100.0),
        ("complete", 100.0, 100.0),
    ]
    assert all(m["actor"] == "ramp" for m in moves(env)[1:])
    assert ramp_flag_changes(env) == [10.0, 25.0, 50.0, 100.0]  # each once, audited
    assert flags(env) == (True, 100.0, "ramp")
    advance = moves(env)[1]
    assert "mixture SPRT" in advance["reason"] and "below the 0.25 min margin" in advance["reason"]
    assert advance["evidence"]["errors_ml"]["n"] >= 200  # the step's minimum was met
    assert advance["evidence"]["step_age_s"] >= 2.0  # and its hold
    alerts = ramp_alerts(env)
    assert [a["severity"] for a in alerts] == ["info"] * 4
    status = json.loads(ok(cli(env, "status", "--json")))
    assert status["ramp"]["status"] == "completed" and status["next_step_allowed"] is False


def test_a_challenger_made_worse_mid_ramp_is_rolled_back_naming_the_test(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok(cli(env, "start", *START))
    with world(env, seed=1) as w, controller(env, tmp_path / "controller.log"):
        wait_until(lambda: latest(env).percentage == 25.0, 90, w, "the advance to 25 %")
        w.conditions.ml_sigma = 4.0  # injected: ML's errors now twice the heuristic's
        wait_until(lambda: at_status(env, store.ROLLED_BACK), 90, w, "the rollback")
    ramp = latest(env)
    assert ramp.percentage == 10.0 and ramp.step_index == 0  # back one step, not to 0 %
    rollback = moves(env)[-1]
    assert rollback["kind"] == "rollback" and rollback["actor"] == "ramp"
    assert "ml_worse" in rollback["reason"] and "mixture SPRT" in rollback["reason"]
    assert rollback["evidence"]["errors_ml"]["n"] <= ROLLBACK_WITHIN
    assert flags(env) == (True, 10.0, "ramp")
    assert ramp_flag_changes(env) == [10.0, 25.0, 10.0]
    assert [a["severity"] for a in ramp_alerts(env)] == ["info", "warning"]


def test_ml_actuals_dropped_at_20_percent_roll_back_on_label_arrival(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok(cli(env, "start", *START))
    with world(env, seed=2) as w, controller(env, tmp_path / "controller.log"):
        wait_until(lambda: latest(env).percentage == 25.0, 90, w, "the advance to 25 %")
        w.conditions.drop_ml_labels = 0.2
        wait_until(lambda: at_status(env, store.ROLLED_BACK), 90, w, "the rollback")
    rollback = moves(env)[-1]
    assert (rollback["from_percentage"], rollback["to_percentage"]) == (25.0, 10.0)
    assert "label_arrival_ratio" in rollback["reason"]
    assert "ml_worse" not in rollback["reason"]  # ML's errors did not change
    evidence = rollback["evidence"]
    rate_ml = evidence["labelled_ml"] / evidence["due_ml"]
    rate_h = evidence["labelled_heuristic"] / evidence["due_heuristic"]
    assert 0.7 < rate_ml < 0.9 and rate_h == 1.0


def held_with_gates_met(env: dict[str, str]) -> bool:
    evaluation = latest(env).evaluation
    if evaluation is None or evaluation["action"] != "hold":
        return False
    return all(c["ok"] for c in evaluation["checks"] if c["kind"] == "gate")


def test_a_feature_drift_holds_the_ramp_which_resumes_once_it_stops(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok(cli(env, "start", *START))
    with world(env, seed=3) as w, controller(env, tmp_path / "controller.log"):
        w.conditions.drifting = True
        # Held: time and outcomes enough to advance twice over, still at 10 %.
        wait_until(lambda: held_with_gates_met(env), 60, w, "a hold with every gate met")
        held = latest(env)
        assert held.percentage == 10.0
        status = json.loads(ok(cli(env, "status", "--json")))
        assert status["next_step_allowed"] is False
        assert [b["name"] for b in status["blockers"]] == ["feature_drift"]
        assert "feature-drift alarm" in status["summary"]
        w.conditions.drifting = False
        wait_until(lambda: latest(env).percentage == 25.0, 60, w, "the ramp to resume")
    advance = moves(env)[-1]
    assert advance["kind"] == "advance" and advance["evidence"]["drift_age_s"] >= 3.0


def test_a_controller_killed_mid_ramp_resumes_at_its_step_and_never_repeats_a_move(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok(cli(env, "start", *START))
    log = tmp_path / "controller.log"
    with world(env, seed=4) as w:
        with controller(env, log) as first:
            # Killed during the step at 25 % (its flag written), before its 2 s hold is over.
            wait_until(
                lambda: latest(env).percentage == 25.0 and latest(env).flag_applied,
                90, w, "the advance to 25 %",
            )  # fmt: skip
            first.send_signal(signal.SIGKILL)
            first.wait()
        at_kill = latest(env)
        # A controller that died between recording a move and writing its flag: the move is in
        # PostgreSQL, Redis still says 25 %.
        engine = make_engine(env["DATABASE_URL"])
        try:
            recorded = store.record_move(
                engine, at_kill, kind="advance", actor="ramp", now=at_kill.updated_at,
                reason="Advanced ML from 25 % to 50 % (recorded by a controller that died).",
                status=store.RUNNING, step_index=2, percentage=50.0, new_step=True,
            )  # fmt: skip
        finally:
            engine.dispose()
        assert recorded is not None and not recorded.flag_applied
        assert flags(env)[1] == 25.0
        with controller(env, log):
            wait_until(lambda: at_status(env, store.COMPLETED), 120, w, "the ramp to complete")
    transitions = [(m["from_percentage"], m["to_percentage"]) for m in moves(env)]
    assert transitions == [(0, 10), (10, 25), (25, 50), (50, 100), (100, 100)]
    assert [m["seq"] for m in moves(env)] == [1, 2, 3, 4, 5]
    assert ramp_flag_changes(env) == [10.0, 25.0, 50.0, 100.0]  # 50 % written once, on restart
    assert log.read_text().count("controller running") == 2


def operator_changes_flags(env: dict[str, str], percentage: float, actor: str) -> None:
    client = redis.Redis.from_url(env["REDIS_URL"])
    engine = make_engine(env["DATABASE_URL"])
    try:
        change_flags(
            FlagStore(client, env["FLAGS_REDIS_KEY"]), engine,
            initial=FlagState(False, 0.0, "delaycast-v1"), ml_enabled=True,
            percentage=percentage, actor=actor, now=utc_now(),
        )  # fmt: skip
    finally:
        engine.dispose()
        client.close()


def test_operators_pause_resume_and_stop_and_an_outside_flag_change_pauses(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok(cli(env, "start", *START))
    refused = cli(env, "start", *START)
    assert refused.returncode != 0 and "is running at 10 %: stop it first" in refused.stderr
    assert "Paused at 10 % by tester" in ok(cli(env, "pause", "--actor", "tester"))
    again = cli(env, "pause")
    assert again.returncode != 0 and "it is paused" in again.stderr
    ok(cli(env, "resume", "--actor", "tester"))
    with world(env, seed=5) as w, controller(env, tmp_path / "controller.log"):
        wait_until(lambda: latest(env).percentage == 25.0, 90, w, "the advance to 25 %")
        # An operator's hand on the flags wins: the ramp pauses and says why. (In-process, as
        # `delaycast flags enable` does it: at once, before the 2 s hold could end the step.)
        operator_changes_flags(env, 40.0, "alice")
        wait_until(lambda: at_status(env, store.PAUSED), 30, w, "the ramp to pause")
    assert "changed outside it" in latest(env).reason and "alice" in latest(env).reason
    assert flags(env) == (True, 40.0, "alice")
    ok(cli(env, "stop", "--actor", "tester"))
    assert latest(env).status == store.STOPPED and flags(env)[1] == 40.0
    text = ok(cli(env, "status"))
    assert "stopped at 25 %" in text and "next step        not allowed" in text
    kinds = [m["kind"] for m in moves(env)]
    assert kinds == ["start", "pause", "resume", "advance", "pause", "stop"]


def test_bad_ramp_arguments_say_what_was_expected(env: dict[str, str]) -> None:
    for args, expected in (
        (("--steps", "50,25"), "expected increasing percentages"),
        (("--steps", "10,x"), "comma-separated percentages"),
        (("--hold", "soon"), "expected a duration such as 90s, 30m or 2h"),
        (("--min-outcomes", "3"), "3 is not in the range x>=30"),
    ):
        result = cli(env, "start", *args)
        assert result.returncode == 2, result
        assert expected in result.stderr, result.stderr
    nothing = cli(env, "resume")
    assert nothing.returncode == 1 and "no ramp to resume" in nothing.stderr


def test_workers_and_controller_ramp_a_better_model_end_to_end(
    stack: Any, topic_prefix: str, tmp_path: Path, trained_model_dir: Path, own_database: str
) -> None:
    """The loop closed through real workers: the ramp's flag changes route the worker's
    bookings, the worker's predictions and outcomes reach PostgreSQL through its recorder, and
    the controller moves on what they show, from 10 % to 100 %."""
    with_late_heuristic(trained_model_dir, tmp_path / "models")
    weather = trained_model_dir.parent / "model-data" / "weather.csv"
    env = worker_env(
        stack, topic_prefix, tmp_path, DATABASE_URL=own_database,
        WEATHER_PROVIDER="recorded", WEATHER_HISTORY_CSV=str(weather),
    )  # fmt: skip
    bookings, actuals = world_events(12_000, "RMP-", seed=17, world_seed=MODEL_WORLD_SEED)
    records = [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings]
    # The fixture's model holds only ~71 % of this world's delays within its P90 (measured: the
    # interval_coverage guardrail rolled a first version of this test back at 204 outcomes).
    # This test is about the loop; the band is widened so the P90 does not decide it.
    ok(cli(env, "start", *START, "--coverage-band", "0.6,1"))
    stop = threading.Event()

    def feed() -> None:
        for i in range(0, len(records), 200):
            if stop.is_set():
                return
            produce(stack, f"{topic_prefix}bookings", records[i : i + 200])
            produce(stack, f"{topic_prefix}actual-delays", actuals[i : i + 200])
            stop.wait(0.3)

    worker = Worker(env, tmp_path / "worker.log").start()
    feeder = threading.Thread(target=feed, daemon=True)
    try:
        with worker, controller(env, tmp_path / "controller.log"):
            worker.wait_for_log("Worker ready", 60)
            feeder.start()
            wait_until(lambda: at_status(env, store.COMPLETED), 180, None, "the ramp to complete")
    finally:
        stop.set()
        feeder.join(timeout=30)
    transitions = [(m["kind"], m["to_percentage"]) for m in moves(env)]
    assert transitions == [
        ("start", 10.0), ("advance", 25.0), ("advance", 50.0), ("advance", 100.0),
        ("complete", 100.0),
    ]  # fmt: skip
    assert ramp_flag_changes(env) == [10.0, 25.0, 50.0, 100.0]
    for move in moves(env)[1:4]:  # each advance on the worker's own outcomes, ML ahead
        evidence = move["evidence"]
        assert evidence["errors_ml"]["n"] >= 200 and evidence["errors_heuristic"]["n"] >= 200
        assert evidence["errors_ml"]["mean"] < evidence["errors_heuristic"]["mean"]
    # The worker routed by the ramp's flags: the share of ML in each step's stored predictions
    # follows the step (settle time aside).
    engine = make_engine(own_database)
    p = tables.predictions.c
    try:
        with engine.connect() as connection:
            shares = {
                pct: float(share)
                for pct, share in connection.execute(
                    sa.select(
                        p.ml_traffic_percentage,
                        sa.func.avg(sa.case((p.arm == "ml", 1.0), else_=0.0)),
                    ).group_by(p.ml_traffic_percentage)
                )
            }
    finally:
        engine.dispose()
    assert set(shares) <= {10.0, 25.0, 50.0, 100.0} and 10.0 in shares
    assert shares[10.0] == pytest.approx(0.10, abs=0.03) and shares[100.0] == 1.0


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_api_says_what_the_cli_says_and_label_coverage_counts_every_due_actual(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok(cli(env, "start", *START[:-4], "--drift-quiet", "10m", "--actor", "tester"))
    with world(env, seed=6) as w:
        w.conditions.drifting = True
        w.conditions.drop_ml_labels = 0.3
        # Enough due ML bookings for the coverage to be judged (LABEL_COVERAGE_MIN_DUE, 100).
        wait_until(lambda: w.counts["predicted:ml"] >= 150, 60, w, "150 ML bookings")
    counts = w.counts
    with running_api(env, tmp_path / "api.log") as api:
        view = api.get("/api/ramp/status").json()
        said = json.loads(ok(cli(env, "status", "--json")))
        labels = api.get("/api/labels/coverage?wait_minutes=0&hours=1").json()
        bad = api.get("/api/labels/coverage?hours=0")
    for key in ("next_step_allowed", "decision"):
        assert view[key] == said[key], key
    assert [m | {"at": instant(m["at"])} for m in view["moves"]] == [
        m | {"at": instant(m["at"])} for m in said["moves"]
    ]
    assert view["ramp"]["status"] == said["ramp"]["status"] == "running"
    # Drifting, and 30 % of ML's actuals missing: held, or a roll back due once the arrival
    # gap is sure (no controller runs here to make it); either way the two screens agree.
    assert view["ramp"]["percentage"] == 10.0 and view["decision"] in ("hold", "rollback")
    names = {b["name"] for b in view["blockers"]}
    assert "feature_drift" in names or "label_arrival_ratio" in names
    assert names == {b["name"] for b in said["blockers"]}
    by_arm = {a["arm"]: a for a in labels["arms"]}
    for arm in ("ml", "heuristic"):
        assert by_arm[arm]["due"] == counts[f"predicted:{arm}"] > 0
        assert by_arm[arm]["arrived"] == counts[f"labelled:{arm}"]
    assert by_arm["ml"]["below_target"] and not by_arm["heuristic"]["below_target"]
    assert by_arm["ml"]["missing_share"] == pytest.approx(
        1 - counts["labelled:ml"] / counts["predicted:ml"], abs=1e-12
    )
    assert bad.status_code == 400 and bad.json()["detail"].startswith("hours: ")
    # The recorder's periodic look raises one label_coverage alert for ML, and no repeat.
    published: list[Any] = []
    engine = make_engine(env["DATABASE_URL"])
    try:
        look = labels_task(
            engine, clock=utc_now, publish=published.extend, target=0.9, min_due=100,
            wait_minutes=0.0, hours=1.0,
        )  # fmt: skip
        look()
        look()
    finally:
        engine.dispose()
    assert [(a.kind.value, a.subject) for a in published] == [("label_coverage", "ml")]
    assert f"{counts['predicted:ml'] - counts['labelled:ml']:,} missing" in published[0].message


def test_a_pending_move_never_overrides_the_operator_s_kill_switch(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok(cli(env, "start", *START))
    started = latest(env)
    assert started.flag_applied and started.flag_version is not None
    engine = make_engine(env["DATABASE_URL"])
    try:  # a controller that decided 10 -> 25 % and died before writing the flag
        pending = store.record_move(
            engine, started, kind="advance", actor="ramp", now=utc_now(),
            reason="Advanced ML from 10 % to 25 % (decided, not yet written).",
            status=store.RUNNING, step_index=1, percentage=25.0, new_step=True,
            flag_version=started.flag_version,
        )  # fmt: skip
    finally:
        engine.dispose()
    assert pending is not None and not pending.flag_applied
    subprocess.run(
        [sys.executable, "-m", "streams", "flags", "disable", "--actor", "alice"],
        env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    with controller(env, tmp_path / "controller.log"):
        wait_until(lambda: at_status(env, store.PAUSED), 30, None, "the ramp to pause")
    assert flags(env) == (False, 10.0, "alice")  # the kill switch stands
    assert ramp_flag_changes(env) == [10.0]  # the pending 25 % was never written
    paused = latest(env)
    assert paused.flag_applied and "alice" in paused.reason
    # Resumed, the step's share is put back, with the operator's own change as the base.
    ok(cli(env, "resume", "--actor", "bob"))
    assert flags(env) == (True, 25.0, "ramp") and latest(env).status == store.RUNNING
