"""Joining predictions and actuals: either order, duplicates counted once, expiry by event time."""

import random
from datetime import timedelta

from schemas import ActualDelay, Arm, Prediction, RiskLevel
from streams.outcomes.join import DONE, JoinBatch, expired_keys, side_of
from tests.factories import T0, WEATHER


def prediction(booking_id, delay=6.0, arm=Arm.ML, at=T0, replay=False, p90=None):
    return Prediction(
        booking_id=booking_id,
        predicted_delay_minutes=delay,
        delay_p90_minutes=p90,
        confidence=0.7,
        risk_level=RiskLevel.MEDIUM,
        arm=arm,
        served_by=arm,
        bucket=12.5,
        model_version="rf-x" if arm is Arm.ML else "heuristic-y",
        ml_enabled=True,
        ml_traffic_percentage=50,
        flag_source="redis",
        features={},
        weather=WEATHER,
        scheduled_pickup_at=at + timedelta(hours=1),
        booking_created_at=at,
        predicted_at=at,
        processing_ms=1.0,
        replay=replay,
    )


def actual(booking_id, delay=8.5, at=T0 + timedelta(hours=1, minutes=8)):
    return ActualDelay(booking_id=booking_id, actual_delay_minutes=delay, observed_at=at)


WALL = T0.timestamp() + 86400.0  # the wall-clock time of the joins, a day after T0


def run(table, events, now=WALL):
    batch = JoinBatch(table, now=now)
    for e in events:
        (batch.add_prediction if isinstance(e, Prediction) else batch.add_actual)(e)
    batch.apply(table)
    return batch


def test_a_prediction_then_its_actual_make_one_outcome_with_the_error():
    table = {}
    first = run(table, [prediction("B1", delay=6.0)])
    assert first.outcomes == []
    second = run(table, [actual("B1", delay=8.5)])
    [outcome] = second.outcomes
    assert (outcome.booking_id, outcome.error, outcome.abs_error) == ("B1", -2.5, 2.5)
    assert outcome.underestimated is False
    assert outcome.observed_at == T0 + timedelta(hours=1, minutes=8)
    assert outcome.arm is Arm.ML and outcome.model_version == "rf-x"
    assert side_of(table[b"B1"]) == DONE


def test_an_actual_arriving_first_waits_for_its_prediction():
    table = {}
    run(table, [actual("B2", delay=20.0)])
    [outcome] = run(table, [prediction("B2", delay=4.0, arm=Arm.HEURISTIC)]).outcomes
    assert outcome.error == -16.0 and outcome.underestimated is True


def test_the_outcome_carries_the_predictions_p90_and_whether_the_actual_stayed_within_it():
    table = {}
    run(table, [prediction("P1", delay=6.0, p90=8.5), prediction("P2", delay=6.0, p90=8.25)])
    run(table, [prediction("P3", delay=6.0)])
    outcomes = run(table, [actual("P1", delay=8.5), actual("P2"), actual("P3")]).outcomes
    assert [(o.predicted_p90_minutes, o.within_p90) for o in outcomes] == [
        (8.5, True),  # an actual equal to its P90 is within it
        (8.25, False),
        (None, None),  # no P90: neither within nor outside
    ]


def test_a_prediction_pending_since_before_p90s_existed_joins_without_one():
    table = {}
    run(table, [prediction("P4", p90=30.0)])
    del table[b"P4"]["p90"]  # an entry written by the version before P90s
    [outcome] = run(table, [actual("P4")]).outcomes
    assert outcome.predicted_p90_minutes is None and outcome.within_p90 is None
    assert outcome.error == -2.5


def test_duplicates_on_either_side_are_counted_once():
    table = {}
    batch = run(
        table,
        [prediction("B3"), prediction("B3", delay=9), actual("B3"), actual("B3"), prediction("B3")],
    )
    assert len(batch.outcomes) == 1
    assert batch.outcomes[0].predicted_delay_minutes == 6.0  # the first prediction wins
    assert batch.counters["duplicate_predictions"] == 2
    assert batch.counters["duplicate_actuals"] == 1


