"""The PostgreSQL history against the real server: idempotent writes, metric buckets equal to an
offline computation over the outcomes table, replays apart from live data, checkpoints, counters,
A/B results, the dashboard counts and the migrations.

The session database is shared: each test writes its own booking ids and model versions, so its
rows and its buckets are its own.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import psycopg2
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from connectors.postgres import (
    add_counters,
    arrived_counts,
    assignment_counts,
    current_revision,
    drop_database,
    head_revision,
    latest_ab_result,
    load_checkpoint,
    make_engine,
    metric_buckets_between,
    read_counters,
    save_checkpoint,
    upgrade,
    write_ab_result,
    write_alerts,
    write_outcomes,
    write_predictions,
)
from connectors.postgres.history import SUM_COLUMNS
from connectors.postgres.migrate import MIGRATIONS
from models.ab import sample_ratio_check
from schemas import (
    Alert,
    AlertKind,
    Arm,
    FlagSource,
    Outcome,
    Prediction,
    RiskLevel,
    Severity,
    Weather,
    WeatherSource,
)
from schemas.tables import alerts, metadata, metric_minutes, outcomes, predictions
from streams.tools.stack.health import libpq_url

T0 = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def engine(migrated_database: str) -> Iterator[sa.Engine]:
    engine = make_engine(migrated_database)
    yield engine
    engine.dispose()


@pytest.fixture
def tag() -> str:
    """This test's own prefix for booking ids and model versions."""
    return f"t{uuid.uuid4().hex[:12]}"


def make_prediction(
    booking_id: str,
    predicted_at: datetime,
    *,
    arm: str = "ml",
    ml_enabled: bool = True,
    percentage: float = 30.0,
    replay: bool = False,
    delay: float = 12.5,
) -> Prediction:
    weather = Weather(
        temperature_c=4.5,
        precipitation_mm_h=0.3,
        wind_m_s=5.0,
        visibility_m=8000.0,
        humidity_pct=85.0,
        condition="rain",
        observed_at=predicted_at,
        source=WeatherSource.RECORDED,
    )
    return Prediction(
        booking_id=booking_id,
        predicted_delay_minutes=delay,
        confidence=0.71,
        risk_level=RiskLevel.MEDIUM,
        arm=Arm(arm),
        served_by=Arm(arm),
        bucket=17.25,
        model_version="heuristic-v1" if arm == "heuristic" else "forest-7",
        ml_enabled=ml_enabled,
        ml_traffic_percentage=percentage,
        flag_source=FlagSource.REDIS,
        features={"distance_km": 7.123456789012345, "hour": 22.0, "precipitation_mm_h": 0.3},
        weather=weather,
        scheduled_pickup_at=predicted_at + timedelta(minutes=40),
        booking_created_at=predicted_at - timedelta(seconds=2),
        predicted_at=predicted_at,
        processing_ms=3.25,
        latency_ms=41.0,
        replay=replay,
    )


def make_outcome(
    booking_id: str,
    *,
    observed_at: datetime,
    predicted: float,
    actual: float,
    arm: str = "ml",
    model_version: str = "forest-7",
    replay: bool = False,
    p90: float | None = None,
) -> Outcome:
    return Outcome(
        booking_id=booking_id,
        arm=Arm(arm),
        served_by=Arm(arm),
        model_version=model_version,
        bucket=42.0,
        ml_traffic_percentage=30.0,
        predicted_delay_minutes=predicted,
        predicted_p90_minutes=p90,
        actual_delay_minutes=actual,
        error=predicted - actual,
        abs_error=abs(predicted - actual),
        scheduled_pickup_at=observed_at - timedelta(minutes=actual),
        predicted_at=observed_at - timedelta(minutes=actual + 30),
        observed_at=observed_at,
        replay=replay,
    )


