"""How fast the dashboard loads on a large history: ``python -m streams.tools.loadcheck``.

A measurement, not a test. It

1. seeds the configured PostgreSQL (DATABASE_URL, else the running ``delaycast stack``'s; or
   ``--database-url``) with ``--predictions`` predictions (default 1,000,000) spread evenly over
   the last ``--days`` days, live outcomes for ``--outcome-share`` of those whose pickup is past,
   their hourly metric buckets, and ``--alerts`` alerts: one ``INSERT … SELECT`` over
   ``generate_series`` each, then ``VACUUM ANALYZE``;
2. starts ``delaycast api`` on a free port against that database;
3. opens ``/ml-monitoring`` in headless Chromium ``--runs`` times and prints the time until the
   page is loaded (every panel drawn) and each API call's time as the page saw it, then each
   endpoint's time measured alone.

It writes, so it refuses unless the database holds no prediction yet (a fresh scratch database)
or ``--i-know-this-writes`` is given. Seeded rows are marked: booking ids ``LOAD-…``, model
versions ``load-…``, alert ids ``load-…``. A database already seeded by it is not seeded again.

A scratch stack, from the checkout::

    export DELAYCAST_HOME=/tmp/dash-home
    .venv/bin/delaycast stack up && .venv/bin/delaycast db upgrade
    .venv/bin/python -m streams.tools.loadcheck
    .venv/bin/delaycast stack down

Needs Debian's ``chromium`` and the ``playwright`` package (a dev dependency).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from connectors.postgres import make_engine
from schemas.outcome import UNDERESTIMATE_MINUTES
from streams.settings import load_settings
from streams.tools.stack.ports import any_free_port

PAGE_CALLS = (
    "/api/health",
    "/api/ml-monitoring/summary?window=24h",
    "/api/ml-monitoring/metrics?window=24h",
    "/api/ml-monitoring/daily?days=7",
    "/api/alerts?window=24h&limit=100",
    "/api/ml-monitoring/predictions?limit=50",
    "/api/feature-flags/status",
    "/api/pipeline?minutes=15",
)
FEATURES = (
    '{"lead_time_minutes": 85.0, "pickup_hour": 8, "weekday": 2, "distance_km": 6.4, '
    '"vehicle_type": "wheelchair", "patient_priority": "urgent", "temperature_c": 4.5, '
    '"precipitation_mm_h": 1.2, "wind_m_s": 3.0, "visibility_m": 8000}'
)

_SEED_PREDICTIONS = sa.text(
    """
INSERT INTO predictions (
    booking_id, predicted_at, arm, served_by, bucket, model_version, predicted_delay_minutes,
    confidence, risk_level, fallback_reason, fallback_detail, ml_enabled, ml_traffic_percentage,
    flag_source, weather_source, features, scheduled_pickup_at, booking_created_at,
    processing_ms, latency_ms, replay)
SELECT
    'LOAD-' || lpad(i::text, 8, '0'),
    predicted_at,
    arm,
    CASE WHEN fell_back THEN 'heuristic' ELSE arm END,
    bucket,
    CASE WHEN arm = 'ml' AND NOT fell_back THEN 'load-rf-1' ELSE 'load-heuristic-1' END,
    delay,
    0.3 + 0.6 * random(),
    CASE WHEN delay >= 15 THEN 'high' WHEN delay >= 5 THEN 'medium' ELSE 'low' END,
    CASE WHEN fell_back THEN 'model_error' END,
    NULL,
    true,
    :percentage,
    'redis',
    'openweather',
    CAST(:features AS jsonb),
    predicted_at + (30 + i % 120) * interval '1 minute',
    predicted_at - interval '2 hours',
    1 + 4 * random(),
    20 + 60 * random(),
    false
FROM (
    SELECT
        i,
        bucket,
        CASE WHEN bucket < :percentage THEN 'ml' ELSE 'heuristic' END AS arm,
        bucket < :percentage AND i % 250 = 0 AS fell_back,
        CAST(:end AS timestamptz) - ((:n - i) * :step_s) * interval '1 second' AS predicted_at,
        round(CAST(1 + 14 * random() ^ 2 AS numeric), 2)::float8 AS delay
    FROM (
        SELECT i, ((i * 7919) % 10000) / 100.0 AS bucket
        FROM generate_series(1, CAST(:n AS bigint)) AS i
    ) AS numbered
) AS generated
"""
)

_SEED_OUTCOMES = sa.text(
    """
