"""The synthetic world lives in the present: on any clock (a weekend, a month's end, the nights
the clocks change in Geneva) its events respect the input's event-time bounds with no allowed
skew, and the producer publishes nothing before it happened."""

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from models.features import FEATURE_INDEX, LOCAL_TZ, feature_matrix
from models.synthetic import SyntheticWorld
from models.synthetic.bookings import pickups_between
from schemas import ActualDelay, BookingRequested
from streams.operate.cli.produce_plan import Planned, Schedule, synthetic_plans

CLOCKS = {
    "saturday morning": datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
    "sunday night": datetime(2026, 12, 6, 2, 10, tzinfo=UTC),
    "month's end": datetime(2026, 11, 30, 23, 30, tzinfo=UTC),  # 1 December, 00:30 in Geneva
    "year's end": datetime(2026, 12, 31, 23, 55, 31, tzinfo=UTC),
    "spring DST change": datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # 03:30 CEST, an hour short
    "autumn DST change": datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 CET, the second time
}
MAX_AGE = timedelta(days=30)
MAX_AHEAD = timedelta(days=400)
GRID_S = 300


def assert_booking_bounds(booking: BookingRequested, kafka_at: datetime) -> None:
    """The bounds the input enforces on a booking published at ``kafka_at``, with no skew."""
    assert kafka_at - MAX_AGE <= booking.created_at <= kafka_at, booking
    assert kafka_at - MAX_AGE <= booking.scheduled_pickup_at <= kafka_at + MAX_AHEAD, booking


def assert_actual_bounds(actual: ActualDelay, kafka_at: datetime, wall: datetime) -> None:
    assert actual.observed_at <= min(kafka_at, wall), actual


@pytest.mark.parametrize("now", CLOCKS.values(), ids=CLOCKS.keys())
def test_past_events_are_all_observed_by_now_whatever_the_clock(now):
    events = SyntheticWorld(42).past(now, 600, np.random.default_rng(3))
    assert len(events) == 600
    assert len({e.booking.booking_id for e in events}) == 600
    pickups = [e.booking.scheduled_pickup_at for e in events]
    assert pickups == sorted(pickups)
    latest = now - timedelta(hours=3)
    assert latest - timedelta(hours=24) <= pickups[0] and pickups[-1] < latest
    assert all(int(p.timestamp()) % GRID_S == 0 for p in pickups)
    for e in events:
        assert e.actual.booking_id == e.booking.booking_id
        assert e.actual.observed_at == e.booking.scheduled_pickup_at + timedelta(
            minutes=e.actual.actual_delay_minutes
        )
        assert e.booking.scheduled_pickup_at - e.booking.created_at >= timedelta(minutes=10)
        assert_booking_bounds(e.booking, now)
        assert_actual_bounds(e.actual, now, now)


def test_past_events_are_reproducible_and_named_as_asked():
    world, now = SyntheticWorld(42), CLOCKS["month's end"]
    ids = [f"T-{i}" for i in range(50)]
    first = world.past(now, 50, random.Random(8), ids=ids, source="bench")
    assert first == world.past(now, 50, random.Random(8), ids=ids, source="bench")
    assert [e.booking.booking_id for e in first] == ids
    assert {e.actual.source for e in first} == {"bench"}
    with pytest.raises(ValueError, match="3 ids for 50 events"):
        world.past(now, 50, random.Random(8), ids=ids[:3])


def test_past_events_keep_the_hourly_profile_weekday_volume_and_ground_truth():
    # Two weeks of pickups ending 1 November 2026 (Sunday), 00:00 UTC: 10 weekdays, 4 weekend days.
    now = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    events = SyntheticWorld(5).past(now, 8000, np.random.default_rng(1), span=timedelta(days=14))
    bookings = [e.booking for e in events]
    X = feature_matrix(bookings, [e.weather for e in events])
    hours = X[:, FEATURE_INDEX["hour_local"]].astype(int)
    weekday = X[:, FEATURE_INDEX["is_weekend"]] == 0
    by_hour = Counter(hours[weekday].tolist())
    assert by_hour[8] > 5 * by_hour[3] and by_hour[17] > 5 * by_hour[23]
    per_weekend_day, per_weekday = (~weekday).sum() / 4, weekday.sum() / 10
    # DAY_VOLUME: Saturday 0.55 and Sunday 0.45 of a weekday's 1.15.
    assert per_weekend_day / per_weekday == pytest.approx(0.5 / 1.15, rel=0.1)
    delays = np.array([e.actual.actual_delay_minutes for e in events])
    assert 4 < delays.mean() < 12 and delays.min() >= -15 and delays.max() <= 180
    # The ground truth of live and past events is one: the same booking, the same delay.
    world, some = SyntheticWorld(5), events[123]
    again = world.actual_delay(some.booking, some.weather, np.random.default_rng(0))
    assert some.weather == world.weather(
        some.booking.pickup_lat, some.booking.pickup_lon, some.booking.scheduled_pickup_at
    )
    assert -15 <= again <= 180


