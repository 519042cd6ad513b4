"""Writing outcomes across a PostgreSQL outage: nothing lost, nothing counted twice.

The outage test runs a PostgreSQL of its own (a StackManager in its own home that starts only
PostgreSQL: Kafka and Redis are the session's, named as external), stops it for 30 s by the stack
API while a writer thread streams batches through ``write_until_done``, and starts it again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.postgres import make_engine, upgrade, write_outcomes, write_until_done
from schemas import Outcome
from streams.tools.stack import Endpoints, External, Ports, StackManager
from streams.tools.stack.ports import pick_stable_port
from tests.integration.test_history import (
    assert_buckets_equal,
    offline_buckets,
    random_outcomes,
    stored_buckets,
    stored_outcomes,
)

OUTAGE_S = 30.0
# The server trusts loopback and ignores it; the test checks that no log line shows it.
PASSWORD = "never-log-this-7d1f"
LOGGER = "delaycast.test.outage"


@dataclass
class OwnPostgres:
    manager: StackManager
    url: str  # with PASSWORD


def _free_port() -> int:
    # Below the ephemeral range, so that nothing else takes the port while the server is down.
    return pick_stable_port(uuid.uuid4().int)


@pytest.fixture
def own_postgres(stack: Endpoints, session_dir: Path) -> Iterator[OwnPostgres]:
    home = session_dir / f"outage-{uuid.uuid4().hex[:8]}"
    manager = StackManager(
        home,
        ports=Ports(postgres=_free_port()),
        external=External(
            kafka_bootstrap_servers=stack.kafka_bootstrap_servers, redis_url=stack.redis_url
        ),
    )
    try:
        result = manager.up()
        assert result.started == ("postgres",)
        url = sa.make_url(result.endpoints.database_url).set(password=PASSWORD)
        yield OwnPostgres(manager, url.render_as_string(hide_password=False))
    finally:
        manager.down()


def test_outcomes_written_across_a_30_second_outage_are_stored_exactly_once(
    own_postgres: OwnPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    log = logging.getLogger(LOGGER)
    manager = own_postgres.manager
    engine = make_engine(own_postgres.url, connect_timeout_s=2)
    upgrade(engine)
    tag = f"o{uuid.uuid4().hex[:10]}"
    everything = random_outcomes(tag, 6000, seed=11, days=2)
    batches = [everything[i : i + 150] for i in range(0, len(everything), 150)]
    # Kafka redelivers some batches (after a rebalance, or a sink restarted before its commit).
    batches[5:5] = [batches[3]]
    batches.insert(30, batches[25] + batches[26][:40])

    written: list[int] = []
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            for i, batch in enumerate(batches):

                def write(batch: list[Outcome] = batch) -> int:
                    return write_outcomes(engine, outcomes=batch)

                new = write_until_done(
                    write,
                    what=f"outcomes batch {i} ({len(batch)})",
                    max_backoff_s=2.0,
                    log=log,
                )
                written.append(new)
                time.sleep(0.15)
        except BaseException as error:  # reported by the main thread
            failure.append(error)

    thread = threading.Thread(target=writer, name="outcome-sink", daemon=True)
    try:
        thread.start()
        while len(written) < 10 and thread.is_alive():
            time.sleep(0.05)
        assert manager.down(only=["postgres"]) == ["postgres"]
        stopped_at = len(written)
        time.sleep(OUTAGE_S)
        # The writer waited: nothing was acknowledged while the server was down.
        assert len(written) <= stopped_at + 1  # a batch may have committed as the stop began
        assert thread.is_alive() and not failure

        again = manager.up()
        assert again.started == ("postgres",)
        assert sa.make_url(again.endpoints.database_url).port == sa.make_url(own_postgres.url).port
        thread.join(timeout=120)
        assert not thread.is_alive(), "the writer did not finish after PostgreSQL came back"
        assert not failure, failure

        assert len(written) == len(batches)
        assert sum(written) == len(everything)
        rows = stored_outcomes(engine, tag)
        assert sorted(r["booking_id"] for r in rows) == sorted(o.booking_id for o in everything)
        stored = stored_buckets(engine, tag, replay=False)
        assert_buckets_equal(stored, offline_buckets(rows))
        assert_buckets_equal(stored, offline_buckets(everything))
    finally:
        engine.dispose()

    waits = [r.getMessage() for r in caplog.records if "waits for PostgreSQL" in r.getMessage()]
    assert waits, "the writer never said it was waiting"
    recovered = [
        r.getMessage() for r in caplog.records if "written after waiting" in r.getMessage()
    ]
    assert len(recovered) == 1 and "since 20" in recovered[0]
    assert PASSWORD not in caplog.text


def test_an_error_that_is_not_about_the_connection_is_raised_at_once(
    migrated_database: str,
) -> None:
    engine = make_engine(migrated_database)
    sleeps: list[float] = []

    def divide_by_zero() -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1/0")

    try:
        with pytest.raises(sa.exc.DataError, match="division by zero"):
            write_until_done(divide_by_zero, what="a bug", sleep=sleeps.append)
    finally:
        engine.dispose()
    assert sleeps == []


def test_a_cancelled_wait_gives_up_with_the_connection_error_and_never_logs_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    port = _free_port()  # nothing listens there
    engine = make_engine(f"postgresql+psycopg2://delaycast:{PASSWORD}@127.0.0.1:{port}/delaycast")
    cancel = threading.Event()
    sleeps: list[float] = []
    ticks = iter(range(100))

    def clock() -> datetime:
        return datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=12 * next(ticks))

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 6:
            cancel.set()

    def connect() -> None:
        with engine.connect():
            pass

    try:
        with pytest.raises(sa.exc.OperationalError):
            write_until_done(
                connect,
                what="probe",
                sleep=sleep,
                max_backoff_s=1.0,
                log=logging.getLogger(LOGGER),
                clock=clock,
                cancel=cancel,
            )
    finally:
        engine.dispose()
    assert sleeps == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    first = (
        "probe waits for PostgreSQL since 2026-03-01T00:00:00+00:00 and retries: OperationalError"
    )
    assert first in caplog.text
    assert f"port {port}" in caplog.text
    # A reminder every 30 s of (here, fake) waiting, saying since when.
    reminder = (
        "probe still waiting for PostgreSQL since 2026-03-01T00:00:00+00:00 (36 s, 4 attempts"
    )
    assert reminder in caplog.text
    assert "probe given up after 7 attempts" in caplog.text
    assert PASSWORD not in caplog.text