INSERT INTO outcomes (
    booking_id, replay, arm, served_by, model_version, bucket, ml_traffic_percentage,
    fallback_reason, predicted_delay_minutes, actual_delay_minutes, error, abs_error,
    scheduled_pickup_at, predicted_at, observed_at)
SELECT
    booking_id, false, arm, served_by, model_version, bucket, ml_traffic_percentage,
    fallback_reason, predicted_delay_minutes, actual, predicted_delay_minutes - actual,
    abs(predicted_delay_minutes - actual), scheduled_pickup_at, predicted_at,
    scheduled_pickup_at + greatest(actual, 0) * interval '1 minute'
FROM (
    SELECT p.*,
           p.predicted_delay_minutes
             + CASE WHEN p.served_by = 'ml' THEN 3.2 ELSE 4.2 END
             * (random() + random() + random() - 1.5) AS actual
    FROM predictions AS p
    WHERE p.booking_id LIKE 'LOAD-%' AND NOT p.replay AND p.scheduled_pickup_at < :cut
) AS joined
WHERE random() < :share
"""
)


def _seed_buckets(table: str, start: str, unit: str) -> sa.TextClause:
    """Sum the seeded outcomes into ``table`` per UTC ``unit`` (hour, minute), as the outcome
    writer does."""
    sums = ("sum_error", "sum_abs_error", "sum_sq_error", "sum_actual", "sum_actual_sq")
    added = ",\n    ".join(f"{c} = {table}.{c} + excluded.{c}" for c in ("n", *sums))
    return sa.text(
        f"""
INSERT INTO {table} (
    {start}, arm, model_version, replay, n, sum_error, sum_abs_error, sum_sq_error,
    sum_actual, sum_actual_sq, n_underestimated)
