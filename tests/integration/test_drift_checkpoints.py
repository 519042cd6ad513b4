"""Drift checkpoints in the real PostgreSQL: stored as JSON, restored exactly, and an old pickle
left in monitor_checkpoints ignored unread (the monitor starts afresh, with a warning)."""

from __future__ import annotations

import logging
import pickle
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import sqlalchemy as sa

from connectors.postgres import history, make_engine
from streams.outcomes.drift import DriftWatch, restore_all, save_all

T0 = datetime(2026, 3, 12, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine(migrated_database: str) -> Iterator[sa.Engine]:
    engine = make_engine(migrated_database)
    yield engine
    engine.dispose()


class _Sentinel:
    ran: ClassVar[list[str]] = []

    def __reduce__(self):
        return (_Sentinel.ran.append, ("unpickled",))


def _feed(watch: DriftWatch, rng: np.random.Generator, start: int, n: int) -> list[str]:
    arms = np.where(rng.random(n) < 0.5, "ml", "heuristic").tolist()
    errors = np.abs(rng.standard_t(4, n) * 1.5) + (np.arange(start, start + n) >= 3000) * 5.0
    at = [T0 + timedelta(seconds=(start + i) / 10) for i in range(n)]
    return [
        f"{s.subject}@{s.event_time.isoformat()}" for s in watch.errors.update(arms, errors, at)
    ]


def test_a_checkpoint_stored_in_postgres_restores_a_monitor_that_continues_exactly(
    engine, tmp_path: Path
):
    prefix = f"t{uuid.uuid4().hex[:12]}:drift:"

    def load(name: str) -> bytes | None:
        return history.load_checkpoint(engine, name=name)

    def save(name: str, state: bytes) -> None:
        history.save_checkpoint(engine, name=name, state=state)

    whole = DriftWatch(tmp_path / "no-model")
    expected = _feed(whole, np.random.default_rng(1), 0, 2500)
    expected += _feed(whole, np.random.default_rng(2), 2500, 2500)

    first = DriftWatch(tmp_path / "no-model")
    got = _feed(first, np.random.default_rng(1), 0, 2500)
    save_all(first, save, prefix)
    stored = load(f"{prefix}errors")
    assert stored is not None and stored.startswith(b'{"format":2')
    second = DriftWatch(tmp_path / "no-model")
    assert restore_all(second, load, prefix) == 2  # errors and predictions
    got += _feed(second, np.random.default_rng(2), 2500, 2500)

    assert got == expected and len(expected) == 2
    assert second.errors.get() == whole.errors.get()
    assert second.errors.get()["ml"]["outcomes"] + second.errors.get()["heuristic"]["outcomes"] == (
        5000
    )


def test_an_old_pickle_checkpoint_is_ignored_unread_and_the_monitor_starts_afresh(
    engine, tmp_path: Path, caplog
):
    prefix = f"t{uuid.uuid4().hex[:12]}:drift:"
    forged = pickle.dumps({"format": 1, "data": _Sentinel()}, protocol=pickle.HIGHEST_PROTOCOL)
    history.save_checkpoint(engine, name=f"{prefix}errors", state=forged)
    watch = DriftWatch(tmp_path / "no-model")
    with caplog.at_level(logging.WARNING, logger="delaycast.drift"):
        restored = restore_all(
            watch, lambda name: history.load_checkpoint(engine, name=name), prefix
        )
    assert restored == 0 and _Sentinel.ran == [] and watch.errors.get() == {}
    assert "drift monitor errors starts afresh: an old pickled state" in caplog.text