def random_outcomes(
    tag: str, n: int, *, seed: int, days: int = 3, replay: bool = False
) -> list[Outcome]:
    """``n`` outcomes over ``days`` days, two arms and three model versions (all named after
    ``tag``), with event times in several time zones. Most carry a P90, some of them exactly
    the actual delay (within it); those of ``{tag}-forest-2`` none."""
    rng = random.Random(seed)
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-7))]
    models = [("ml", f"{tag}-forest-1"), ("ml", f"{tag}-forest-2"), ("heuristic", f"{tag}-h")]
    out = []
    for i in range(n):
        arm, model = rng.choice(models)
        observed = T0 + timedelta(seconds=rng.uniform(0, days * 86400))
        predicted = rng.uniform(0, 45)
        actual = predicted + rng.choice([5.0, 5.000001, rng.uniform(-20, 40)])
        p90 = rng.choice([None, actual, actual - 1e-9, predicted + rng.uniform(0, 30)])
        out.append(
            make_outcome(
                f"{tag}-{i}",
                observed_at=observed.astimezone(rng.choice(zones)),
                predicted=predicted,
                actual=actual,
                arm=arm,
                model_version=model,
                replay=replay,
                p90=None if model.endswith("forest-2") else p90,
            )
        )
    return out


def stored_outcomes(engine: sa.Engine, tag: str) -> list[dict[str, Any]]:
    query = outcomes.select().where(outcomes.c.booking_id.startswith(f"{tag}-"))
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def offline_buckets(
    rows: Sequence[dict[str, Any]] | Sequence[Outcome], *, minutes: bool = False
) -> dict[tuple, dict]:
    """The metric buckets (per UTC hour, or minute) computed from outcome rows with numpy,
    independently of SQL."""
    groups: dict[tuple, list[tuple[float, ...]]] = defaultdict(list)
    for row in rows:
        r = row.model_dump() if isinstance(row, Outcome) else row
        floor = {"second": 0} if minutes else {"minute": 0, "second": 0}
        hour = r["observed_at"].astimezone(UTC).replace(microsecond=0, **floor)
        key = (hour, r["arm"], r["model_version"], r["replay"])
        p90 = r["predicted_p90_minutes"]
        groups[key].append(
            (
                r["predicted_delay_minutes"],
                r["actual_delay_minutes"],
                r["error"],
                r["abs_error"],
                np.nan if p90 is None else p90,
            )
        )
    out = {}
    for key, values in groups.items():
        predicted, actual, error, abs_error, p90s = np.array(values).T
        has_p90 = ~np.isnan(p90s)
        out[key] = {
            "n": len(values),
            "sum_error": np.sum(error),
            "sum_abs_error": np.sum(abs_error),
            "sum_sq_error": np.sum(error**2),
            "sum_actual": np.sum(actual),
            "sum_actual_sq": np.sum(actual**2),
            "n_underestimated": int(np.sum(actual - predicted > 5.0)),
            "p90_n": int(np.sum(has_p90)),
            "p90_covered": int(np.sum(has_p90 & (actual <= np.where(has_p90, p90s, np.inf)))),
        }
    return out


def stored_buckets(engine: sa.Engine, tag: str, *, replay: bool) -> dict[tuple, dict]:
    rows = metric_buckets_between(engine, start=EVERYTHING[0], end=EVERYTHING[1], replay=replay)
    return {
        (r["hour_start"], r["arm"], r["model_version"], r["replay"]): {
            name: r[name] for name in SUM_COLUMNS
        }
        for r in rows
        if r["model_version"].startswith(f"{tag}-")
    }


def stored_minutes(engine: sa.Engine, tag: str, *, replay: bool) -> dict[tuple, dict]:
    m = metric_minutes.c
    query = metric_minutes.select().where(m.replay == replay, m.model_version.startswith(f"{tag}-"))
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(query)]
    return {
        (r["minute_start"], r["arm"], r["model_version"], r["replay"]): {
            name: r[name] for name in SUM_COLUMNS
        }
        for r in rows
    }


