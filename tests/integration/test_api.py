"""``delaycast api`` on the real stack: a real uvicorn process against PostgreSQL, Redis and Kafka.

PostgreSQL is seeded with real rows (predictions, outcomes with their buckets, alerts) in the
year 2097, so they are the newest live data of the session's shared database and the windows
(which end at the newest live hour) hold exactly them. Expected values are computed offline from
the seeded outcomes. The API's DATABASE_URL carries a password (the stack trusts loopback, so it
is never checked) and the API has a token: neither may appear in any answer or in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
import requests
import sqlalchemy as sa
from fastapi.routing import APIRoute
from prometheus_client.parser import text_string_to_metric_families

from connectors.flags import FlagState, FlagStore
from connectors.kafka_admin import KafkaAdminError, delete_topics, ensure_topics, list_topics
from connectors.postgres import add_counters, make_engine, read_counters
from connectors.postgres.history import write_alerts, write_outcomes, write_predictions
from models.synthetic import SyntheticWorld
from schemas import TOPICS, Alert, AlertKind, Arm, Outcome, Prediction, Severity, topic_name
from schemas.tables import flag_changes
from streams.operate.api import create_app
from streams.settings import load_settings
from streams.tools.stack.ports import any_free_port
from streams.worker.metrics import WorkerMetrics, bucket_field, flush
from tests import factories
from tests.integration.conftest import TEST_PARTITIONS
from tests.integration.workers import Worker, collect, produce, worker_env

H0 = datetime(2097, 3, 4, 10, tzinfo=UTC)  # the newest live hour of the seeded history
AS_OF = H0 + timedelta(minutes=29)  # the end of the newest live outcome's minute (H0 + 28 min)
PASSWORD = f"pw-{uuid.uuid4().hex}"
TOKEN = f"tok-{uuid.uuid4().hex}"
ANSWERS: list[str] = []  # every body the API gave in this module, checked for secrets at the end


# --- servers -------------------------------------------------------------------------------


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class Api:
    base: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self._record(requests.get(self.base + path, timeout=30, **kwargs))

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self._record(requests.post(self.base + path, timeout=30, **kwargs))

    @staticmethod
    def _record(response: requests.Response) -> requests.Response:
        ANSWERS.append(response.text)
        ANSWERS.append(json.dumps(dict(response.headers)))
        return response

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_api(env: dict[str, str], log_path: Path) -> Iterator[Api]:
    port = any_free_port()
    handle = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "streams", "api", "--port", str(port)],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = Api(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the API exited ({process.returncode}):\n{api.log()}")
            with contextlib.suppress(requests.ConnectionError):
                requests.get(api.base + "/api/openapi.json", timeout=5)
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the API never answered:\n{api.log()}")
            time.sleep(0.1)
        yield api
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        handle.close()


@pytest.fixture(scope="module")
def prefix(stack) -> Iterator[str]:
    """This module's topics (the API's consumer lag reads its bookings topic)."""
    value = f"t-api-{uuid.uuid4().hex[:8]}."
    ensure_topics(
        stack.kafka_bootstrap_servers,
        [topic_name(spec.name, value) for spec in TOPICS],
        TEST_PARTITIONS,
    )
    yield value
    with contextlib.suppress(KafkaAdminError):
        mine = [n for n in list_topics(stack.kafka_bootstrap_servers) if n.startswith(value)]
        delete_topics(stack.kafka_bootstrap_servers, mine)


def api_env(stack, prefix: str, home: Path, model_dir: Path, **overrides: str) -> dict[str, str]:
    env = worker_env(stack, prefix, home)
    env.update(
        DATABASE_URL=with_password(stack.database_url, PASSWORD),
        API_TOKEN=TOKEN,
        MODEL_DIR=str(model_dir),
        AB_MIN_SAMPLES="20",
    )
    env.update(overrides)
    return env


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("api-home")


@pytest.fixture(scope="module")
def api(stack, prefix, home, trained_model_dir, migrated_database, seeded) -> Iterator[Api]:
    env = api_env(stack, prefix, home, trained_model_dir)
    with running_api(env, home / "api.log") as running:
        yield running


@pytest.fixture(scope="module")
def engine(migrated_database) -> Iterator[sa.Engine]:
    engine = make_engine(migrated_database)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def redis_client(stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url)
    yield client
    client.close()


# --- the seeded history --------------------------------------------------------------------


@dataclass
class Seeded:
    live: list[Outcome]  # live outcomes in the 24-hour window
    older: list[Outcome]  # live, a day before the window
    replayed: list[Outcome]
    predictions: list[Prediction]
    alerts: list[Alert]


def seeded_outcome(
    booking_id: str, arm: Arm, at: datetime, error: float, p90: float | None = None
) -> Outcome:
    base = factories.outcome(booking_id, abs(error), arm=arm, at=at)
    return base.model_copy(
        update={
            "actual_delay_minutes": base.predicted_delay_minutes - error,
            "error": error,
            "predicted_at": at - timedelta(hours=2),
            "predicted_p90_minutes": p90,
        }
    )


def alert(tag: str, kind: AlertKind, event_time: datetime, raised_at: datetime) -> Alert:
    return Alert(
        alert_id=f"{tag}-{kind.value}",
        kind=kind,
        severity=Severity.WARNING,
        subject="ml",
        message=f"{kind.value} seeded by the API test",
        evidence={"mae": 4.5},
        event_time=event_time,
        raised_at=raised_at,
    )


@pytest.fixture(scope="module")
def seeded(engine) -> Seeded:
    tag = f"api{uuid.uuid4().hex[:8]}"
    rng = random.Random(11)
    live = []
    for i in range(30):
        hour = H0 - timedelta(hours=i % 3)
        error = rng.gauss(0, 4)
        # A P90 of 10 (5 minutes above every prediction) on 25 of the 30; some actuals beyond.
        p90 = None if i % 7 == 0 else 10.0
        at = hour + timedelta(minutes=i + 1)
        live.append(seeded_outcome(f"{tag}-m{i:02d}", Arm.ML, at, error, p90))
    for i in range(20):
        hour = H0 - timedelta(hours=i % 2)
        error = rng.gauss(1, 6)
        at = hour + timedelta(minutes=i + 1, seconds=30)
        live.append(seeded_outcome(f"{tag}-h{i:02d}", Arm.HEURISTIC, at, error))
    older = [
        seeded_outcome(f"{tag}-old{i}", Arm.ML, H0 - timedelta(hours=30, minutes=i), 9.0 + i)
        for i in range(2)
    ]
    replayed = [
        seeded_outcome(f"{tag}-r0", Arm.ML, H0 + timedelta(minutes=50), 50.0).model_copy(
            update={"replay": True}
        )
    ]
    predictions = [
        factories.prediction(o.booking_id, at=o.predicted_at, arm=o.arm) for o in live + older
    ]
    # Assigned, actual not arrived yet.
    predictions += [
        factories.prediction(f"{tag}-p{i}", at=H0 - timedelta(minutes=30 + i), arm=Arm.HEURISTIC)
        for i in range(5)
    ]
    # The newest predictions: two live and one replayed.
    predictions += [
        factories.prediction(f"{tag}-n0", at=H0 + timedelta(minutes=55), arm=Arm.ML),
        factories.prediction(f"{tag}-n1", at=H0 + timedelta(minutes=57), arm=Arm.HEURISTIC),
        factories.prediction(f"{tag}-n2", at=H0 + timedelta(minutes=56), replay=True),
    ]
    alerts = [
        alert(tag, AlertKind.MAE_THRESHOLD, H0 - timedelta(hours=1), H0 + timedelta(minutes=1)),
        alert(tag, AlertKind.FALLBACK_STORM, H0, H0 + timedelta(minutes=2)),
        alert(tag, AlertKind.AB_VERDICT, H0 - timedelta(hours=48), H0 + timedelta(minutes=3)),
    ]
    assert write_predictions(engine, predictions=predictions) == len(predictions)
    assert write_outcomes(engine, outcomes=live + older + replayed) == len(live + older) + 1
    assert write_alerts(engine, alerts=alerts) == 3
    return Seeded(live, older, replayed, predictions, alerts)


def offline(outcomes: list[Outcome]) -> dict[str, float]:
    errors = np.array([o.error for o in outcomes])
    actuals = np.array([o.actual_delay_minutes for o in outcomes])
    return {
        "n": len(outcomes),
        "mae": float(np.mean(np.abs(errors))),
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "bias": float(np.mean(errors)),
        "r2": float(1 - np.sum(errors**2) / np.sum((actuals - actuals.mean()) ** 2)),
        "underestimate_share": float(np.mean(-errors > 5)),
    }


def offline_coverage(outcomes: list[Outcome]) -> tuple[int, float | None]:
    """(outcomes with a P90, the share of them whose actual was at most it)."""
    actual_and_p90 = [
        (o.actual_delay_minutes, o.predicted_p90_minutes)
        for o in outcomes
        if o.predicted_p90_minutes is not None
    ]
    covered = sum(actual <= p90 for actual, p90 in actual_and_p90)
    return len(actual_and_p90), covered / len(actual_and_p90) if actual_and_p90 else None


def assert_metrics(got: dict[str, Any], outcomes: list[Outcome]) -> None:
    want = offline(outcomes)
    assert got["n"] == want["n"]
    for name in ("mae", "rmse", "bias", "r2", "underestimate_share"):
        assert abs(got[name] - want[name]) < 1e-9, (name, got[name], want[name])
    assert (got["p90_n"], got["p90_coverage"]) == offline_coverage(outcomes)


def arm(outcomes: list[Outcome], name: str) -> list[Outcome]:
    return [o for o in outcomes if o.arm.value == name]


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# --- the monitoring endpoints --------------------------------------------------------------


def test_summary_metrics_equal_an_offline_computation_over_the_seeded_outcomes(api, seeded):
    answer = api.get("/api/ml-monitoring/summary?window=24h")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["as_of"], body["window_start"], body["window"], body["window_label"]) == (
        iso(AS_OF),
        iso(AS_OF - timedelta(hours=24)),
        "24h",
        "last 24 h",
    )
    assert body["outcomes"] == 50
    # hours=24 is the same window, and no parameter is the 24h window too.
    assert api.get("/api/ml-monitoring/summary?hours=24").json() == body
    assert api.get("/api/ml-monitoring/summary").json() == body
    for name in ("ml", "heuristic"):
        assert_metrics(body["arms"][name], arm(seeded.live, name))
    ml_p90_n, ml_coverage = offline_coverage(arm(seeded.live, "ml"))
    assert ml_p90_n == 25 and ml_coverage is not None and 0.5 < ml_coverage < 1
    assert (body["arms"]["heuristic"]["p90_n"], body["arms"]["heuristic"]["p90_coverage"]) == (
        0,
        None,
    )
    # The window ends at the newest outcome: the two newest predictions (H0 + 55 and 57 min)
    # are after it, and the wall clock (years earlier) does not extend it.
    assert body["split"] == {
        "percentage": 50.0,  # every seeded prediction was made at a 50 % rollout
        "assigned": {"ml": 30, "heuristic": 25},
        "arrived": {"ml": 30, "heuristic": 20},
    }
    assert body["predictions"] == 55 and body["alerts"] == 2
    ab = body["ab"]
    assert ab["window_start"] == body["window_start"] and ab["window_end"] == body["as_of"]
    assert ab["arms"]["ml"]["n"] == 30 and ab["arms"]["heuristic"]["n"] == 20
    assert abs(ab["arms"]["ml"]["mae"] - offline(arm(seeded.live, "ml"))["mae"]) < 1e-9
    assert ab["verdict"] in ("ml_better", "heuristic_better", "inconclusive")
    assert ab["min_samples"] == 20
    assert set(ab["srm"]) == {"assigned", "with_actual"}
    assert body["flags"]["source"] in ("redis", "settings")


def test_the_series_has_every_period_and_arm_with_exact_values(api, seeded):
    body = api.get("/api/ml-monitoring/metrics?hours=3").json()
    assert body["as_of"] == iso(AS_OF) and body["window_start"] == iso(AS_OF - timedelta(hours=3))
    assert (body["window"], body["step_seconds"], body["min_point_outcomes"]) == (
        "custom",
        3600,
        20,
    )
    series = body["series"]
    # Whole hours from the one holding the window's start.
    assert [(s["period_start"], s["arm"]) for s in series] == [
        (iso(H0 - timedelta(hours=h)), a) for h in (3, 2, 1, 0) for a in ("ml", "heuristic")
    ]
    for row in series:
        hour = datetime.fromisoformat(row["period_start"])
        mine = [
            o
            for o in arm(seeded.live, row["arm"])
            if o.observed_at.replace(minute=0, second=0) == hour
        ]
        assert row["few"] == (0 < len(mine) < 20)
        if mine:
            assert_metrics(row, mine)
        else:
            assert row["n"] == 0 and row["mae"] is None and row["r2"] is None
            assert row["p90_n"] == 0 and row["p90_coverage"] is None
    ml_rows = [row for row in series if row["arm"] == "ml"]
    assert sum(row["p90_n"] for row in ml_rows) == 25
    assert series[2]["n"] == 10 and series[3]["n"] == 0  # no heuristic outcome at H0 − 2 h


def test_a_short_window_has_five_minute_periods_ending_with_the_newest_outcome(api, seeded):
    body = api.get("/api/ml-monitoring/metrics?window=1h").json()
    assert (body["window"], body["window_label"], body["step_seconds"]) == ("1h", "last hour", 300)
    assert body["window_start"] == iso(AS_OF - timedelta(hours=1))
    series = body["series"]
    starts = sorted({s["period_start"] for s in series})
    assert starts[0] == iso(H0 - timedelta(minutes=35)) and starts[-1] == iso(
        H0 + timedelta(minutes=25)
    )
    assert len(starts) == 13
    in_window = [o for o in seeded.live if o.observed_at >= AS_OF - timedelta(hours=1)]
    assert sum(s["n"] for s in series) == len(in_window) > 0
    summary = api.get("/api/ml-monitoring/summary?window=1h").json()
    assert summary["outcomes"] == len(in_window)
    for name in ("ml", "heuristic"):
        assert_metrics(summary["arms"][name], arm(in_window, name))


def test_since_start_holds_every_live_outcome(api, seeded, engine):
    from connectors.postgres import monitoring

    body = api.get("/api/ml-monitoring/summary?window=all").json()
    _, oldest = monitoring.live_minute_range(engine)
    assert body["window"] == "all" and body["window_label"] == "since start"
    assert body["window_start"] == iso(oldest) and body["as_of"] == iso(AS_OF)
    # The shared test database holds other modules' outcomes too: at least the seeded ones.
    assert body["arms"]["ml"]["n"] >= 32 and body["arms"]["heuristic"]["n"] >= 20


def test_daily_metrics_merge_each_utc_day(api, seeded):
    body = api.get("/api/ml-monitoring/daily?days=2").json()
    assert body["window_start"] == iso(H0.replace(hour=0) - timedelta(days=1))
    assert [(s["day"], s["arm"], s["n"]) for s in body["series"]] == [
        ("2097-03-03", "ml", 2),
        ("2097-03-03", "heuristic", 0),
        ("2097-03-04", "ml", 30),
        ("2097-03-04", "heuristic", 20),
    ]
    assert_metrics(body["series"][0], seeded.older)
    assert_metrics(body["series"][2], arm(seeded.live, "ml"))


def test_anomalies_are_exactly_the_live_outcomes_above_the_threshold_newest_first(api, seeded):
    body = api.get("/api/ml-monitoring/anomalies?threshold_mae=5&hours=24&limit=1000").json()
    want = sorted(
        (o for o in seeded.live if o.abs_error > 5), key=lambda o: o.observed_at, reverse=True
    )
    assert len(want) >= 5
    assert [i["booking_id"] for i in body["items"]] == [o.booking_id for o in want]
    first = body["items"][0]
    assert first == {
        "booking_id": want[0].booking_id,
        "arm": want[0].arm.value,
        "model_version": want[0].model_version,
        "predicted_delay_minutes": want[0].predicted_delay_minutes,
        "actual_delay_minutes": want[0].actual_delay_minutes,
        "error": want[0].error,
        "abs_error": want[0].abs_error,
        "observed_at": iso(want[0].observed_at),
    }
    assert body["threshold_mae"] == 5.0 and body["as_of"] == iso(AS_OF)
    limited = api.get("/api/ml-monitoring/anomalies?threshold_mae=5&limit=2").json()
    assert [i["booking_id"] for i in limited["items"]] == [o.booking_id for o in want[:2]]


def test_predictions_are_the_newest_first_replays_included(api, seeded):
    body = api.get("/api/ml-monitoring/predictions?limit=3").json()
    newest = sorted(seeded.predictions, key=lambda p: p.predicted_at, reverse=True)[:3]
    assert [i["booking_id"] for i in body["items"]] == [p.booking_id for p in newest]
    assert [i["replay"] for i in body["items"]] == [False, True, False]
    item = body["items"][0]
    assert set(item) == {
        "booking_id",
        "predicted_at",
        "scheduled_pickup_at",
        "predicted_delay_minutes",
        "confidence",
        "risk_level",
        "arm",
        "served_by",
        "model_version",
        "fallback_reason",
        "latency_ms",
        "replay",
    }
    assert item["predicted_at"] == iso(newest[0].predicted_at) and item["arm"] == "heuristic"


def test_alerts_of_the_window_newest_first_and_by_kind(api, seeded):
    body = api.get("/api/alerts?hours=24").json()
    assert [a["alert_id"] for a in body["items"]] == [
        seeded.alerts[1].alert_id,
        seeded.alerts[0].alert_id,
    ]
    assert body["items"][0]["evidence"] == {"mae": 4.5}
    assert body["items"][0]["kind"] == "fallback_storm"
    only = api.get("/api/alerts?hours=72&kind=ab_verdict").json()
    assert [a["alert_id"] for a in only["items"]] == [seeded.alerts[2].alert_id]
    assert len(api.get("/api/alerts?hours=72&limit=1").json()["items"]) == 1


def test_the_ab_report_is_the_evaluation_of_the_window(api, seeded):
    body = api.get("/api/ab/report?hours=24").json()
    assert body["window_end"] == iso(AS_OF)
    assert body["arms"]["heuristic"]["n"] == 20
    heuristic = offline(arm(seeded.live, "heuristic"))
    assert abs(body["arms"]["heuristic"]["mae"] - heuristic["mae"]) < 1e-9
    ml = offline(arm(seeded.live, "ml"))
    assert abs(body["difference"]["mae_ml_minus_heuristic"] - (ml["mae"] - heuristic["mae"])) < 1e-9
    assert body["srm"]["with_actual"]["observed_ml"] == 30
    assert body["srm"]["assigned"]["observed_heuristic"] == 25  # up to the newest outcome
    low, high = body["difference"]["ci_low"], body["difference"]["ci_high"]
    assert low < body["difference"]["mae_ml_minus_heuristic"] < high
    assert 0 <= body["difference"]["p_value"] <= 1


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/ml-monitoring/predictions?limit=0", "limit"),
        ("/api/ml-monitoring/predictions?limit=abc", "limit"),
        ("/api/ml-monitoring/metrics?hours=-1", "hours"),
        ("/api/ml-monitoring/summary?hours=99999", "hours"),
        ("/api/ml-monitoring/daily?days=9999", "days"),
        ("/api/ml-monitoring/anomalies?threshold_mae=0", "threshold_mae"),
        ("/api/alerts?kind=nope", "kind"),
        ("/api/ab/report?window=2h", "window"),
        ("/api/ml-monitoring/summary?window=24h&hours=24", "window, hours"),
    ],
)
def test_every_bad_parameter_answers_400_naming_it(api, path, parameter):
    answer = api.get(path)
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith(f"{parameter}: ") and ", got " in detail


# --- flags ---------------------------------------------------------------------------------


def test_flag_changes_need_the_token_and_are_written_to_redis_and_audited(
    api, prefix, engine, redis_client
):
    store = FlagStore(redis_client, f"{prefix}flags")
    with engine.connect() as connection:
        before = connection.execute(sa.select(sa.func.max(flag_changes.c.id))).scalar() or 0
    path = "/api/feature-flags/ml/enable"
    assert api.post(path, json={"percentage": 25}).status_code == 401
    wrong = api.post(path, json={"percentage": 25}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert store.read() is None or store.read().ml_traffic_percentage != 25  # type: ignore[union-attr]

    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = api.post(path, json={"percentage": 25, "actor": "alice"}, headers=auth)
    assert answer.status_code == 200, answer.text
    flags = answer.json()
    state = store.read()
    assert state is not None and (state.ml_enabled, state.ml_traffic_percentage) == (True, 25.0)
    assert state.updated_by == "api:alice"
    assert (flags["ml_enabled"], flags["ml_traffic_percentage"]) == (True, 25.0)
    assert (flags["source"], flags["version"]) == ("redis", state.version)
    assert flags["recent_changes"][0]["actor"] == "api:alice"

    off = api.post("/api/feature-flags/ml/disable", headers=auth)
    assert off.status_code == 200
    state = store.read()
    assert state is not None and (state.ml_enabled, state.ml_traffic_percentage) == (False, 25.0)

    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(flag_changes).where(flag_changes.c.id > before).order_by(flag_changes.c.id)
        ).all()
    assert [(r.actor, r.new_ml_enabled, r.new_ml_traffic_percentage) for r in rows] == [
        ("api:alice", True, 25.0),
        ("api:anonymous", False, 25.0),
    ]
    status = api.get("/api/feature-flags/status").json()
    assert (status["ml_enabled"], status["ml_traffic_percentage"]) == (False, 25.0)
    assert [c["actor"] for c in status["recent_changes"][:2]] == ["api:anonymous", "api:alice"]
    assert status["recent_changes"][0]["old_ml_enabled"] is True


# --- health, OpenAPI -----------------------------------------------------------------------


def test_health_is_ok_when_every_dependency_answers(api):
    answer = api.get("/api/health")
    body = answer.json()
    assert answer.status_code == 200, body
    assert body["status"] == "ok"
    assert {k: v["status"] for k, v in body["dependencies"].items()} == {
        "postgres": "ok",
        "redis": "ok",
        "kafka": "ok",
        "model": "ok",
    }
    assert re.match(r"champion (rf|gb)-\d{8}T\d{6}Z-", body["dependencies"]["model"]["detail"])
    assert all(v["latency_ms"] >= 0 for v in body["dependencies"].values())


def documented_routes(app: Any) -> dict[str, set[str]]:
    """Path → methods of the app's API routes meant for the OpenAPI document."""
    paths: dict[str, set[str]] = {}
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        candidates = (
            [(c.original_route, c.path, c.include_in_schema) for c in contexts()]
            if contexts is not None
            else [(route, getattr(route, "path", ""), getattr(route, "include_in_schema", False))]
        )
        for original, path, in_schema in candidates:
            if isinstance(original, APIRoute) and in_schema:
                paths.setdefault(path, set()).update(m.lower() for m in original.methods)
    return paths


