"""The dashboard at /ml-monitoring in a real headless Chromium, against the real API
(``delaycast api``) on the real stack.

Each test gets a fresh, migrated database of its own, seeded with known predictions, outcomes
and alerts, and a Redis flags key of its own; the page's numbers are compared with the API's JSON
for the same requests. Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import sqlalchemy as sa
from playwright.sync_api import Browser, ConsoleMessage, Page

from connectors.flags import FlagState, FlagStore
from connectors.postgres import (
    drop_database,
    make_engine,
    upgrade,
    write_alerts,
    write_outcomes,
    write_predictions,
)
from schemas import Alert, AlertKind, Arm, Outcome, Severity
from streams.tools.stack.ports import any_free_port
from tests.factories import outcome, prediction
from tests.integration.browser import launched_browser

TOKEN = "dashboard-test-token-7f3a-0123456789abcdef"
SALT = "delaycast-v1"
HOURS = 6  # hours of seeded outcomes, ending at the newest one
ML_ERRORS = (0.5, 1.0, 1.5, 2.5)  # abs errors of each hour's ML outcomes (+ hour / 10)
HEURISTIC_ERRORS = (2.0, 3.0, 3.5, 5.0)
HEURISTIC_GAP = 2  # hours back from the newest: the heuristic has no outcome then
EXTRA_PREDICTIONS = 30  # newer predictions without outcomes (the table shows the newest 50)
# ML outcomes carry a P90: each hour 3 of 4 within it (too few to judge, as the page says),
# and the oldest hour has P90_EXTRA more, P90_EXTRA_WITHIN of them within (and as many more
# heuristic outcomes, without a P90, so that the split stays even).
P90_EXTRA, P90_EXTRA_WITHIN = 40, 36
MIN_P90_N = 36  # the dashboard's MIN_P90_N
LOAD_TIMEOUT_MS = 30_000


@pytest.fixture
def own_database(stack: Any, migrated_database: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own: no other test's rows in its windows."""
    name = f"dash_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(migrated_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = migrated_database.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    drop_database(admin, name)
    admin.dispose()


@dataclass
class Api:
    base_url: str
    flags_key: str
    redis_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str) -> Any:
        response = requests.get(self.base_url + path, timeout=10)
        assert response.status_code in (200, 503), (path, response.status_code, response.text)
        return response.json()

    def flags(self) -> FlagState | None:
        client = redis.Redis.from_url(self.redis_url)
        try:
            return FlagStore(client, self.flags_key).read()
        finally:
            client.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_api(stack: Any, database_url: str, home: Path, **env: str) -> Iterator[Api]:
    """``delaycast api`` as a subprocess on a free port, stopped (by its PID) afterwards."""
    port = any_free_port()
    flags_key = f"dash-{uuid.uuid4().hex[:8]}:flags"
    home.mkdir(parents=True, exist_ok=True)
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DATABASE_URL")
    }
    environment.update(
        KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap_servers,
        REDIS_URL=stack.redis_url,
        DATABASE_URL=database_url,
        DELAYCAST_HOME=str(home),
        MODEL_DIR=str(home / "models"),
        FLAGS_REDIS_KEY=flags_key,
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        API_TOKEN=TOKEN,
        AB_MIN_SAMPLES="10",
        LOG_LEVEL="info",
    )
    environment.update(env)
    log_path = home / "api.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams", "api"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api = Api(f"http://127.0.0.1:{port}", flags_key, stack.redis_url, process, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"delaycast api exited ({process.returncode}):\n{api.log()}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(api.base_url + "/api/health", timeout=5).status_code in (200, 503):
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"delaycast api never answered:\n{api.log()[-4000:]}")
            time.sleep(0.2)
        yield api
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@dataclass(frozen=True)
class Seeded:
    newest_hour: datetime
    ml_mae_newest_hour: float
    heuristic_mae_newest_hour: float
    newest_booking_id: str
    n_alerts_in_window: int
    n_drift_in_window: int


def with_p90(o: Outcome, *, within: bool) -> Outcome:
    """``o`` with a P90 a minute above its actual delay, or half a minute below it."""
    offset = 1.0 if within else -0.5
    return o.model_copy(update={"predicted_p90_minutes": o.actual_delay_minutes + offset})