def assert_buckets_equal(stored: dict[tuple, dict], expected: dict[tuple, dict]) -> None:
    assert sorted(stored) == sorted(expected)
    for key, sums in expected.items():
        for name in ("n", "n_underestimated", "p90_n", "p90_covered"):
            assert stored[key][name] == sums[name], (key, name)
        for name in ("sum_error", "sum_abs_error", "sum_sq_error", "sum_actual", "sum_actual_sq"):
            np.testing.assert_allclose(
                stored[key][name], sums[name], rtol=1e-9, atol=1e-9, err_msg=f"{key} {name}"
            )


def test_a_prediction_is_stored_once_with_every_field_and_a_replay_adds_a_row(engine, tag):
    batch = [
        make_prediction(f"{tag}-{i}", T0 + timedelta(seconds=i), delay=i / 7) for i in range(300)
    ]
    assert write_predictions(engine, predictions=batch) == 300
    assert write_predictions(engine, predictions=batch) == 0
    assert write_predictions(engine, predictions=batch[:10] + batch[:10]) == 0

    replayed = make_prediction(f"{tag}-0", T0 + timedelta(days=30), replay=True)
    assert write_predictions(engine, predictions=[replayed, replayed]) == 1

    query = predictions.select().where(predictions.c.booking_id.startswith(f"{tag}-"))
    with engine.connect() as connection:
        rows = {(r.booking_id, r.predicted_at): r for r in connection.execute(query)}
    assert len(rows) == 301
    stored = rows[(f"{tag}-7", T0 + timedelta(seconds=7))]
    event = batch[7]
    assert stored.predicted_delay_minutes == event.predicted_delay_minutes  # bit for bit
    assert stored.features == event.features
    assert (stored.arm, stored.served_by, stored.risk_level) == ("ml", "ml", "medium")
    assert (stored.weather_source, stored.flag_source) == ("recorded", "redis")
    assert (stored.fallback_reason, stored.fallback_detail, stored.replay) == (None, None, False)
    assert stored.scheduled_pickup_at == event.scheduled_pickup_at
    assert stored.booking_created_at == event.booking_created_at
    assert (stored.processing_ms, stored.latency_ms) == (3.25, 41.0)
    assert rows[(f"{tag}-0", T0 + timedelta(days=30))].replay is True


def test_outcomes_written_twice_change_neither_the_table_nor_the_buckets(engine, tag):
    batch = random_outcomes(tag, 400, seed=1)
    assert write_outcomes(engine, outcomes=batch) == 400
    buckets = stored_buckets(engine, tag, replay=False)

    assert write_outcomes(engine, outcomes=batch) == 0
    assert write_outcomes(engine, outcomes=batch[100:150] + batch[100:150]) == 0

    assert len(stored_outcomes(engine, tag)) == 400
    assert stored_buckets(engine, tag, replay=False) == buckets
    assert sum(b["n"] for b in buckets.values()) == 400


def test_metric_buckets_equal_an_offline_computation_over_the_outcomes_table(engine, tag):
    everything = random_outcomes(tag, 3000, seed=2, days=4)
    # Batches of uneven sizes, with a redelivered subset in the middle and a duplicate within
    # one batch: each outcome must count once.
    batches = [
        everything[:700],
        everything[700:1500] + everything[300:500],
        everything[1500:1501] * 3,
        everything[1501:],
        everything[2000:2600],
    ]
    new = [write_outcomes(engine, outcomes=batch) for batch in batches[:3]]
    with engine.begin() as connection:
        # Hours are UTC hours whatever the session's time zone (this one is 30 minutes off).
        connection.exec_driver_sql("SET LOCAL TIME ZONE 'Asia/Kolkata'")
        new += [write_outcomes(connection, outcomes=batch) for batch in batches[3:]]
    assert new == [700, 800, 1, 1499, 0]

    rows = stored_outcomes(engine, tag)
    assert len(rows) == 3000
    # Each P90 is stored as the event had it, to the last bit (None where it had none).
    p90s = {r["booking_id"]: r["predicted_p90_minutes"] for r in rows}
    assert p90s == {o.booking_id: o.predicted_p90_minutes for o in everything}
    expected = offline_buckets(rows)
    assert 1000 < sum(b["p90_n"] for b in expected.values()) < 3000
    assert 0 < sum(b["p90_covered"] for b in expected.values()) < 2000
    assert len({key[0] for key in expected}) > 72  # spread over many hours of several days
    assert_buckets_equal(stored_buckets(engine, tag, replay=False), expected)
    # The table holds exactly the events: the same computation over them agrees.
    assert_buckets_equal(stored_buckets(engine, tag, replay=False), offline_buckets(everything))
    assert stored_buckets(engine, tag, replay=True) == {}
    # The same outcomes summed per UTC minute, for the short windows, exactly once too.
    by_minute = offline_buckets(rows, minutes=True)
    assert len(by_minute) > 2 * len(expected)
    assert_buckets_equal(stored_minutes(engine, tag, replay=False), by_minute)
    assert stored_minutes(engine, tag, replay=True) == {}