def test_the_openapi_document_lists_exactly_the_real_routes_and_each_answers(api, stack):
    document = api.get("/api/openapi.json").json()
    app = create_app(load_settings(**stack_settings(stack)))
    routes = documented_routes(app)
    assert {p: set(ops) for p, ops in document["paths"].items()} == routes
    for path, methods in routes.items():
        for method in methods:
            answer = api.get(path) if method == "get" else api.post(path)
            assert answer.status_code != 404, (method, path)
    assert api.get("/api/docs").status_code == 404
    assert api.get("/api/nowhere").json() == {"detail": "Not Found"}


def stack_settings(stack) -> dict[str, str]:
    return {
        "kafka_bootstrap_servers": stack.kafka_bootstrap_servers,
        "redis_url": stack.redis_url,
        "database_url": stack.database_url,
    }


# --- /metrics ------------------------------------------------------------------------------


def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = api.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_show_what_the_flusher_wrote_to_redis(api, stack, prefix, redis_client, engine):
    before = scrape(api)
    metrics = WorkerMetrics()
    metrics.record_batch(
        bookings=7,
        predictions=[
            factories.prediction("x1", arm=Arm.ML, latency_ms=20.0),
            factories.prediction("x2", arm=Arm.ML, latency_ms=300.0),
            factories.prediction("x3", arm=Arm.HEURISTIC, latency_ms=3000.0),
        ],
        fallbacks={"model_error": 2},
        dead_letters={"decode": 3, "too_large": 1},
    )
    key = f"{prefix}delaycast:metrics"
    hash_before = {k.decode(): v.decode() for k, v in redis_client.hgetall(key).items()}

    async def flush_once() -> bool:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            return await flush(client, key, metrics)
        finally:
            await client.aclose()

    assert asyncio.run(flush_once())
    stored = {k.decode(): v.decode() for k, v in redis_client.hgetall(key).items()}
    grew = {k: float(v) - float(hash_before.get(k, 0)) for k, v in stored.items()}
    assert grew["bookings"] == 7 and grew["dead_letters"] == 4
    assert grew["predictions:ml"] == 2 and grew["predictions:heuristic"] == 1
    assert grew["fallbacks:model_error"] == 2
    assert grew[bucket_field(0.025)] == 1 and grew[bucket_field(0.5)] == 1
    assert grew[bucket_field("+Inf")] == 1
    assert abs(grew["latency:sum"] - 3.32) < 1e-9

    add_counters(engine, deltas={"join.outcomes": 3, "join.dead_letters:decode": 2})
    after = scrape(api)
    # Dead letters by kind: the prediction path's (Redis) and the join's (PostgreSQL) added.
    by_kind = "delaycast_dead_letters_by_kind_total"
    assert delta(after, before, by_kind, kind="decode") == 3 + 2
    assert delta(after, before, by_kind, kind="too_large") == 1
    assert delta(after, before, by_kind, kind="validation") == 0
    assert delta(after, before, "delaycast_bookings_total") == 7
    assert delta(after, before, "delaycast_dead_letters_total") == 4
    assert delta(after, before, "delaycast_predictions_total", arm="ml") == 2
    assert delta(after, before, "delaycast_predictions_total", arm="heuristic") == 1
    assert delta(after, before, "delaycast_fallbacks_total", reason="model_error") == 2
    name = "delaycast_prediction_latency_seconds_bucket"
    assert delta(after, before, name, le="0.025") == 1
    assert delta(after, before, name, le="0.1") == 1
    assert delta(after, before, name, le="0.5") == 2
    assert delta(after, before, name, le="+Inf") == 3
    assert delta(after, before, "delaycast_prediction_latency_seconds_count") == 3
    assert after[("delaycast_outcomes_total", ())] == read_counters(engine)["join.outcomes"]
    assert delta(after, before, "delaycast_outcomes_total") == 3