@pytest.mark.parametrize("key", ["spring DST change", "autumn DST change"])
def test_a_day_of_pickup_slots_across_a_dst_change_has_288_five_minute_slots(key):
    end = CLOCKS[key] + timedelta(hours=12)
    pickups = pickups_between(np.random.default_rng(0), end - timedelta(hours=24), end, 20000)
    slots = {int(p.timestamp()) for p in pickups}
    assert len(slots) == 288  # every instant of the 24 hours, none twice, none skipped
    assert all(p.tzinfo is LOCAL_TZ and p.utcoffset() is not None for p in pickups)


@pytest.mark.parametrize("now", CLOCKS.values(), ids=CLOCKS.keys())
def test_due_events_are_observed_about_the_asked_time_after_now(now):
    world, rng = SyntheticWorld(42), np.random.default_rng(5)
    after = timedelta(seconds=10)
    events = [world.due(now, rng, after=after) for _ in range(200)]
    assert len({e.booking.booking_id for e in events}) == 200
    for e in events:
        observed = e.actual.observed_at
        assert now - timedelta(minutes=10) <= observed <= now + after + timedelta(minutes=10)
        assert e.booking.scheduled_pickup_at - e.booking.created_at >= timedelta(minutes=10)
        assert int(e.booking.scheduled_pickup_at.timestamp()) % GRID_S == 0
        assert e.weather == world.weather(
            e.booking.pickup_lat, e.booking.pickup_lon, e.booking.scheduled_pickup_at
        )
    leads = [(e.booking.scheduled_pickup_at - e.booking.created_at) for e in events]
    assert max(leads) > timedelta(days=1)  # planned bookings keep their lead time


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def run_plans(
    clock: FakeClock, count: int, actual_after: timedelta | None, rate: float = 20.0
) -> list[tuple[datetime, Planned]]:
    """What the producer sends and when: one booking generated every 1/rate s, every record
    sent once the clock reaches its due time, the rest waited for at the end."""
    plans = synthetic_plans(
        count=count,
        invalid_fraction=0.05,
        seed=4,
        prefix="P",
        world_seed=42,
        actual_after=actual_after,
        clock=clock,
    )
    schedule, sent = Schedule(), []
    for plan in plans:
        schedule.add(plan)
        sent += [(clock(), r) for r in schedule.pop_due(clock())]
        clock.now += timedelta(seconds=1 / rate)
    while schedule:
        clock.now = max(clock.now, schedule.next_due)
        sent += [(clock(), r) for r in schedule.pop_due(clock())]
    return sent


@pytest.mark.parametrize("start", CLOCKS.values(), ids=CLOCKS.keys())
def test_the_producer_sends_every_record_once_and_never_before_it_happened(start):
    clock = FakeClock(start)
    sent = run_plans(clock, 400, timedelta(seconds=10))
    bookings = [(at, r) for at, r in sent if r.topic == "bookings"]
    actuals = [(at, r) for at, r in sent if r.topic == "actual-delays"]
    valid = [(at, r) for at, r in bookings if r.valid]
    assert len(bookings) == 400
    assert len({r.key for _, r in bookings}) == 400
    assert 0 < 400 - len(valid) < 50  # about 5 % malformed
    assert sorted(r.key for _, r in actuals) == sorted(r.key for _, r in valid)
    for at, r in valid:
        assert at >= r.due
        assert_booking_bounds(BookingRequested.model_validate_json(r.value), at)
    for at, r in actuals:
        actual = ActualDelay.model_validate_json(r.value)
        assert at >= r.due == actual.observed_at
        assert_actual_bounds(actual, at, at)
    # Event time stays at the wall clock: the last actual is observed minutes after the
    # last booking is generated (20 s of bookings at 20/s), not days.
    assert clock.now - start < timedelta(seconds=20) + timedelta(minutes=20)


@pytest.mark.parametrize("start", CLOCKS.values(), ids=CLOCKS.keys())
def test_without_actuals_bookings_are_sent_when_created_for_pickups_ahead(start):
    clock = FakeClock(start)
    sent = run_plans(clock, 200, None)
    assert len(sent) == 200 and {r.topic for _, r in sent} == {"bookings"}
    for at, r in sent:
        assert at == r.due
        if r.valid:
            booking = BookingRequested.model_validate_json(r.value)
            assert booking.created_at == at < booking.scheduled_pickup_at
            assert_booking_bounds(booking, at)