def test_the_five_minute_underestimation_boundary_is_the_outcome_schemas(engine, tag):
    at = T0 + timedelta(minutes=10)
    pairs = [(10.0, 15.0), (10.0, 15.000001), (0.0, 30.0), (20.0, 10.0)]
    batch = [
        make_outcome(f"{tag}-{i}", observed_at=at, predicted=p, actual=a, model_version=f"{tag}-m")
        for i, (p, a) in enumerate(pairs)
    ]
    write_outcomes(engine, outcomes=batch)
    [bucket] = stored_buckets(engine, tag, replay=False).values()
    assert bucket["n_underestimated"] == sum(o.underestimated for o in batch) == 2


def test_an_actual_equal_to_its_p90_is_covered_in_the_bucket_as_in_the_outcome_schema(engine, tag):
    at = T0 + timedelta(minutes=20)
    cases = [(12.0, 12.0), (12.000001, 12.0), (11.0, 12.0), (40.0, None), (-3.0, -2.5)]
    batch = [
        make_outcome(
            f"{tag}-{i}", observed_at=at, predicted=10.0, actual=a, model_version=f"{tag}-m", p90=q
        )
        for i, (a, q) in enumerate(cases)
    ]
    assert [o.within_p90 for o in batch] == [True, False, True, None, True]
    write_outcomes(engine, outcomes=batch)
    [bucket] = stored_buckets(engine, tag, replay=False).values()
    assert (bucket["n"], bucket["p90_n"], bucket["p90_covered"]) == (5, 4, 3)


def test_replayed_outcomes_land_in_their_own_buckets_and_leave_live_ones_alone(engine, tag):
    live = random_outcomes(tag, 500, seed=3)
    write_outcomes(engine, outcomes=live)
    live_buckets = stored_buckets(engine, tag, replay=False)

    # The same bookings replayed through a retrained model: same event times, other numbers.
    replayed = []
    for o in live:
        predicted = o.predicted_delay_minutes * 0.9
        error = predicted - o.actual_delay_minutes
        update = {"replay": True, "predicted_delay_minutes": predicted, "error": error}
        replayed.append(o.model_copy(update=update | {"abs_error": abs(error)}))
    assert write_outcomes(engine, outcomes=replayed) == 500
    assert write_outcomes(engine, outcomes=replayed) == 0

    assert stored_buckets(engine, tag, replay=False) == live_buckets
    rows = stored_outcomes(engine, tag)
    assert len(rows) == 1000
    assert_buckets_equal(
        stored_buckets(engine, tag, replay=True), offline_buckets([r for r in rows if r["replay"]])
    )
    assert_buckets_equal(live_buckets, offline_buckets([r for r in rows if not r["replay"]]))


def test_parallel_writers_of_overlapping_batches_count_each_outcome_once(engine, tag):
    everything = random_outcomes(tag, 2000, seed=6, days=1)
    # Four sinks, each with every outcome in its own order and batching: all overlap.
    plans = []
    for seed in range(4):
        order = everything[:]
        random.Random(seed).shuffle(order)
        plans.append([order[i : i + 250] for i in range(0, len(order), 250)])
    new: list[int] = []

    def sink(batches: list[list[Outcome]]) -> None:
        for batch in batches:
            new.append(write_outcomes(engine, outcomes=batch))

    with ThreadPoolExecutor(max_workers=4) as pool:
        # No deadlock either: each batch takes its locks in key order.
        list(pool.map(sink, plans))
    assert sum(new) == 2000
    assert len(stored_outcomes(engine, tag)) == 2000
    assert_buckets_equal(stored_buckets(engine, tag, replay=False), offline_buckets(everything))