def test_changes_are_staged_until_applied():
    table = {}
    batch = JoinBatch(table, now=WALL)
    batch.add_prediction(prediction("B4"))
    batch.add_actual(actual("B4"))
    assert table == {} and len(batch.outcomes) == 1
    # Recomputing the same batch after a crash gives the same outcome again.
    again = JoinBatch(table, now=WALL)
    again.add_prediction(prediction("B4"))
    again.add_actual(actual("B4"))
    assert again.outcomes == batch.outcomes


def test_replayed_predictions_never_join_live_outcomes():
    table = {}
    batch = run(table, [prediction("B5", replay=True), actual("B5")])
    assert batch.outcomes == [] and batch.counters["replayed_predictions_skipped"] == 1


def test_mixed_order_with_duplicates_gives_exactly_one_outcome_per_booking():
    rng = random.Random(3)
    events = []
    for i in range(500):
        events += [prediction(f"M{i}")] * rng.choice([1, 1, 2]) + [actual(f"M{i}")] * rng.choice(
            [1, 2]
        )
    rng.shuffle(events)
    table = {}
    outcomes = []
    for start in range(0, len(events), 37):
        outcomes += run(table, events[start : start + 37]).outcomes
    assert sorted(o.booking_id for o in outcomes) == sorted(f"M{i}" for i in range(500))


def test_entries_older_than_the_horizon_expire_by_event_time():
    table = {}
    run(table, [prediction("OLD", at=T0), actual("LONELY", at=T0 + timedelta(hours=2))])
    batch = run(
        table,
        [prediction("NEW", at=T0 + timedelta(days=8)), actual("X", at=T0 + timedelta(days=8))],
    )
    now = batch.newest_event_time
    keys, counts = expired_keys(
        table.items(), stream_time=now, horizon_s=7 * 86400, now=WALL, done_retention_s=300
    )
    assert sorted(keys) == [b"LONELY", b"OLD"]  # NEW and X are fresh
    assert counts == {"expired_predictions": 1, "expired_actuals": 1}


def test_a_fresh_prediction_does_not_expire_because_an_actual_is_far_ahead():
    table = {}
    # Predicted now for a pickup in 6 days; another booking's actual observed 7.5 days ahead.
    run(table, [prediction("SOON", at=T0 + timedelta(days=6) - timedelta(hours=1))])
    far = run(table, [actual("FAR", at=T0 + timedelta(days=7, hours=12))])
    keys, _ = expired_keys(
        table.items(),
        stream_time=far.newest_event_time,
        horizon_s=7 * 86400,
        now=WALL,
        done_retention_s=300,
    )
    assert keys == []


def test_a_booking_made_weeks_ahead_does_not_move_the_stream_time():
    batch = run({}, [prediction("LATER", at=T0 + timedelta(days=20))])
    assert batch.newest_event_time == float("-inf")


def test_the_sweep_removes_expired_entries_in_chunks_draining_between_them():
    import asyncio
    from datetime import UTC, datetime

    from streams.outcomes.join_handler import JoinHandler

    horizon_s = 86400.0
    stream_time = T0.timestamp()
    table = {
        f"old-{i}".encode(): {"side": DONE, "t": stream_time - 2 * horizon_s} for i in range(450)
    }
    table |= {f"new-{i}".encode(): {"side": DONE, "t": stream_time - 60} for i in range(30)}
    sizes_when_drained: list[int] = []

    async def ebb() -> None:
        sizes_when_drained.append(len(table))

    handler = JoinHandler(
        table=table,
        producer=None,  # type: ignore[arg-type]  # the sweep sends nothing but table writes
        predictions_topic="p",
        outcomes_topic="o",
        dead_letters_topic="d",
        routed_topic="r",
        partitions=4,
        horizon_s=horizon_s,
        clock=lambda: datetime.now(UTC),
        ebb=ebb,
        chunk=200,
    )
    assert asyncio.run(handler.sweep()) == {}  # no actual seen yet: the stream has no time
    handler.stream_time = stream_time
    counts = asyncio.run(handler.sweep())
    assert counts == {"expired_dones": 450}
    assert sizes_when_drained == [280, 80, 30]  # 200, 200, then 50 removed before each drain
    assert sorted(table) == sorted(f"new-{i}".encode() for i in range(30))
    assert handler.counters["expired_dones"] == 450