def test_a_real_worker_s_counters_and_consumer_lag_reach_metrics(
    api, stack, prefix, home, redis_client
):
    world, rng, now = SyntheticWorld(3), random.Random(3), datetime.now(UTC)
    valid = []
    for i in range(20):
        booking = world.booking(now, rng).model_copy(update={"booking_id": f"W-{i:03d}"})
        valid.append((booking.booking_id.encode(), booking.model_dump_json().encode()))
    bad = [(b"BAD-1", b"not json"), (b"BAD-2", b'{"booking_id": "x"}')]
    # ML on 100 % with no model: every booking falls back, with the reason no_model.
    FlagStore(redis_client, f"{prefix}flags").update(
        initial=FlagState(False, 0.0, "delaycast-v1"),
        ml_enabled=True,
        ml_traffic_percentage=100.0,
        actor="test",
        now=now,
    )
    before = scrape(api)
    produce(stack, f"{prefix}bookings", valid + bad)
    lag_key = (
        "delaycast_consumer_lag",
        (("group", f"{prefix}delaycast"), ("topic", f"{prefix}bookings")),
    )
    assert scrape(api)[lag_key] == 22  # nothing committed by the group yet

    worker_home = home / "worker"
    worker_home.mkdir(exist_ok=True)
    with Worker(worker_env(stack, prefix, worker_home), worker_home / "worker.log").start():
        assert len(collect(stack, f"{prefix}predictions", 20, timeout_s=90)) == 20
        deadline = time.monotonic() + 30
        while True:
            after = scrape(api)
            # A scrape whose Kafka query failed (a group rebalancing, say) has no lag series.
            if delta(after, before, "delaycast_bookings_total") >= 22 and after.get(lag_key) == 0:
                break
            assert time.monotonic() < deadline, (after, before)
            time.sleep(0.5)
    assert delta(after, before, "delaycast_bookings_total") == 22
    assert delta(after, before, "delaycast_dead_letters_total") == 2
    # One not JSON (decode), one JSON but not a booking (validation).
    by_kind = "delaycast_dead_letters_by_kind_total"
    assert delta(after, before, by_kind, kind="decode") == 1
    assert delta(after, before, by_kind, kind="validation") == 1
    assert delta(after, before, "delaycast_predictions_total", arm="ml") == 20
    assert delta(after, before, "delaycast_fallbacks_total", reason="no_model") == 20
    assert delta(after, before, "delaycast_prediction_latency_seconds_count") == 20
    assert after[("delaycast_scrape_source_up", (("source", "kafka"),))] == 1.0


