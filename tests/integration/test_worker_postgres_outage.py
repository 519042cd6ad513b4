"""PostgreSQL down for 30 s under a running worker: predictions keep flowing, no row is lost."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import sqlalchemy as sa

from connectors.postgres import make_engine, upgrade
from schemas.tables import predictions as predictions_table
from tests.integration.test_outcome_path import (
    assert_buckets_equal_offline,
    wait_for_stored,
    world_events,
)
from tests.integration.test_postgres_outage import OwnPostgres, own_postgres  # noqa: F401
from tests.integration.test_prediction_path import set_flags, start_worker
from tests.integration.workers import collect, produce

OUTAGE_S = 30


def stored_predictions(url: str, prefix: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            query = sa.select(sa.func.count(sa.distinct(predictions_table.c.booking_id)))
            return int(
                c.execute(
                    query.where(predictions_table.c.booking_id.like(f"{prefix}%"))
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_postgres_down_30_s_loses_no_row_and_never_stops_predictions(
    stack,
    topic_prefix,
    tmp_path: Path,
    trained_model_dir: Path,
    own_postgres: OwnPostgres,  # noqa: F811
):
    url = own_postgres.url
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    shutil.copytree(trained_model_dir, tmp_path / "models")
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    before_b, before_a = world_events(800, "PO-A", seed=31)
    during_b, during_a = world_events(800, "PO-B", seed=32)

    def as_records(bookings):
        return [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings]

    # The recorder waits out the outage inside one batch: past its poll interval, Kafka takes
    # its partitions away, and it must rejoin and go on, not crash on its commit.
    env = {"DATABASE_URL": url, "RECORDER_MAX_POLL_INTERVAL_S": "12"}
    with start_worker(stack, topic_prefix, tmp_path, **env) as worker:
        produce(stack, f"{topic_prefix}bookings", as_records(before_b))
        produce(stack, f"{topic_prefix}actual-delays", before_a)
        assert wait_for_stored(url, "PO-A", 100) >= 100
        assert own_postgres.manager.down(only=["postgres"]) == ["postgres"]
        down_at = time.monotonic()
        produce(stack, f"{topic_prefix}bookings", as_records(during_b))
        produce(stack, f"{topic_prefix}actual-delays", during_a)
        # The prediction path does not wait for PostgreSQL.
        predicted = collect(stack, f"{topic_prefix}predictions", 1600, timeout_s=OUTAGE_S - 5)
        predicted_in_s = time.monotonic() - down_at
        assert len(predicted) == 1600
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert own_postgres.manager.up().started == ("postgres",)
        assert wait_for_stored(url, "PO-A", 800, timeout_s=120) == 800
        assert wait_for_stored(url, "PO-B", 800, timeout_s=120) == 800
        log = worker.log()
    assert stored_predictions(url, "PO-") == 1600
    assert_buckets_equal_offline(url)
    assert "never-log-this" not in log
    assert "history recorder process ended" not in log  # it rode the outage out, no restart
    assert "recorder commit refused" in log  # past its poll interval: Kafka took its partitions
    print(f"1,600 predictions written {predicted_in_s:.1f} s into a {OUTAGE_S} s PostgreSQL outage")
