"""The outcome path on the real stack: actual delays joined with predictions into outcomes."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.synthetic import SyntheticWorld
from schemas import BookingRequested
from tests.integration.test_prediction_path import set_flags, start_worker
from tests.integration.workers import collect, collect_until_quiet, produce


@pytest.fixture
def home(tmp_path: Path, trained_model_dir: Path) -> Path:
    shutil.copytree(trained_model_dir, tmp_path / "models")
    return tmp_path


def world_events(
    n: int, prefix: str, seed: int = 2
) -> tuple[list[BookingRequested], list[tuple[bytes, bytes]]]:
    """n bookings and their actual delays, from the synthetic world's ground truth."""
    world = SyntheticWorld(seed)
    rng = random.Random(seed)
    now = datetime.now(UTC)
    bookings, actuals = [], []
    for i in range(n):
        booking = world.booking(now, rng).model_copy(update={"booking_id": f"{prefix}{i:05d}"})
        weather = world.weather(booking.pickup_lat, booking.pickup_lon, booking.scheduled_pickup_at)
        actual = world.actual(booking, weather, rng)
        bookings.append(booking)
        actuals.append((booking.booking_id.encode(), actual.model_dump_json().encode()))
    return bookings, actuals


def test_mixed_order_and_duplicates_give_exactly_one_outcome_per_booking(stack, topic_prefix, home):
    n = 1500
    bookings, actuals = world_events(n, "J-")
    booking_records = [(b.booking_id.encode(), b.model_dump_json().encode()) for b in bookings]
    rng = random.Random(5)
    early = actuals[: n // 3]  # these actuals arrive before their bookings are even published
    late = actuals[n // 3 :]
    duplicated_actuals = rng.sample(actuals, 200)
    duplicated_bookings = rng.sample(booking_records, 150)  # predicted twice
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    with start_worker(stack, topic_prefix, home):
        produce(stack, f"{topic_prefix}actual-delays", early)
        produce(stack, f"{topic_prefix}bookings", booking_records)
        collect(stack, f"{topic_prefix}predictions", n, timeout_s=90)
        late_and_dupes = late + duplicated_actuals
        rng.shuffle(late_and_dupes)
        produce(stack, f"{topic_prefix}actual-delays", late_and_dupes)
        produce(stack, f"{topic_prefix}bookings", duplicated_bookings)
        collect(stack, f"{topic_prefix}outcomes", n, timeout_s=90)
        outcomes = collect_until_quiet(stack, f"{topic_prefix}outcomes", quiet_s=3)
        predictions = collect_until_quiet(stack, f"{topic_prefix}predictions", quiet_s=1)

    assert len(outcomes) == n
    assert sorted(o["booking_id"] for o in outcomes) == sorted(b.booking_id for b in bookings)
    first_prediction: dict[str, dict] = {}
    for p in predictions:
        first_prediction.setdefault(p["booking_id"], p)
    truth = {key.decode(): json.loads(value)["actual_delay_minutes"] for key, value in actuals}
    for o in outcomes:
        p = first_prediction[o["booking_id"]]
        assert o["arm"] == p["arm"] and o["model_version"] == p["model_version"]
        assert o["predicted_delay_minutes"] == p["predicted_delay_minutes"]
        expected_actual = truth[o["booking_id"]]
        assert o["actual_delay_minutes"] == expected_actual
        assert o["error"] == pytest.approx(o["predicted_delay_minutes"] - expected_actual)