def test_a_five_thousand_outcome_batch_is_one_write(engine, tag):
    batch = random_outcomes(tag, 5000, seed=5)
    assert write_outcomes(engine, outcomes=batch) == 5000
    assert write_outcomes(engine, outcomes=batch) == 0
    assert_buckets_equal(stored_buckets(engine, tag, replay=False), offline_buckets(batch))


def test_alerts_are_stored_once_per_alert_id(engine, tag):
    at = T0 + timedelta(hours=1)
    batch = [
        Alert(
            alert_id=f"{tag}-drift-{i}",
            kind=AlertKind.ERROR_DRIFT,
            severity=Severity.WARNING,
            subject="ml",
            message=f"absolute error of ml moved ({i})",
            evidence={"mean_before": 6.5, "mean_after": 9.25, "detector": "adwin"},
            event_time=at,
            raised_at=at + timedelta(seconds=3),
        )
        for i in range(3)
    ]
    assert write_alerts(engine, alerts=batch) == 3
    assert write_alerts(engine, alerts=batch + batch) == 0
    query = alerts.select().where(alerts.c.alert_id.startswith(f"{tag}-"))
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(alerts.c.alert_id)).all()
    assert [r.alert_id for r in rows] == [a.alert_id for a in batch]
    first = rows[0]
    assert (first.kind, first.severity, first.subject) == ("error_drift", "warning", "ml")
    assert first.evidence == {"mean_before": 6.5, "mean_after": 9.25, "detector": "adwin"}
    assert (first.event_time, first.raised_at) == (at, at + timedelta(seconds=3))
    assert first.stored_at is not None


def test_checkpoints_round_trip_and_the_last_save_wins(engine, tag):
    assert load_checkpoint(engine, name=f"{tag}-adwin") is None
    state = bytes(range(256)) * 40  # every byte value, NUL included
    save_checkpoint(engine, name=f"{tag}-adwin", state=state)
    assert load_checkpoint(engine, name=f"{tag}-adwin") == state
    save_checkpoint(engine, name=f"{tag}-adwin", state=b"second")
    assert load_checkpoint(engine, name=f"{tag}-adwin") == b"second"


def test_counters_add_up_from_zero(engine, tag):
    add_counters(engine, deltas={f"{tag}-expired_predictions": 3, f"{tag}-expired_actuals": 0})
    add_counters(engine, deltas={f"{tag}-expired_predictions": 4})
    add_counters(engine, deltas={})
    mine = {k: v for k, v in read_counters(engine).items() if k.startswith(f"{tag}-")}
    assert mine == {f"{tag}-expired_predictions": 7, f"{tag}-expired_actuals": 0}


def test_the_latest_ab_result_is_the_last_computed_with_json_safe_values(engine, tag):
    window = (T0, T0 + timedelta(days=7))
    later = datetime(2099, 1, 1, tzinfo=UTC) + timedelta(seconds=random.randrange(10**6))
    write_ab_result(
        engine,
        result={"tag": tag, "n": 10},
        verdict="inconclusive",
        computed_at=later - timedelta(hours=1),
        window_start=window[0],
        window_end=window[1],
    )
    result = {
        "tag": tag,
        "mae": {"ml": np.float64(6.25), "heuristic": 7.5},
        "n": np.int64(1200),
        "p_value": float("nan"),
        "ci": (np.float32(-1.5), float("inf")),
        "as_of": window[1],
    }
    new_id = write_ab_result(
        engine,
        result=result,
        verdict="ml_better",
        computed_at=later,
        window_start=window[0],
        window_end=window[1],
    )
    latest = latest_ab_result(engine)
    assert latest is not None
    assert (latest["id"], latest["verdict"], latest["computed_at"]) == (new_id, "ml_better", later)
    assert (latest["window_start"], latest["window_end"]) == window
    assert latest["result"] == {
        "tag": tag,
        "mae": {"ml": 6.25, "heuristic": 7.5},
        "n": 1200,
        "p_value": None,
        "ci": [-1.5, None],
        "as_of": window[1].isoformat(),
    }