def test_done_markers_expire_by_wall_clock_while_pending_entries_wait_the_horizon():
    table: dict[bytes, object] = {}
    run(table, [prediction("JOINED", at=T0), actual("JOINED", at=T0)], now=WALL)
    run(table, [prediction("WAITING", at=T0)], now=WALL)
    assert table[b"JOINED"] == WALL and side_of(table[b"JOINED"]) == DONE
    # However far the event time runs (a backfill), the marker lives its retention of wall time.
    for stream_time in (T0.timestamp(), WALL + 30 * 86400):
        keys, _ = expired_keys(
            table.items(),
            stream_time=stream_time,
            horizon_s=7 * 86400,
            now=WALL + 299,
            done_retention_s=300,
        )
        assert b"JOINED" not in keys
    keys, counts = expired_keys(
        table.items(),
        stream_time=T0.timestamp(),
        horizon_s=7 * 86400,
        now=WALL + 301,
        done_retention_s=300,
    )
    assert keys == [b"JOINED"] and counts == {"expired_dones": 1}
    # The pending prediction waits the horizon, in event time.
    keys, counts = expired_keys(
        table.items(),
        stream_time=T0.timestamp() + 8 * 86400,
        horizon_s=7 * 86400,
        now=WALL,
        done_retention_s=300,
    )
    assert keys == [b"WAITING"] and counts == {"expired_predictions": 1}


def test_a_duplicate_after_the_done_marker_expired_waits_as_pending_and_makes_no_outcome():
    table: dict[bytes, object] = {}
    run(table, [prediction("B1", at=T0), actual("B1", at=T0)])
    keys, _ = expired_keys(
        table.items(),
        stream_time=T0.timestamp(),
        horizon_s=7 * 86400,
        now=WALL + 3600,
        done_retention_s=300,
    )
    assert keys == [b"B1"]
    for key in keys:
        del table[key]
    again = run(table, [actual("B1", at=T0)], now=WALL + 3600)
    assert again.outcomes == [] and again.counters["pending_actuals"] == 1


def test_a_done_marker_is_its_time_alone_and_an_earlier_versions_dict_marker_still_counts():
    table: dict[bytes, object] = {b"OLD": {"side": DONE, "t": T0.timestamp()}}
    batch = run(table, [prediction("NEW"), actual("NEW"), actual("OLD"), prediction("OLD")])
    assert [o.booking_id for o in batch.outcomes] == ["NEW"]
    assert table[b"NEW"] == WALL and side_of(table[b"NEW"]) == DONE
    assert batch.counters["duplicate_actuals"] == 1 and batch.counters["duplicate_predictions"] == 1
    # The earlier version's marker expires with the horizon, in event time, as it did then:
    # kept an hour after its retention would have passed, gone once the horizon has.
    keys, _ = expired_keys(
        table.items(),
        stream_time=T0.timestamp() + 6 * 86400,
        horizon_s=7 * 86400,
        now=WALL + 3600,
        done_retention_s=300,
    )
    assert keys == [b"NEW"]  # the new marker went with its retention; OLD stays
    keys, _ = expired_keys(
        table.items(),
        stream_time=T0.timestamp() + 8 * 86400,
        horizon_s=7 * 86400,
        now=WALL,
        done_retention_s=300,
    )
    assert keys == [b"OLD"]


def test_the_shadow_challenger_is_joined_with_the_actual_like_the_served_prediction():
    table = {}
    shadowed = prediction("S1", delay=6.0).model_copy(
        update={"shadow_model_version": "gb-c", "shadow_delay_minutes": 9.0}
    )
    run(table, [shadowed, prediction("S2", delay=6.0)])
    assert "shadow" not in table[b"S2"]  # no challenger: the entry is as small as before
    first, second = run(table, [actual("S1", delay=8.5), actual("S2", delay=8.5)]).outcomes
    assert (first.abs_error, first.shadow_model_version) == (2.5, "gb-c")
    assert (first.shadow_predicted_delay_minutes, first.shadow_abs_error) == (9.0, 0.5)
    assert (second.shadow_model_version, second.shadow_abs_error) == (None, None)
    # An actual that came first finds the shadow in the prediction's entry the same way.
    run(table, [actual("S3", delay=1.0)])
    shadow_late = prediction("S3").model_copy(
        update={"shadow_model_version": "gb-c", "shadow_delay_minutes": 4.0}
    )
    [third] = run(table, [shadow_late]).outcomes
    assert third.shadow_abs_error == 3.0