SELECT
    date_trunc('{unit}', observed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
    arm, model_version, replay, count(*), sum(error), sum(abs_error), sum(error * error),
    sum(actual_delay_minutes), sum(actual_delay_minutes * actual_delay_minutes),
    count(*) FILTER (WHERE actual_delay_minutes - predicted_delay_minutes > :under)
FROM outcomes
WHERE booking_id LIKE 'LOAD-%'
GROUP BY 1, 2, 3, 4
ON CONFLICT ({start}, arm, model_version, replay) DO UPDATE SET
    {added},
    n_underestimated = {table}.n_underestimated + excluded.n_underestimated
"""
    )


_SEED_ALERTS = sa.text(
    """
INSERT INTO alerts (alert_id, kind, severity, subject, message, evidence, event_time, raised_at)
SELECT
    'load-' || i,
    (ARRAY['error_drift', 'feature_drift', 'prediction_drift', 'mae_threshold',
           'fallback_storm', 'ab_verdict'])[1 + i % 6],
    CASE WHEN i % 10 = 0 THEN 'critical' ELSE 'warning' END,
    CASE WHEN i % 2 = 0 THEN 'ml' ELSE 'heuristic' END,
    'load check alert ' || i,
    CAST('{"mae": 3.4, "window": 200}' AS jsonb),
    CAST(:end AS timestamptz) - (i * :step_s) * interval '1 second',
    CAST(:end AS timestamptz) - (i * :step_s - 5) * interval '1 second'
FROM generate_series(1, CAST(:n AS bigint)) AS i
ON CONFLICT DO NOTHING
"""
)

_OTHERS_EXIST = sa.text(
    "SELECT EXISTS (SELECT 1 FROM predictions WHERE booking_id NOT LIKE 'LOAD-%')"
)


def _echo(message: str) -> None:
    click.echo(message)
    sys.stdout.flush()


def _count(connection: sa.Connection, sql: str) -> int:
    return int(connection.execute(sa.text(sql)).scalar_one())


def _check_writable(engine: sa.Engine, *, allowed: bool, predictions: int) -> int:
    """The number of LOAD- predictions already there; refuses a database holding others'."""
    try:
        with engine.connect() as connection:
            seeded = _count(
                connection, "SELECT count(*) FROM predictions WHERE booking_id LIKE 'LOAD-%'"
            )
            others = bool(connection.execute(_OTHERS_EXIST).scalar_one())
    except sa.exc.ProgrammingError:
        raise click.UsageError(
            "the database has no delaycast tables: run `delaycast db upgrade` first"
        ) from None
    except sa.exc.OperationalError as exc:
        raise click.ClickException(
            f"cannot reach PostgreSQL ({type(exc.orig).__name__}); is the stack up?"
        ) from None
    if others and not allowed:
        raise click.UsageError(
            "the database already holds predictions that are not the load check's; it would "
            f"write {predictions:,} more next to them. Use a fresh scratch database (see --help), "
            "or pass --i-know-this-writes"
        )
    return seeded


def seed(
    engine: sa.Engine,
    *,
    predictions: int,
    days: float,
    outcome_share: float,
    alerts: int,
    percentage: float,
    end: datetime,
) -> dict[str, float]:
    """Write the history; returns each step's seconds."""
    span_s = days * 86400
    timings: dict[str, float] = {}
    steps: list[tuple[str, sa.TextClause, dict[str, Any]]] = [
        (
            "predictions",
            _SEED_PREDICTIONS,
            {
                "n": predictions,
                "end": end,
                "step_s": span_s / predictions,
                "percentage": percentage,
                "features": FEATURES,
            },
        ),
        (
            "outcomes",
            _SEED_OUTCOMES,
            {"cut": end - timedelta(hours=2), "share": outcome_share},
        ),
        (
            "metric_buckets",
            _seed_buckets("metric_buckets", "hour_start", "hour"),
            {"under": UNDERESTIMATE_MINUTES},
        ),
        (
            "metric_minutes",
            _seed_buckets("metric_minutes", "minute_start", "minute"),
            {"under": UNDERESTIMATE_MINUTES},
        ),
        ("alerts", _SEED_ALERTS, {"n": alerts, "end": end, "step_s": span_s / max(alerts, 1)}),
    ]
    for name, statement, params in steps:
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(statement, params)
        timings[name] = time.perf_counter() - started
        _echo(f"  {name:<15} {timings[name]:7.1f} s")
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(
            sa.text("VACUUM ANALYZE predictions, outcomes, metric_buckets, metric_minutes, alerts")
        )
    timings["vacuum_analyze"] = time.perf_counter() - started
    _echo(f"  {'vacuum analyze':<15} {timings['vacuum_analyze']:7.1f} s")
    return timings


@contextlib.contextmanager
def running_api(database_url: str | None, log_path: Path) -> Iterator[str]:
    """``delaycast api`` on a free port; yields its base URL and stops it afterwards."""
    port = any_free_port()
    env = dict(os.environ, API_HOST="127.0.0.1", API_PORT=str(port), LOG_LEVEL="warning")
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    base = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams", "api"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise click.ClickException(
                    f"delaycast api exited ({process.returncode}); see {log_path}"
                )
            with contextlib.suppress(requests.RequestException):
                requests.get(base + "/api/health", timeout=5)
                break
            if time.monotonic() > deadline:
                raise click.ClickException(f"delaycast api never answered; see {log_path}")
            time.sleep(0.2)
        yield base
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def measure_page(base: str, chromium: str, runs: int) -> list[dict[str, Any]]:
    """Load the dashboard ``runs`` times in fresh pages; the page's own timings of each load."""
    from playwright.sync_api import sync_playwright

    loads = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        try:
            for _ in range(runs):
                page = browser.new_page()
                page.goto(base + "/ml-monitoring")
                page.wait_for_selector("body[data-state=loaded]", timeout=120_000)
                probe = page.evaluate(
                    "() => ({loadedMs: window.__dashboard.firstLoadMs,"
                    " calls: window.__dashboard.calls.filter(c => c.refresh === 0),"
                    " failed: document.querySelector('[data-testid=updated-at]').dataset.failed,"
                    " domContentLoadedMs: performance.getEntriesByType('navigation')[0]"
                    ".domContentLoadedEventEnd})"
                )
                loads.append(probe)
                page.close()
        finally:
            browser.close()
    return loads


