"""The recorder against real Kafka and PostgreSQL: rows it cannot store are quarantined with
their reason, their batch neighbours are stored, and it keeps running."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.postgres import make_engine, read_quarantine
from schemas.tables import outcomes, predictions
from streams.outcomes.recorder import Recorder
from streams.outcomes.recorder_wiring import build_recorder, run_recorder
from streams.settings import load_settings
from tests import factories
from tests.integration.workers import produce


@pytest.fixture
def engine(migrated_database: str) -> Iterator[sa.Engine]:
    engine = make_engine(migrated_database)
    yield engine
    engine.dispose()


class Running:
    """A recorder built from settings as the worker builds it, run in a thread."""

    def __init__(self, recorder: Recorder, engine: sa.Engine) -> None:
        self.recorder = recorder
        self.thread = threading.Thread(target=run_recorder, args=(recorder, engine), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        started = time.monotonic()
        self.recorder.stop()
        self.thread.join(30)
        self.stop_s = time.monotonic() - started
        assert not self.thread.is_alive()


def recorder_for(
    stack, topic_prefix: str, database: str, tmp_path: Path, engine, **more
) -> Running:
    settings = load_settings(
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_url=database,
        topic_prefix=topic_prefix,
        model_dir=tmp_path / "models",
        **more,
    )
    return Running(build_recorder(settings, engine), engine)


def wait_for(check, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def stored_ids(engine: sa.Engine, table: sa.Table, prefix: str) -> list[str]:
    with engine.connect() as c:
        rows = c.execute(sa.select(table.c.booking_id).where(table.c.booking_id.startswith(prefix)))
        return sorted(r[0] for r in rows)


def test_unstorable_rows_are_quarantined_and_their_neighbours_stored(
    stack, topic_prefix, migrated_database, tmp_path, engine
):
    tag = f"Q{uuid.uuid4().hex[:8]}-"
    valid = factories.prediction(f"{tag}ok-1").model_dump_json()
    forged = factories.prediction(f"{tag}huge").model_dump_json()
    forged = forged.replace('"predicted_delay_minutes":5.0', '"predicted_delay_minutes":1e200')
    assert '"predicted_delay_minutes":1e200' in forged
    # A NUL in a text column the contract leaves free (booking ids may not have one):
    # PostgreSQL itself refuses it as data (untranslatable character).
    nul = factories.prediction(f"{tag}nul", model_version="rf-\x00").model_dump_json()
    neighbour = factories.prediction(f"{tag}ok-2").model_dump_json()
    later_outcome = factories.outcome(f"{tag}o-1", 2.5).model_dump_json()
    huge_outcome = factories.outcome(f"{tag}o-2", 2.5).model_dump_json()
    huge_outcome = huge_outcome.replace('"abs_error":2.5', '"abs_error":1e200')
    assert '"abs_error":1e200' in huge_outcome

    p_topic, o_topic = f"{topic_prefix}predictions", f"{topic_prefix}outcomes"
    with recorder_for(stack, topic_prefix, migrated_database, tmp_path, engine) as running:
        produce(
            stack,
            p_topic,
            [
                (b"k", valid.encode()),
                (b"k", forged.encode()),
                (b"k", nul.encode()),
                (b"k", b'{"booking_id": "' + tag.encode() + b'garbage"'),
                (b"k", neighbour.encode()),
            ],
        )
        produce(stack, o_topic, [(b"k", later_outcome.encode()), (b"k", huge_outcome.encode())])
        quarantined = wait_for(
            lambda: (
                len(read_quarantine(engine, source_topic=p_topic)) == 3
                and read_quarantine(engine, source_topic=o_topic)
            )
        )
        assert quarantined
        stored = wait_for(lambda: len(stored_ids(engine, predictions, tag)) == 2)
        assert stored
        assert stored_ids(engine, predictions, tag) == [f"{tag}ok-1", f"{tag}ok-2"]
        assert wait_for(lambda: stored_ids(engine, outcomes, tag) == [f"{tag}o-1"])
        # Still running: a valid prediction produced afterwards is stored too.
        produce(
            stack, p_topic, [(b"k", factories.prediction(f"{tag}ok-3").model_dump_json().encode())]
        )
        assert wait_for(lambda: len(stored_ids(engine, predictions, tag)) == 3)
        assert running.thread.is_alive()
        totals = dict(running.recorder.totals)

    by_offset = {q["source_offset"]: q for q in read_quarantine(engine, source_topic=p_topic)}
    assert sorted(by_offset) == [1, 2, 3]
    # The event contract bounds delays (schemas/_types.py): the forgery never parses.
    assert by_offset[1]["reason"] == (
        "invalid: predicted_delay_minutes: Input should be less than or equal to 10080"
    )
    assert by_offset[1]["payload"] == forged.encode()
    assert by_offset[2]["booking_id"] == f"{tag}nul"
    assert by_offset[2]["reason"].startswith("refused by PostgreSQL: ")
    assert by_offset[3]["booking_id"] is None and by_offset[3]["reason"].startswith("invalid: ")
    [q] = read_quarantine(engine, source_topic=o_topic)
    assert q["reason"] == "invalid: abs_error: Input should be less than or equal to 20160"
    assert totals["quarantined"] == 4 and totals["predictions"] == 3 and totals["outcomes"] == 1
    assert running.stop_s < 20