def test_assignment_and_arrival_counts_cover_live_predictions_in_the_window(engine, tag):
    start = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(hours=random.randrange(10**5))
    in_window = [
        make_prediction(f"{tag}-ml-{i}", start + timedelta(minutes=i), arm="ml", percentage=40)
        for i in range(30)
    ] + [
        make_prediction(
            f"{tag}-h-{i}", start + timedelta(minutes=i), arm="heuristic", percentage=40
        )
        for i in range(50)
    ]
    disabled = [
        make_prediction(f"{tag}-off-{i}", start + timedelta(minutes=90), arm="heuristic")
        for i in range(20)
    ]
    disabled = [p.model_copy(update={"ml_enabled": False}) for p in disabled]
    outside = [make_prediction(f"{tag}-late", start + timedelta(hours=3), arm="ml")]
    replays = [make_prediction(f"{tag}-r-{i}", start, arm="ml", replay=True) for i in range(9)]
    arrived = [
        make_outcome(
            p.booking_id,
            observed_at=p.predicted_at + timedelta(hours=1),
            predicted=1,
            actual=2,
            arm=p.arm.value,
            model_version=f"{tag}-m",
        ).model_copy(update={"predicted_at": p.predicted_at})
        for p in in_window[:12] + in_window[30:35]
    ]
    # In the caller's transaction, rolled back: nothing is left for other tests to see.
    with engine.connect() as connection:
        connection.begin()
        written = write_predictions(
            connection, predictions=in_window + disabled + outside + replays
        )
        assert written == 110
        assert write_outcomes(connection, outcomes=arrived) == 17
        counts = assignment_counts(connection, since=start, until=start + timedelta(hours=2))
        arrivals = arrived_counts(connection, since=start, until=start + timedelta(hours=2))
        empty = assignment_counts(connection, since=start - timedelta(hours=2), until=start)
        connection.rollback()
    assert counts.by_arm == {"ml": 30, "heuristic": 70}
    assert counts.total == 100
    assert counts.expected_ml_share == pytest.approx((80 * 0.4 + 20 * 0.0) / 100, abs=1e-12)
    assert arrivals == {"ml": 12, "heuristic": 5}
    assert empty.by_arm == {"ml": 0, "heuristic": 0}
    assert empty.expected_ml_share is None
    with engine.connect() as connection:
        left = connection.execute(
            sa.select(sa.func.count()).where(predictions.c.booking_id.startswith(f"{tag}-"))
        ).scalar_one()
    assert left == 0