def measure_endpoints(base: str, repeats: int = 5) -> dict[str, float]:
    """The median time of each of the page's calls, made alone and one at a time (ms)."""
    medians = {}
    with requests.Session() as session:
        for path in PAGE_CALLS:
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                session.get(base + path, timeout=60)
                times.append((time.perf_counter() - started) * 1000)
            medians[path] = statistics.median(times)
    return medians


@click.command()
@click.option("--database-url", help="Instead of the settings' DATABASE_URL.")
@click.option(
    "--predictions", type=click.IntRange(1000, 50_000_000), default=1_000_000, show_default=True
)
@click.option(
    "--days",
    type=click.FloatRange(1, 365),
    default=30,
    show_default=True,
    help="The predictions are spread evenly over this many days up to now.",
)
@click.option(
    "--outcome-share",
    type=click.FloatRange(0, 1),
    default=0.9,
    show_default=True,
    help="Share of the past pickups whose actual delay arrived.",
)
@click.option("--alerts", type=click.IntRange(0, 1_000_000), default=1000, show_default=True)
@click.option(
    "--percentage",
    type=click.FloatRange(0, 100),
    default=50,
    show_default=True,
    help="The ML rollout of the seeded predictions.",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 50),
    default=3,
    show_default=True,
    help="Dashboard loads, each in a fresh page.",
)
@click.option(
    "--i-know-this-writes",
    "allowed",
    is_flag=True,
    help="Seed a database that already holds other predictions.",
)
def main(
    database_url: str | None,
    predictions: int,
    days: float,
    outcome_share: float,
    alerts: int,
    percentage: float,
    runs: int,
    allowed: bool,
) -> None:
    """Seed a large history, then time the dashboard's load in headless Chromium."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise click.UsageError("chromium is needed: install it with `apt-get install chromium`")
    url = database_url or load_settings().database_url.get_secret_value()
    shown = make_url(url).render_as_string(hide_password=True)
    engine = make_engine(url)
    try:
        seeded = _check_writable(engine, allowed=allowed, predictions=predictions)
        _echo(f"database {shown}")
        if seeded >= predictions:
            _echo(f"already seeded: {seeded:,} LOAD- predictions")
        elif seeded:
            raise click.UsageError(
                f"the database holds {seeded:,} LOAD- predictions from an interrupted or smaller "
                "run; use a fresh scratch database"
            )
        else:
            _echo(f"seeding {predictions:,} predictions over {days:g} days …")
            end = datetime.now(UTC).replace(second=0, microsecond=0)
            started = time.perf_counter()
            seed(
                engine,
                predictions=predictions,
                days=days,
                outcome_share=outcome_share,
                alerts=alerts,
                percentage=percentage,
                end=end,
            )
            _echo(f"  {'total':<15} {time.perf_counter() - started:7.1f} s")
        with engine.connect() as connection:
            counts = {
                table: _count(connection, f"SELECT count(*) FROM {table}")
                for table in (
                    "predictions",
                    "outcomes",
                    "metric_buckets",
                    "metric_minutes",
                    "alerts",
                )
            }
            size = connection.execute(
                sa.text("SELECT pg_size_pretty(pg_database_size(current_database()))")
            ).scalar_one()
    finally:
        engine.dispose()
    _echo("rows: " + ", ".join(f"{table} {n:,}" for table, n in counts.items()) + f" ({size})")

    with tempfile.TemporaryDirectory(prefix="delaycast-loadcheck-") as scratch:
        log_path = Path(scratch) / "api.log"
        with running_api(database_url, log_path) as base:
            loads = measure_page(base, chromium, runs)
            alone = measure_endpoints(base)
    for number, load in enumerate(loads, start=1):
        failed = int(load["failed"] or 0)
        _echo(
            f"\ndashboard load {number}: loaded in {load['loadedMs']:.0f} ms after navigation "
            f"(DOMContentLoaded {load['domContentLoadedMs']:.0f} ms)"
            + (f", {failed} panels FAILED" if failed else "")
        )
        for call in load["calls"]:
            _echo(f"  {call['path']:<44} HTTP {call['status']}  {call['ms']:7.1f} ms")
    _echo("\neach call alone, median of 5:")
    for path, ms in alone.items():
        _echo(f"  {path:<44} {ms:7.1f} ms")


if __name__ == "__main__":
    main()