def seed(database_url: str, *, now: datetime) -> Seeded:
    """Known outcomes over the last HOURS hours before ``now`` (both arms, the heuristic with
    one empty hour), their predictions, newer predictions without outcomes, and alerts."""
    newest_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    predictions, outcomes = [], []
    for back in range(HOURS):
        hour = newest_hour - timedelta(hours=back)
        for arm, errors in ((Arm.ML, ML_ERRORS), (Arm.HEURISTIC, HEURISTIC_ERRORS)):
            if arm is Arm.HEURISTIC and back == HEURISTIC_GAP:
                continue
            for i, error in enumerate(errors):
                booking = f"D-{arm.value}-{back}-{i}"
                at = hour + timedelta(minutes=5 + 10 * i)
                predictions.append(prediction(booking, at=at, arm=arm))
                o = outcome(booking, error + back / 10, arm=arm, at=at)
                if arm is Arm.ML:
                    o = with_p90(o, within=i < 3)
                outcomes.append(o)
    oldest = newest_hour - timedelta(hours=HOURS - 1)
    for i in range(P90_EXTRA):
        at = oldest + timedelta(minutes=1, seconds=i)
        for arm, error in ((Arm.ML, 0.5), (Arm.HEURISTIC, 3.0)):
            booking = f"D-p90-{arm.value}-{i:02d}"
            predictions.append(prediction(booking, at=at, arm=arm))
            o = outcome(booking, error, arm=arm, at=at)
            outcomes.append(with_p90(o, within=i < P90_EXTRA_WITHIN) if arm is Arm.ML else o)
    latest = newest_hour + timedelta(minutes=50)
    for i in range(EXTRA_PREDICTIONS):
        arm = Arm.ML if i % 2 else Arm.HEURISTIC
        at = latest + timedelta(seconds=i)
        predictions.append(prediction(f"D-new-{i:03d}", at=at, arm=arm))
    kinds = [
        (AlertKind.ERROR_DRIFT, newest_hour - timedelta(hours=2, minutes=-20)),
        (AlertKind.MAE_THRESHOLD, newest_hour - timedelta(hours=4, minutes=-40)),
        (AlertKind.FEATURE_DRIFT, newest_hour + timedelta(minutes=15)),
        (AlertKind.INTERVAL_COVERAGE, newest_hour - timedelta(hours=1, minutes=-25)),
        (AlertKind.FALLBACK_STORM, newest_hour - timedelta(days=3)),  # outside a 24 h window
    ]
    alerts = [
        Alert(
            alert_id=f"dash-{kind.value}",
            kind=kind,
            severity=Severity.WARNING,
            subject="ml",
            message=f"{kind.value} <b>seeded</b> by the dashboard test",
            evidence={"mae": 4.2},
            event_time=at,
            raised_at=at + timedelta(seconds=5),
        )
        for kind, at in kinds
    ]
    engine = make_engine(database_url)
    try:
        assert write_predictions(engine, predictions=predictions) == len(predictions)
        assert write_outcomes(engine, outcomes=outcomes) == len(outcomes)
        assert write_alerts(engine, alerts=alerts) == len(alerts)
    finally:
        engine.dispose()
    return Seeded(
        newest_hour=newest_hour,
        ml_mae_newest_hour=sum(ML_ERRORS) / len(ML_ERRORS),
        heuristic_mae_newest_hour=sum(HEURISTIC_ERRORS) / len(HEURISTIC_ERRORS),
        newest_booking_id=f"D-new-{EXTRA_PREDICTIONS - 1:03d}",
        n_alerts_in_window=4,
        n_drift_in_window=2,
    )


def set_flags(api: Api, *, enabled: bool, percentage: float) -> FlagState:
    client = redis.Redis.from_url(api.redis_url)
    try:
        _, new = FlagStore(client, api.flags_key).update(
            initial=FlagState(False, 0.0, SALT),
            ml_enabled=enabled,
            ml_traffic_percentage=percentage,
            actor="test",
            now=datetime.now(UTC),
        )
    finally:
        client.close()
    return new


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_browser() as launched:
        yield launched