def test_a_booking_predicted_three_times_is_stored_and_counted_once(engine, tag):
    start = datetime(2033, 1, 1, tzinfo=UTC) + timedelta(hours=random.randrange(10**5))
    first = [
        make_prediction(f"{tag}-{i}", start + timedelta(minutes=i), arm=arm, percentage=40)
        for i, arm in enumerate(["ml"] * 40 + ["heuristic"] * 60)
    ]
    window = {"since": start, "until": start + timedelta(hours=3)}
    with engine.connect() as connection:
        connection.begin()
        assert write_predictions(connection, predictions=first) == 100
        before = assignment_counts(connection, **window)
        # Predicted again after a crash (seconds later) and after a group reset (an hour later,
        # the flags moved meanwhile): each a new predicted_at, in batches of their own and in
        # one batch with its first prediction.
        again = [
            p.model_copy(update={"predicted_at": p.predicted_at + later, "arm": Arm.ML})
            for p in first[35:50]
            for later in (timedelta(seconds=3), timedelta(hours=1))
        ]
        assert write_predictions(connection, predictions=again[::2]) == 0
        assert write_predictions(connection, predictions=again[1::2] + first[:5]) == 0
        after = assignment_counts(connection, **window)
        # Three predictions in one batch, the latest first: the earliest is kept.
        thrice = [
            make_prediction(f"{tag}-x", start + timedelta(minutes=m), arm=arm)
            for m, arm in ((9, "ml"), (8, "ml"), (7, "heuristic"))
        ]
        assert write_predictions(connection, predictions=thrice) == 1
        stored = connection.execute(
            sa.select(
                predictions.c.booking_id, predictions.c.predicted_at, predictions.c.arm
            ).where(predictions.c.booking_id.startswith(f"{tag}-"))
        ).all()
        connection.rollback()
    assert len(stored) == 101
    by_booking = {b: (at, arm) for b, at, arm in stored}
    assert by_booking[f"{tag}-40"] == (start + timedelta(minutes=40), "heuristic")
    assert by_booking[f"{tag}-x"] == (start + timedelta(minutes=7), "heuristic")
    assert before.by_arm == after.by_arm == {"ml": 40, "heuristic": 60}
    assert before.expected_ml_share == after.expected_ml_share == pytest.approx(0.4)
    srm = [
        sample_ratio_check("assigned", c.by_arm["ml"], c.by_arm["heuristic"], 0.4)
        for c in (before, after)
    ]
    assert srm[0] == srm[1] and srm[0].p_value == pytest.approx(1.0) and not srm[0].flagged


def test_upgrading_twice_changes_nothing(migrated_database):
    engine = make_engine(migrated_database)
    try:
        head = head_revision()
        assert current_revision(engine) == head
        assert upgrade(engine) == head
        with engine.connect() as connection:
            versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
            assert versions == [(head,)]
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        engine.dispose()


@pytest.fixture
def empty_database(migrated_database: str) -> Iterator[str]:
    """A new, empty database on the session's server, dropped afterwards."""
    name = f"migrations_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(libpq_url(migrated_database))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        url = sa.make_url(migrated_database).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        admin.close()
    engine = sa.create_engine(migrated_database)
    drop_database(engine, name)
    engine.dispose()


def test_an_empty_database_migrates_from_0001_to_head_and_back(empty_database):
    engine = make_engine(empty_database)
    try:
        assert current_revision(engine) is None
        assert upgrade(engine, "0001") == "0001"
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version", "flag_changes"}

        assert upgrade(engine) == head_revision()
        tables = set(sa.inspect(engine).get_table_names())
        assert tables == {"alembic_version", *metadata.tables}
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []

        # The history works on the migrated database.
        outcome = make_outcome(
            "x-1", observed_at=T0, predicted=3.0, actual=10.5, model_version="x-m"
        )
        assert write_outcomes(engine, outcomes=[outcome]) == 1

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version", "flag_changes"}
        assert upgrade(engine) == head_revision()
    finally:
        engine.dispose()


def insert_as_of_revision(connection: sa.Connection, name: str, rows: list[dict]) -> None:
    """Insert ``rows`` into the table as the database has it now (an earlier revision's
    columns): the columns added later are left out, as that revision's writer left them."""
    table = sa.Table(name, sa.MetaData(), autoload_with=connection)
    connection.execute(table.insert(), [{c.name: row[c.name] for c in table.c} for row in rows])


def test_the_migration_to_0006_sums_the_stored_outcomes_per_minute(empty_database, tag):
    engine = make_engine(empty_database)
    try:
        assert upgrade(engine, "0005") == "0005"
        rng = random.Random(6)
        rows = [
            make_outcome(
                f"{tag}-{i}",
                observed_at=T0 + timedelta(seconds=rng.uniform(0, 3 * 3600)),
                predicted=rng.uniform(0, 20),
                actual=rng.uniform(0, 40),
                arm=rng.choice(["ml", "heuristic"]),
                model_version=f"{tag}-m",
                replay=rng.random() < 0.2,
                p90=rng.choice([None, 15.0, 30.0]),
            ).model_dump()
            for i in range(400)
        ]
        with engine.begin() as connection:  # as 0005's writer stored them: no minute table yet
            insert_as_of_revision(connection, "outcomes", rows)
        assert upgrade(engine) == head_revision()
        stored = stored_outcomes(engine, tag)
        for replay in (False, True):
            expected = offline_buckets([r for r in stored if r["replay"] is replay], minutes=True)
            assert len(expected) > 50  # many minutes, some with several outcomes
            assert_buckets_equal(stored_minutes(engine, tag, replay=replay), expected)
    finally:
        engine.dispose()