# --- servers down --------------------------------------------------------------------------


def test_with_redis_and_kafka_down_health_is_degraded_and_metrics_still_answer(
    stack, prefix, home, trained_model_dir, seeded
):
    closed = any_free_port()
    env = api_env(
        stack,
        prefix,
        home,
        trained_model_dir,
        REDIS_URL=f"redis://127.0.0.1:{closed}/0",
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{closed}",
    )
    with running_api(env, home / "api-degraded.log") as degraded:
        answer = degraded.get("/api/health")
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "degraded"
        statuses = {k: v["status"] for k, v in body["dependencies"].items()}
        assert statuses == {"postgres": "ok", "redis": "down", "kafka": "down", "model": "ok"}

        started = time.monotonic()
        samples = scrape(degraded)
        assert time.monotonic() - started < 6
        names = {name for name, _ in samples}
        assert "delaycast_consumer_lag" not in names and "delaycast_bookings_total" not in names
        assert samples[("delaycast_scrape_source_up", (("source", "redis"),))] == 0.0
        assert samples[("delaycast_scrape_source_up", (("source", "postgres"),))] == 1.0

        flags = degraded.get("/api/feature-flags/status").json()
        assert (flags["source"], flags["version"]) == ("settings", None)
        refused = degraded.post(
            "/api/feature-flags/ml/enable",
            json={"percentage": 5},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert refused.status_code == 503 and "Redis" in refused.json()["detail"]
        # PostgreSQL still answers: the metrics endpoints work without Redis.
        summary = degraded.get("/api/ml-monitoring/summary")
        assert summary.status_code == 200 and summary.json()["arms"]["ml"]["n"] == 30


def test_with_postgres_down_health_is_down_503_and_queries_answer_503_json(
    stack, prefix, home, trained_model_dir
):
    closed = any_free_port()
    env = api_env(
        stack,
        prefix,
        home,
        trained_model_dir,
        DATABASE_URL=f"postgresql+psycopg2://delaycast:{PASSWORD}@127.0.0.1:{closed}/delaycast",
    )
    with running_api(env, home / "api-down.log") as down:
        answer = down.get("/api/health")
        assert answer.status_code == 503 and answer.json()["status"] == "down"
        assert answer.json()["dependencies"]["postgres"]["status"] == "down"
        for path in ("/api/ml-monitoring/summary", "/api/ml-monitoring/predictions", "/api/alerts"):
            failed = down.get(path)
            assert failed.status_code == 503, path
            assert failed.json()["detail"].startswith("PostgreSQL is unavailable")
        assert down.get("/metrics").status_code == 200


def test_no_answer_and_no_log_line_contains_a_secret(api, home):
    assert len(ANSWERS) > 50
    logs = [p.read_text(errors="replace") for p in home.glob("api*.log")]
    assert len(logs) >= 1 and "dashboard at http://127.0.0.1:" in logs[0]
    for text in ANSWERS + logs:
        assert PASSWORD not in text and TOKEN not in text