class Console:
    """Every console error and uncaught exception of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


def open_dashboard(browser: Browser, api: Api) -> tuple[Page, Console]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console = Console(page)
    page.clock.install()  # timers run normally until the test fast-forwards them
    page.goto(api.base_url + "/ml-monitoring")
    page.wait_for_selector("body[data-state=loaded]", timeout=LOAD_TIMEOUT_MS)
    return page, console


def shown(page: Page, testid: str) -> str:
    """The exact value an element shows (its data-value), as the page got it from the API."""
    value = page.get_attribute(f"[data-testid={testid}]", "data-value")
    assert value is not None, f"no data-value on {testid}"
    return value


def shown_number(page: Page, testid: str) -> float | None:
    value = shown(page, testid)
    return None if value == "null" else float(value)


def text(page: Page, testid: str) -> str:
    return (page.text_content(f"[data-testid={testid}]") or "").strip()


def points(page: Page, chart: str, arm: str) -> int:
    return page.locator(f"[data-testid={chart}] [data-testid=chart-point][data-arm={arm}]").count()


def rows_with_outcomes(series: list[dict[str, Any]], arm: str, key: str = "mae") -> list[dict]:
    return [row for row in series if row["arm"] == arm and row[key] is not None]


def test_the_dashboard_shows_what_the_api_returns(
    stack: Any, own_database: str, browser: Browser, session_dir: Path
) -> None:
    seeded = seed(own_database, now=datetime.now(UTC))
    home = session_dir / f"dashboard-{uuid.uuid4().hex[:6]}"
    with running_api(stack, own_database, home) as api:
        set_flags(api, enabled=True, percentage=50)
        page, console = open_dashboard(browser, api)

        summary = api.get("/api/ml-monitoring/summary?window=24h")
        metrics = api.get("/api/ml-monitoring/metrics?window=24h")
        daily = api.get("/api/ml-monitoring/daily?days=7")
        alerts = api.get("/api/alerts?window=24h&limit=100")["items"]
        predictions = api.get("/api/ml-monitoring/predictions?limit=50")["items"]
        health = api.get("/api/health")
        flags = api.get("/api/feature-flags/status")

        assert console.errors == []
        for panel in (
            "health",
            "split",
            "ab",
            "flags",
            "summary",
            "hourly",
            "daily",
            "alerts",
            "pipeline",
        ):
            assert page.get_attribute(f"[data-panel={panel}]", "data-status") == "ok", panel
        assert text(page, "updated-at").startswith("updated at ")

        # The event-time window: it ends with the newest seeded outcome's minute (35 minutes
        # into the newest hour), not at the wall clock; every panel names it, with its n.
        assert metrics["as_of"] == summary["as_of"]
        assert datetime.fromisoformat(metrics["as_of"]) == seeded.newest_hour + timedelta(
            minutes=36
        )
        assert shown(page, "as-of") == metrics["as_of"]
        assert metrics["step_seconds"] == 3600
        for panel, n in (
            ("summary", summary["outcomes"]),
            ("ab", summary["outcomes"]),
            ("split", summary["predictions"]),
            ("hourly", summary["outcomes"]),
            ("alerts", len(alerts)),
        ):
            tag = page.locator(f"[data-testid={panel}-window]")
            assert tag.get_attribute("data-label").startswith("last 24 h"), panel
            assert int(tag.get_attribute("data-n")) == n, panel
        assert summary["outcomes"] == summary["arms"]["ml"]["n"] + summary["arms"]["heuristic"]["n"]

        # Metrics per arm over the window.
        for arm in ("ml", "heuristic"):
            for key in ("n", "mae", "rmse", "r2", "bias", "underestimate_share"):
                assert shown_number(page, f"summary-{arm}-{key}") == summary["arms"][arm][key]
        assert shown_number(page, "summary-ml-n") == HOURS * len(ML_ERRORS) + P90_EXTRA

        # P90 coverage per arm over the window, with its n; the heuristic's predictions had none.
        for arm in ("ml", "heuristic"):
            for key in ("p90_n", "p90_coverage"):
                assert shown_number(page, f"summary-{arm}-{key}") == summary["arms"][arm][key]
        ml_p90_n = HOURS * 4 + P90_EXTRA
        assert summary["arms"]["ml"]["p90_n"] == ml_p90_n
        assert summary["arms"]["ml"]["p90_coverage"] == (HOURS * 3 + P90_EXTRA_WITHIN) / ml_p90_n
        assert summary["arms"]["heuristic"]["p90_n"] == 0
        assert summary["arms"]["heuristic"]["p90_coverage"] is None
        assert text(page, "summary-heuristic-p90_coverage") == "—"
        assert page.locator("[data-testid=summary-ml-p90-few]").count() == 0
        assert shown_number(page, "summary-predictions") == summary["predictions"]
        assert shown_number(page, "summary-alerts") == summary["alerts"]

        # Hourly: the latest MAE and R² per arm, and one chart point per row with outcomes.
        series = metrics["series"]
        for arm, expected_mae in (
            ("ml", seeded.ml_mae_newest_hour),
            ("heuristic", seeded.heuristic_mae_newest_hour),
        ):
            latest = rows_with_outcomes(series, arm)[-1]
            assert latest["mae"] == pytest.approx(expected_mae)
            assert shown_number(page, f"hourly-latest-mae-{arm}") == latest["mae"]
            assert shown_number(page, f"hourly-latest-r2-{arm}") == latest["r2"]
            assert points(page, "hourly-mae-chart", arm) == len(rows_with_outcomes(series, arm))
            assert points(page, "hourly-r2-chart", arm) == len(
                rows_with_outcomes(series, arm, "r2")
            )
            assert points(page, "daily-mae-chart", arm) == len(
                rows_with_outcomes(daily["series"], arm)
            )
        assert points(page, "hourly-mae-chart", "ml") == HOURS
        assert points(page, "hourly-mae-chart", "heuristic") == HOURS - 1
        # A point of fewer than min_point_outcomes outcomes is drawn hollow, with no figure:
        # here every hour's 4 but the oldest's (4 + P90_EXTRA).
        shown_values = page.eval_on_selector_all(
            "[data-testid=hourly-mae-chart] [data-testid=chart-point][data-arm=ml]",
            "nodes => nodes.map(n => n.dataset.few === 'true' ? null : Number(n.dataset.value))",
        )
        ml_rows = rows_with_outcomes(series, "ml")
        assert [row["few"] for row in ml_rows] == [False] + [True] * (HOURS - 1)
        assert all(row["n"] < metrics["min_point_outcomes"] for row in ml_rows[1:])
        assert shown_values == [None if row["few"] else row["mae"] for row in ml_rows]
        assert shown_values[0] is not None

        # Hourly P90 coverage beside the MAE: one point per hour with a P90, hollow (and off the
        # line) where too few outcomes had one.
        p90_rows = [row for row in series if row["arm"] == "ml" and row["p90_n"] > 0]
        assert [row["p90_n"] for row in p90_rows] == [4 + P90_EXTRA] + [4] * (HOURS - 1)
        assert p90_rows[0]["p90_coverage"] == (3 + P90_EXTRA_WITHIN) / (4 + P90_EXTRA)
        assert all(row["p90_coverage"] == 0.75 for row in p90_rows[1:])
        coverage_points = page.eval_on_selector_all(
            "[data-testid=hourly-p90-chart] [data-testid=chart-point][data-arm=ml]",
            "nodes => nodes.map(n => [Number(n.dataset.value), n.dataset.few === 'true'])",
        )
        assert coverage_points == [
            [row["p90_coverage"], row["p90_n"] < MIN_P90_N] for row in p90_rows
        ]
        assert points(page, "hourly-p90-chart", "heuristic") == 0
        reference = "[data-testid=hourly-p90-chart] [data-testid=chart-reference]"
        assert page.get_attribute(reference, "data-value") == "0.9"
        newest_ml = rows_with_outcomes(series, "ml")[-1]
        assert shown_number(page, "hourly-latest-ml-p90_coverage") == newest_ml["p90_coverage"]
        assert shown_number(page, "hourly-latest-ml-p90_n") == newest_ml["p90_n"] == 4
        assert text(page, "hourly-latest-ml-p90-few") == "too few"
        # Only the coverage alert is marked on the coverage chart.
        coverage_markers = page.eval_on_selector_all(
            "[data-testid=hourly-p90-chart] [data-testid=alert-marker]",
            "nodes => nodes.map(n => n.dataset.kind)",
        )
        assert coverage_markers == ["interval_coverage"]

        # Rollout and split.
        split = summary["split"]
        assert shown_number(page, "split-percentage") == split["percentage"]
        for key in ("assigned", "arrived"):
            for arm in ("ml", "heuristic"):
                assert shown_number(page, f"split-{key}-{arm}") == split[key][arm]
        assert split["arrived"] == {
            "ml": HOURS * 4 + P90_EXTRA,
            "heuristic": (HOURS - 1) * 4 + P90_EXTRA,
        }

        # The A/B verdict with its interval.
        ab = summary["ab"]
        assert ab is not None and ab["verdict"] == "ml_better"
        assert shown(page, "ab-verdict") == ab["verdict"]
        assert text(page, "ab-verdict") == "ML better"
        difference = ab["difference"]
        assert shown_number(page, "ab-difference") == difference["mae_ml_minus_heuristic"]
        assert shown_number(page, "ab-ci-low") == difference["ci_low"]
        assert shown_number(page, "ab-ci-high") == difference["ci_high"]
        report = api.get("/api/ab/report?window=24h")
        assert report["verdict"] == ab["verdict"] and report["window"] == "24h"
        assert report["arms"] == ab["arms"]

        # Alerts and drift events: listed, and marked on the hourly MAE chart.
        assert len(alerts) == seeded.n_alerts_in_window
        assert shown_number(page, "alerts-count") == len(alerts)
        assert page.locator("[data-testid=alert-row]").count() == len(alerts)
        drift = [a for a in alerts if "drift" in a["kind"]]
        assert shown_number(page, "alerts-drift-count") == len(drift) == seeded.n_drift_in_window
        markers = page.locator("[data-testid=hourly-mae-chart] [data-testid=alert-marker]")
        assert markers.count() == len(alerts)
        assert page.locator("[data-testid=hourly-mae-chart] .marker.drift").count() == len(drift)
        # Text from the API is shown as text, never parsed as HTML.
        assert "<b>seeded</b>" in page.locator("[data-testid=alert-row]").first.inner_text()

        # Recent predictions.
        assert len(predictions) == 50
        assert page.locator("[data-testid=prediction-row]").count() == len(predictions)
        assert shown_number(page, "predictions-count") == len(predictions)
        first = text(page, "prediction-booking-id")
        assert first == predictions[0]["booking_id"] == seeded.newest_booking_id

        # Dependency health and flags.
        assert shown(page, "health-status") == health["status"]
        for name, dependency in health["dependencies"].items():
            assert shown(page, f"health-{name}") == dependency["status"]
        assert shown(page, "flags-enabled") == "true" == str(flags["ml_enabled"]).lower()
        assert shown_number(page, "flags-percentage") == flags["ml_traffic_percentage"] == 50

        # Only bounded calls: every API request of the page has a limit, a window, days, minutes
        # or hours.
        calls = page.evaluate("window.__dashboard.calls.map(c => c.path)")
        # One object each: the health, the flags, the ramp (one ramp and its moves), and the
        # label coverage (two counts per arm over the configured span of pickups).
        single = ("/api/health", "/api/feature-flags/status", "/api/ramp/status")
        single += ("/api/labels/coverage",)
        unbounded = [
            c
            for c in calls
            if c.split("?")[0] not in single
            and not any(p in c for p in ("limit=", "window=", "days=", "minutes=", "hours="))
        ]
        assert unbounded == []

        # It refreshes by itself every 30 s: a new prediction appears without a reload.
        engine = make_engine(own_database)
        try:
            newest = datetime.now(UTC) + timedelta(minutes=1)
            write_predictions(engine, predictions=[prediction("D-after-refresh", at=newest)])
        finally:
            engine.dispose()
        assert page.get_attribute("body", "data-refreshes") == "1"
        page.clock.fast_forward(30_500)
        page.wait_for_selector("body[data-refreshes='2']", timeout=LOAD_TIMEOUT_MS)
        assert text(page, "prediction-booking-id") == "D-after-refresh"
        assert console.errors == []

        screenshot = session_dir / "dashboard" / "dashboard.png"
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.is_file() and screenshot.stat().st_size > 10_000
        print(f"dashboard screenshot: {screenshot}")
        page.close()


def test_the_flag_controls_change_redis_only_with_the_right_token(
    stack: Any, own_database: str, browser: Browser, session_dir: Path
) -> None:
    seed(own_database, now=datetime.now(UTC))
    home = session_dir / f"dashboard-{uuid.uuid4().hex[:6]}"
    with running_api(stack, own_database, home) as api:
        before = set_flags(api, enabled=True, percentage=10)
        page, console = open_dashboard(browser, api)
        assert shown_number(page, "flags-percentage") == 10

        # A wrong token: the API's 401 message is shown and nothing changes.
        wrong = requests.post(
            api.base_url + "/api/feature-flags/ml/enable",
            json={"percentage": 75, "actor": "dashboard"},
            headers={"Authorization": "Bearer wrong"},
            timeout=10,
        )
        assert wrong.status_code == 401
        page.fill("[data-testid=flag-token]", "wrong")
        page.fill("[data-testid=flag-percentage-input]", "75")
        page.click("[data-testid=flag-enable]")
        page.wait_for_selector("[data-testid=flag-message][data-status='401']")
        assert text(page, "flag-message") == f"HTTP 401: {wrong.json()['detail']}"
        assert api.flags() == before

        # The right token with a bad percentage: the API's 400 message, nothing changes.
        page.fill("[data-testid=flag-token]", TOKEN)
        page.fill("[data-testid=flag-percentage-input]", "150")
        page.click("[data-testid=flag-enable]")
        page.wait_for_selector("[data-testid=flag-message][data-status='400']")
        bad = requests.post(
            api.base_url + "/api/feature-flags/ml/enable",
            json={"percentage": 150, "actor": "dashboard"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert bad.status_code == 400
        assert text(page, "flag-message") == f"HTTP 400: {bad.json()['detail']}"
        assert api.flags() == before

        # The right token: Redis holds the new flags and the page shows them.
        page.click("[data-testid=flag-quick-25]")
        page.click("[data-testid=flag-enable]")
        page.wait_for_selector("[data-testid=flag-message][data-status='200']")
        after = api.flags()
        assert after is not None
        assert (after.ml_enabled, after.ml_traffic_percentage) == (True, 25.0)
        assert after.version == before.version + 1
        assert after.updated_by == "api:dashboard"
        assert shown_number(page, "flags-percentage") == 25
        page.wait_for_selector("[data-testid=split-flags-percentage][data-value='25']")

        # The kill switch.
        page.click("[data-testid=flag-disable]")
        page.wait_for_selector("[data-testid=flags-enabled][data-value='false']")
        killed = api.flags()
        assert killed is not None
        assert (killed.ml_enabled, killed.ml_traffic_percentage) == (False, 25.0)

        # The token stays in this tab's sessionStorage, never in the URL or the page source.
        assert page.evaluate("sessionStorage.getItem('delaycast.apiToken')") == TOKEN
        assert TOKEN not in page.url
        assert TOKEN not in page.content()
        page.reload()
        page.wait_for_selector("body[data-state=loaded]", timeout=LOAD_TIMEOUT_MS)
        assert page.input_value("[data-testid=flag-token]") == TOKEN
        assert TOKEN not in page.content()

        # The only console errors are the browser's own notes on the refused requests.
        refused = [e for e in console.errors if "status of 401" in e or "status of 400" in e]
        assert len(refused) == 2
        assert [e for e in console.errors if e not in refused] == []
        page.close()


def test_a_failing_endpoint_fails_only_its_own_panels(
    stack: Any, own_database: str, browser: Browser, session_dir: Path
) -> None:
    seed(own_database, now=datetime.now(UTC))
    home = session_dir / f"dashboard-{uuid.uuid4().hex[:6]}"
    with running_api(stack, own_database, home) as api:
        page, _ = open_dashboard(browser, api)
        # A window the API refuses (not one of its names): the endpoints taking a window answer
        # 400; the others must still render.
        page.eval_on_selector(
            "[data-testid=window-select]",
            "s => { s.add(new Option('too long', '90d')); s.value = '90d'; "
            "s.dispatchEvent(new Event('change')); }",
        )
        page.wait_for_selector("body[data-refreshes='2']", timeout=LOAD_TIMEOUT_MS)
        refused = requests.get(api.base_url + "/api/ml-monitoring/metrics?window=90d", timeout=10)
        assert refused.status_code == 400
        assert text(page, "hourly-error") == f"HTTP 400: {refused.json()['detail']}"
        for failed in ("hourly", "alerts", "summary", "split", "shadow"):
            assert page.get_attribute(f"[data-panel={failed}]", "data-status") == "error"
        # The A/B panel falls back to /api/ab/report, which fails the same way.
        assert page.get_attribute("[data-panel=ab]", "data-status") == "error"
        for fine in ("health", "daily", "predictions", "flags", "ramp", "labels", "timeline"):
            assert page.get_attribute(f"[data-panel={fine}]", "data-status") == "ok", fine
        assert page.locator("[data-testid=prediction-row]").count() == 50
        assert text(page, "updated-at").endswith("· 6 panels failed")
        page.close()


def test_without_outcomes_the_panels_say_so(
    stack: Any, own_database: str, browser: Browser, session_dir: Path
) -> None:
    home = session_dir / f"dashboard-{uuid.uuid4().hex[:6]}"
    with running_api(stack, own_database, home) as api:
        page, console = open_dashboard(browser, api)
        for testid in ("summary-empty", "hourly-empty", "daily-empty", "ab-empty"):
            assert "no outcomes yet" in text(page, testid), testid
        assert "no predictions yet" in text(page, "predictions-empty")
        assert page.locator("svg.chart").count() == 0
        assert console.errors == []
        page.close()


READ_TOKEN = "dashboard-read-token-5e21-0123456789abcdef"


def test_with_a_read_token_the_panels_wait_for_it_and_then_show_the_data(
    stack: Any, own_database: str, browser: Browser, session_dir: Path
) -> None:
    seed(own_database, now=datetime.now(UTC))
    home = session_dir / f"dashboard-{uuid.uuid4().hex[:6]}"
    with running_api(stack, own_database, home, API_READ_TOKEN=READ_TOKEN) as api:
        # Without the token: every read but health is refused, and the page says why.
        refused = requests.get(api.base_url + "/api/ml-monitoring/summary", timeout=10)
        assert refused.status_code == 401 and "API_READ_TOKEN" in refused.json()["detail"]
        assert requests.get(api.base_url + "/metrics", timeout=10).status_code == 401
        assert requests.get(api.base_url + "/api/health", timeout=10).status_code in (200, 503)
        page, console = open_dashboard(browser, api)
        for panel in ("summary", "hourly", "daily", "predictions", "flags", "alerts"):
            assert page.get_attribute(f"[data-panel={panel}]", "data-status") == "error", panel
        assert "API_READ_TOKEN" in text(page, "summary-error")
        assert page.get_attribute("[data-panel=health]", "data-status") == "ok"
        # The operator types the read token: the page reads again at once, and every panel
        # shows what the API returns with it.
        page.fill("[data-testid=flag-token]", READ_TOKEN)
        page.press("[data-testid=flag-token]", "Enter")
        page.wait_for_selector("body[data-refreshes='2']", timeout=LOAD_TIMEOUT_MS)
        page.wait_for_selector("body[data-state=loaded]", timeout=LOAD_TIMEOUT_MS)
        for panel in ("summary", "hourly", "daily", "predictions", "flags", "alerts"):
            assert page.get_attribute(f"[data-panel={panel}]", "data-status") == "ok", panel
        headers = {"Authorization": f"Bearer {READ_TOKEN}"}
        predictions = requests.get(
            api.base_url + "/api/ml-monitoring/predictions", headers=headers, timeout=10
        ).json()
        assert page.locator("[data-testid=prediction-row]").count() == len(predictions["items"])
        # The token never reaches the page's address or its markup.
        assert READ_TOKEN not in page.url and READ_TOKEN not in page.content()
        # A read token cannot change the flags.
        before = api.flags()
        page.click("[data-testid=flag-disable]")
        page.wait_for_selector("[data-testid=flag-message][data-status='401']")
        assert api.flags() == before
        assert not [e for e in console.errors if "401" not in e]
        page.close()


def test_the_closed_loop_panels_show_what_the_api_returns(
    stack: Any, own_database: str, browser: Browser, session_dir: Path
) -> None:
    """The ramp, the challenger in shadow, the label coverage, the estimated-then-realized MAE
    and the timeline, each as its endpoint answers."""
    now = datetime.now(UTC)
    seed(own_database, now=now)
    shadowed = [
        outcome(f"SH-{i}", abs_error=1.0 + (i % 5) / 10, at=now - timedelta(hours=1)).model_copy(
            update={
                "shadow_model_version": "gb-ch",
                "shadow_predicted_delay_minutes": 5.0,
                "shadow_abs_error": 0.5 + (i % 3) / 10,
            }
        )
        for i in range(40)
    ]
    engine = make_engine(own_database)
    try:
        write_outcomes(engine, outcomes=shadowed)
    finally:
        engine.dispose()
    home = session_dir / f"dashboard-{uuid.uuid4().hex[:6]}"
    with running_api(stack, own_database, home) as api:
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
            "DATABASE_URL": own_database,
            "REDIS_URL": stack.redis_url,
            "FLAGS_REDIS_KEY": api.flags_key,
            "DELAYCAST_HOME": str(home),
        }
        subprocess.run(
            [sys.executable, "-m", "streams", "ramp", "start", "--steps", "10,50,100",
             "--min-outcomes", "30", "--actor", "tester"],
            env=env, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        page, console = open_dashboard(browser, api)
        ramp = api.get("/api/ramp/status")
        shadow = api.get("/api/shadow/report?window=24h")
        labels = api.get("/api/labels/coverage")
        estimated = api.get("/api/ml-monitoring/estimated?hours=24&ahead_hours=6")
        timeline = api.get("/api/timeline?hours=24&limit=200")
        assert console.errors == []
        for panel in ("ramp", "shadow", "labels", "estimated", "timeline"):
            assert page.get_attribute(f"[data-panel={panel}]", "data-status") == "ok", panel
        assert shown(page, "ramp-percentage") == "10" and ramp["ramp"]["percentage"] == 10
        assert text(page, "ramp-status") == "running"
        # The page asked a moment before the test did: the step's age may differ by a second.
        assert re.sub(r"\d+ s at", "N s at", text(page, "ramp-summary")) == re.sub(
            r"\d+ s at", "N s at", ramp["summary"]
        )
        rows = page.locator("[data-testid=ramp-check]")
        shown_checks = [
            (rows.nth(i).get_attribute("data-name"), rows.nth(i).get_attribute("data-ok"))
            for i in range(rows.count())
        ]
        assert shown_checks == [(c["name"], str(c["ok"]).lower()) for c in ramp["checks"]]
        assert page.locator("[data-testid=ramp-move]").count() == len(ramp["moves"]) == 1
        served = next(c for c in shadow["comparisons"] if c["against"] == "served")
        assert served["n"] == 40
        row = page.locator("[data-testid=shadow-row][data-against=served]")
        assert row.locator("[data-testid=shadow-difference]").get_attribute("data-value") == str(
            served["difference"]
        )
        assert page.locator("[data-testid=shadow-row]").count() == len(shadow["comparisons"])
        assert page.get_attribute("[data-testid=shadow-window]", "data-n") == "40"
        arms = {a["arm"]: a for a in labels["arms"]}
        if any(a["due"] for a in arms.values()):
            assert page.locator("[data-testid=labels-row]").count() == 2
        assert page.locator("[data-testid=estimated-row]").count() == min(
            48, len(estimated["hours"])
        )
        assert page.locator("[data-testid=timeline-row]").count() == len(timeline["items"]) >= 2
        assert {e["kind"] for e in timeline["items"]} >= {"ramp_start", "flag_change"}
        page.close()