def test_the_migration_to_0005_keeps_old_buckets_valid_and_counts_new_p90s_on_top(
    empty_database, tag
):
    engine = make_engine(empty_database)
    try:
        assert upgrade(engine, "0004") == "0004"
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO metric_buckets (hour_start, arm, model_version, replay, n, "
                    "sum_error, sum_abs_error, sum_sq_error, sum_actual, sum_actual_sq, "
                    "n_underestimated) VALUES (:hour, 'ml', :model, false, 3, -1.5, 4.5, 9.25, "
                    "30.0, 310.0, 1)"
                ),
                {"hour": T0, "model": f"{tag}-m"},
            )
        assert upgrade(engine) == head_revision()
        [old] = stored_buckets(engine, tag, replay=False).values()
        assert (old["n"], old["n_underestimated"], old["p90_n"], old["p90_covered"]) == (3, 1, 0, 0)

        at = T0 + timedelta(minutes=5)
        new = [
            make_outcome(
                f"{tag}-{i}",
                observed_at=at,
                predicted=5.0,
                actual=a,
                model_version=f"{tag}-m",
                p90=q,
            )
            for i, (a, q) in enumerate([(6.0, 8.0), (8.0, 8.0), (9.0, 8.0), (7.0, None)])
        ]
        assert write_outcomes(engine, outcomes=new) == 4
        [both] = stored_buckets(engine, tag, replay=False).values()
        assert (both["n"], both["p90_n"], both["p90_covered"]) == (7, 3, 2)
        assert both["sum_abs_error"] == 4.5 + 1 + 3 + 4 + 2
    finally:
        engine.dispose()


def test_the_migration_to_0003_keeps_each_bookings_first_live_prediction(empty_database, tag):
    engine = make_engine(empty_database)
    try:
        assert upgrade(engine, "0002") == "0002"
        rows = [
            make_prediction(f"{tag}-a", T0 + timedelta(minutes=m), arm=arm)
            for m, arm in ((5, "heuristic"), (1, "ml"), (9, "ml"))
        ]
        rows += [make_prediction(f"{tag}-b", T0 + timedelta(minutes=m)) for m in (3, 4)]
        rows += [make_prediction(f"{tag}-a", T0 + timedelta(days=m), replay=True) for m in (1, 2)]
        rows += [make_prediction(f"{tag}-c", T0)]
        stored = [p.model_dump() | {"weather_source": p.weather.source} for p in rows]
        with engine.begin() as connection:  # as 0002's writer stored them
            insert_as_of_revision(connection, "predictions", stored)
            count = sa.select(sa.func.count()).select_from(sa.table("predictions"))
            assert connection.execute(count).scalar() == 8  # no unique booking_id yet
        assert upgrade(engine) == head_revision()
        with engine.connect() as connection:
            kept = connection.execute(
                sa.select(
                    predictions.c.booking_id, predictions.c.predicted_at, predictions.c.replay
                ).order_by(predictions.c.booking_id, predictions.c.predicted_at)
            ).all()
        assert kept == [
            (f"{tag}-a", T0 + timedelta(minutes=1), False),
            (f"{tag}-a", T0 + timedelta(days=1), True),
            (f"{tag}-a", T0 + timedelta(days=2), True),
            (f"{tag}-b", T0 + timedelta(minutes=3), False),
            (f"{tag}-c", T0, False),
        ]
        again = make_prediction(f"{tag}-c", T0 + timedelta(hours=1))
        assert write_predictions(engine, predictions=[again]) == 0
    finally:
        engine.dispose()
