"""The batch function of the prediction path, without servers: routing, fallbacks, dead letters."""

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from connectors.flags import FlagState
from models.routing import bucket
from schemas import Arm, DeadLetterKind, FallbackReason, FlagSource, Weather
from streams.decode import Inbound
from streams.predict.batch import BatchPredictor, RiskThresholds
from streams.predict.model_holder import ModelHolder, Served

NOW = datetime(2026, 11, 23, 7, 45, tzinfo=UTC)
WEATHER = Weather(
    temperature_c=3,
    precipitation_mm_h=2,
    wind_m_s=4,
    visibility_m=9000,
    humidity_pct=85,
    condition="rain",
    observed_at=NOW.replace(minute=0),
    source="recorded",
)


@dataclass
class Lookup:
    weather: Weather
    note: str | None = None


class FixedWeather:
    def __init__(self, note=None):
        self.note = note
        self.asked = 0

    async def get_many(self, points, wait_s):
        self.asked += len(points)
        return [Lookup(WEATHER, self.note) for _ in points]


@dataclass
class Flags:
    state: FlagState
    source: str = "redis"


class ConstantModel:
    version = "rf-test"

    def __init__(self, value=7.0, confidence=0.8):
        self.value, self.confidence, self.calls = value, confidence, []

    def predict(self, X):
        self.calls.append(len(X))
        return np.full(len(X), self.value), np.full(len(X), self.confidence)


class BrokenModel:
    version = "rf-broken"

    def predict(self, X):
        raise RuntimeError("tree exploded")


def booking_json(i, **changes):
    data = {
        "booking_id": f"B-{i}",
        "scheduled_pickup_at": (NOW + timedelta(minutes=30)).isoformat(),
        "created_at": NOW.isoformat(),
        "pickup_lat": 46.2,
        "pickup_lon": 6.14,
        "dropoff_lat": 46.19,
        "dropoff_lon": 6.15,
        "vehicle_type": "standard",
        **changes,
    }
    return json.dumps(data).encode()


def records(values):
    return [Inbound("bookings", 0, i, None, v, timestamp_ms=None) for i, v in enumerate(values)]


def holder(model=None, reason=None, tmp_path=None):
    h = ModelHolder(tmp_path)
    h.current = Served(
        model=model,
        unavailable=None if model else (reason or FallbackReason.NO_MODEL),
        detail=None if model else "test",
    )
    return h


def serve(predictor, **changes):
    """Replace what the predictor's holder serves, as a reload does: one new snapshot."""
    predictor._models.current = replace(predictor._models.current, **changes)


def run(predictor, values):
    return asyncio.run(predictor.run(records(values)))


@pytest.fixture
def executor():
    with ThreadPoolExecutor(2) as pool:
        yield pool


def make(executor, tmp_path, *, percentage, model=None, enabled=True, source="redis", weather=None):
    flags = Flags(FlagState(enabled, percentage, "salt"), source)
    return BatchPredictor(
        weather=weather or FixedWeather(),
        flags=flags,
        models=holder(model, tmp_path=tmp_path),
        risk=RiskThresholds(5, 15),
        clock=lambda: NOW,
        model_executor=executor,
        weather_wait_s=0.1,
    )


def test_routes_by_bucket_and_predicts_the_ml_share_in_one_call(executor, tmp_path):
    model = ConstantModel(value=9.5)
    predictor = make(executor, tmp_path, percentage=40, model=model)
    result = run(predictor, [booking_json(i) for i in range(400)])
    expected_ml = {f"B-{i}" for i in range(400) if bucket("salt", f"B-{i}") < 40}
    assert {p.booking_id for p in result.predictions if p.arm is Arm.ML} == expected_ml
    assert model.calls == [len(expected_ml)]
    for p in result.predictions:
        assert p.bucket == bucket("salt", p.booking_id)
        if p.arm is Arm.ML:
            assert (p.served_by, p.predicted_delay_minutes, p.model_version) == (
                Arm.ML,
                9.5,
                "rf-test",
            )
            assert p.risk_level.value == "medium"
        else:
            assert p.served_by is Arm.HEURISTIC and p.model_version.startswith("heuristic")
        assert p.fallback_reason is None
        assert p.flag_source is FlagSource.REDIS
        assert p.features["precipitation_mm_h"] == 2
        assert p.weather == WEATHER


def test_disabled_flag_sends_everything_to_the_heuristic(executor, tmp_path):
    model = ConstantModel()
    result = run(
        make(executor, tmp_path, percentage=100, model=model, enabled=False),
        [booking_json(i) for i in range(50)],
    )
    assert all(p.arm is Arm.HEURISTIC for p in result.predictions)
    assert model.calls == []


def test_a_model_exception_falls_back_to_the_heuristic_with_the_reason(executor, tmp_path):
    result = run(
        make(executor, tmp_path, percentage=100, model=BrokenModel()),
        [booking_json(i) for i in range(20)],
    )
    assert len(result.predictions) == 20
    for p in result.predictions:
        assert (p.arm, p.served_by, p.fallback_reason) == (
            Arm.ML,
            Arm.HEURISTIC,
            FallbackReason.MODEL_ERROR,
        )
        assert "tree exploded" in p.fallback_detail
    assert result.fallbacks == {"model_error": 20}


def test_no_model_gives_heuristic_predictions_with_no_model_reason(executor, tmp_path):
    result = run(make(executor, tmp_path, percentage=100), [booking_json(i) for i in range(5)])
    assert [p.fallback_reason for p in result.predictions] == [FallbackReason.NO_MODEL] * 5


def test_a_non_finite_model_output_is_a_model_error_for_that_row_only(executor, tmp_path):
    class HalfNaN(ConstantModel):
        def predict(self, X):
            delays = np.full(len(X), 3.0)
            delays[0] = np.nan
            return delays, np.full(len(X), 0.5)

    result = run(
        make(executor, tmp_path, percentage=100, model=HalfNaN()),
        [booking_json(i) for i in range(4)],
    )
    reasons = [p.fallback_reason for p in result.predictions]
    assert reasons.count(FallbackReason.MODEL_ERROR) == 1
    assert sum(p.served_by is Arm.ML for p in result.predictions) == 3


def test_malformed_events_become_dead_letters_and_the_rest_is_predicted(executor, tmp_path):
    values = [
        booking_json(1),
        b"\x00\xff not json",
        b"[]",
        booking_json(2, vehicle_type="bus"),
        booking_json(3, pickup_lat=123),
        booking_json(4, scheduled_pickup_at="2026-11-23T08:00:00"),
        b"",
        booking_json(5),
    ]
    result = run(make(executor, tmp_path, percentage=0), values)
    assert [p.booking_id for p in result.predictions] == ["B-1", "B-5"]
    kinds = [(d.source_offset, d.kind) for d in result.dead_letters]
    assert kinds == [
        (1, DeadLetterKind.DECODE),
        (2, DeadLetterKind.VALIDATION),
        (3, DeadLetterKind.VALIDATION),
        (4, DeadLetterKind.VALIDATION),
        (5, DeadLetterKind.VALIDATION),
        (6, DeadLetterKind.DECODE),
    ]
    assert "vehicle_type" in result.dead_letters[2].error
    assert "pickup_lat" in result.dead_letters[3].error
    assert "timezone" in result.dead_letters[4].error
    assert result.dead_letters[0].original_value == b"\x00\xff not json"


def test_flag_source_and_weather_notes_are_reported(executor, tmp_path):
    weather = FixedWeather(note="timeout")
    predictor = make(executor, tmp_path, percentage=0, source="last_seen", weather=weather)
    result = run(predictor, [booking_json(i) for i in range(3)])
    assert {p.flag_source for p in result.predictions} == {FlagSource.LAST_SEEN}
    assert result.weather_notes == {"timeout": 3}
    assert weather.asked == 3


class PoisonedWeather(FixedWeather):
    """Weather that fails a whole lookup when one point is at the poisoned latitude."""

    async def get_many(self, points, wait_s):
        if any(lat == 45.0 for lat, _, _ in points):
            raise OverflowError("weather key out of range")
        return await super().get_many(points, wait_s)


class CapturingProducer:
    def __init__(self):
        self.sent = []

    async def send_batch(self, records):
        self.sent.extend(records)


def test_a_batch_that_fails_is_retried_record_by_record_and_only_the_culprit_dead_lettered(
    executor, tmp_path
):
    from streams.predict.engine import OutputTopics, predict_and_send

    predictor = make(executor, tmp_path, percentage=50, weather=PoisonedWeather())
    values = [booking_json(i) for i in range(30)]
    values[17] = booking_json(17, pickup_lat=45.0)
    producer = CapturingProducer()
    summary = asyncio.run(
        predict_and_send(predictor, producer, OutputTopics("p", "d"), records(values))
    )
    predicted = sorted(json.loads(r.value)["booking_id"] for r in producer.sent if r.topic == "p")
    letters = [json.loads(r.value) for r in producer.sent if r.topic == "d"]
    assert predicted == sorted(f"B-{i}" for i in range(30) if i != 17)
    assert [(x["source_offset"], x["kind"]) for x in letters] == [(17, "processing")]
    assert "OverflowError" in letters[0]["error"]
    assert (summary.bookings, summary.predictions, summary.dead_letters) == (30, 29, 1)


def test_a_record_stamped_long_ago_or_not_at_all_is_still_predicted(executor, tmp_path):
    predictor = make(executor, tmp_path, percentage=50)
    two_days_ago = NOW - timedelta(days=2)
    values = [
        booking_json(0),
        booking_json(1),
        booking_json(2, created_at=two_days_ago.isoformat()),
    ]
    stamps = [-1.0, 0.0, two_days_ago.timestamp() * 1000]  # none, none, published back then
    recs = [
        Inbound("bookings", 0, i, None, v, timestamp_ms=s)
        for i, (v, s) in enumerate(zip(values, stamps, strict=True))
    ]
    result = asyncio.run(predictor.run(recs))
    assert result.dead_letters == []
    assert [p.latency_ms for p in result.predictions] == [None, None, 86_400_000.0]


def test_each_prediction_carries_the_p90_of_the_predictor_that_served_it(executor, tmp_path):
    model = ConstantModel(value=9.5, confidence=0.5)  # a spread of 5 minutes
    predictor = make(executor, tmp_path, percentage=50, model=model)
    serve(predictor, model_p90_scale=1.5, heuristic_p90_scale=2.0)
    result = run(predictor, [booking_json(i) for i in range(200)])
    served = {p.served_by for p in result.predictions}
    assert served == {Arm.ML, Arm.HEURISTIC}
    for p in result.predictions:
        spread = 5.0 * (1 / p.confidence - 1)
        scale = 1.5 if p.served_by is Arm.ML else 2.0
        assert p.delay_p90_minutes == pytest.approx(
            p.predicted_delay_minutes + scale * spread, abs=0.01
        )
    assert {p.delay_p90_minutes for p in result.predictions if p.served_by is Arm.ML} == {17.0}


def test_a_predictor_without_a_calibrated_interval_gives_no_p90(executor, tmp_path):
    predictor = make(executor, tmp_path, percentage=50, model=ConstantModel())
    serve(predictor, heuristic_p90_scale=2.0)  # the model's artifact predates intervals
    result = run(predictor, [booking_json(i) for i in range(100)])
    by_arm = {p.served_by: p.delay_p90_minutes is None for p in result.predictions}
    assert by_arm == {Arm.ML: True, Arm.HEURISTIC: False}


@pytest.mark.parametrize(("probability", "expected"), [(0.3, "medium"), (0.2, "high")])
def test_risk_comes_from_the_chance_of_exceeding_the_thresholds(
    executor, tmp_path, probability, expected
):
    model = ConstantModel(value=9.5, confidence=0.5)  # a spread of 5 minutes
    predictor = make(executor, tmp_path, percentage=100, model=model)
    predictor._risk = RiskThresholds(5, 15, probability)
    # A symmetric excess: a delay of 15 or more has a chance of 0.225, of 5 or more 0.725.
    serve(predictor, model_quantiles=tuple(np.linspace(-1.8, 1.8, 19).tolist()))
    result = run(predictor, [booking_json(i) for i in range(20)])
    assert {p.risk_level.value for p in result.predictions} == {expected}


class ReloadingModel(ConstantModel):
    """A model during whose call the champion changes: the holder gets a new snapshot with
    another model, other intervals and quantiles, and another heuristic, as a reload on its
    thread does."""

    def __init__(self, holder_of, successor):
        super().__init__(value=9.5, confidence=0.5)
        self.holder_of, self.successor = holder_of, successor

    def predict(self, X):
        self.holder_of()._models.current = self.successor
        return super().predict(X)


def test_a_reload_during_a_batch_never_mixes_two_champions(executor, tmp_path):
    from models.heuristic import constant_params

    successor = Served(
        model=ConstantModel(value=30.0),
        heuristic=constant_params(40.0, 1.0),
        model_p90_scale=9.0,
        heuristic_p90_scale=9.0,
        # Every excess far above the delay: any booking would be high risk.
        model_quantiles=tuple(np.linspace(5, 6, 19).tolist()),
        unavailable=None,
        detail=None,
    )
    cell = []
    model = ReloadingModel(lambda: cell[0], successor)
    predictor = make(executor, tmp_path, percentage=50, model=model)
    cell.append(predictor)
    # A symmetric excess: at 9.5 min with a spread of 5, a delay of 15 has a chance of 0.225.
    symmetric = tuple(np.linspace(-1.8, 1.8, 19).tolist())
    serve(predictor, model_p90_scale=1.5, heuristic_p90_scale=2.0, model_quantiles=symmetric)
    old_rules = predictor._models.current.heuristic
    result = run(predictor, [booking_json(i) for i in range(100)])
    assert predictor._models.current is successor  # the reload did happen, mid-batch
    ml = [p for p in result.predictions if p.served_by is Arm.ML]
    rules = [p for p in result.predictions if p.served_by is Arm.HEURISTIC]
    assert ml and rules
    # Every prediction of the batch is the old champion's: its delays, versions and scales.
    assert {(p.predicted_delay_minutes, p.model_version) for p in ml} == {(9.5, "rf-test")}
    assert {p.delay_p90_minutes for p in ml} == {9.5 + 1.5 * 5.0}
    assert {p.risk_level.value for p in ml} == {"medium"}  # the old quantiles', not "high"
    assert {p.model_version for p in rules} == {old_rules.version}
    assert all(p.predicted_delay_minutes != 40.0 for p in rules)
    for p in rules:
        spread = 5.0 * (1 / p.confidence - 1)
        assert p.delay_p90_minutes == pytest.approx(
            p.predicted_delay_minutes + 2.0 * spread, abs=0.01
        )
    # The next batch serves the new champion.
    after = run(predictor, [booking_json(i) for i in range(100)])
    assert {p.predicted_delay_minutes for p in after.predictions if p.served_by is Arm.ML} == {30.0}
    assert {p.risk_level.value for p in after.predictions if p.served_by is Arm.ML} == {"high"}
    heuristic_after = {
        p.predicted_delay_minutes for p in after.predictions if p.arm is Arm.HEURISTIC
    }
    assert heuristic_after == {40.0}


@dataclass
class Sums:
    sums: dict


def test_the_p90_served_follows_the_tracked_sum_of_its_version(executor, tmp_path):
    from models.heuristic import DEFAULT_PARAMS
    from models.interval import tracking_factor

    model = ConstantModel(value=9.5, confidence=0.5)  # a spread of 5 minutes
    predictor = make(executor, tmp_path, percentage=50, model=model)
    serve(predictor, model_p90_scale=1.5, heuristic_p90_scale=2.0)
    tracked = Sums({"rf-test": 100.0, DEFAULT_PARAMS.version: -50.0, "other": 999.0})
    predictor._tracking, predictor._tracking_rate = tracked, 0.005
    result = run(predictor, [booking_json(i) for i in range(200)])
    widen, narrow = tracking_factor(100.0), tracking_factor(-50.0)
    assert widen > 1.6 and narrow < 0.8
    ml = [p for p in result.predictions if p.served_by is Arm.ML]
    assert ml and all(
        p.delay_p90_minutes == pytest.approx(9.5 + 1.5 * widen * 5.0, abs=1e-3) for p in ml
    )
    for p in result.predictions:
        if p.served_by is Arm.HEURISTIC:
            spread = 5.0 * (1 / p.confidence - 1)
            assert p.delay_p90_minutes == pytest.approx(
                p.predicted_delay_minutes + 2.0 * narrow * spread, abs=0.01
            )
    # A version without a sum is served its calibrated P90; rate 0 ignores every sum.
    tracked.sums = {}
    again = run(predictor, [booking_json(i) for i in range(50)])
    assert {p.delay_p90_minutes for p in again.predictions if p.served_by is Arm.ML} == {17.0}
    tracked.sums, predictor._tracking_rate = {"rf-test": 100.0}, 0.0
    off = run(predictor, [booking_json(i) for i in range(50)])
    assert {p.delay_p90_minutes for p in off.predictions if p.served_by is Arm.ML} == {17.0}


# --- the challenger in shadow


class ShadowModel(ConstantModel):
    version = "gb-challenger"


def test_the_challenger_is_scored_on_every_booking_in_shadow_and_never_served(executor, tmp_path):
    model, challenger = ConstantModel(value=9.5), ShadowModel(value=4.25)
    predictor = make(executor, tmp_path, percentage=40, model=model)
    serve(predictor, shadow=challenger)
    values = [booking_json(i) for i in range(300)]
    result = run(predictor, values)
    assert len(result.predictions) == 300
    assert challenger.calls == [300]  # every booking, both arms, in one call
    assert {p.arm for p in result.predictions} == {Arm.ML, Arm.HEURISTIC}
    for p in result.predictions:
        served = 9.5 if p.arm is Arm.ML else p.predicted_delay_minutes
        assert p.predicted_delay_minutes == served  # the shadow never changes what is served
        assert (p.shadow_model_version, p.shadow_delay_minutes) == ("gb-challenger", 4.25)
    without = make(executor, tmp_path, percentage=40, model=ConstantModel(value=9.5))
    plain = run(without, values)
    assert all(p.shadow_delay_minutes is None for p in plain.predictions)
    assert [p.predicted_delay_minutes for p in plain.predictions] == [
        p.predicted_delay_minutes for p in result.predictions
    ]


def test_a_failing_challenger_is_logged_once_and_touches_nothing_served(executor, tmp_path, caplog):
    class BrokenChallenger(BrokenModel):
        version = "gb-broken"

    model = ConstantModel(value=9.5)
    predictor = make(executor, tmp_path, percentage=100, model=model)
    serve(predictor, shadow=BrokenChallenger())
    first = run(predictor, [booking_json(i) for i in range(50)])
    second = run(predictor, [booking_json(i) for i in range(50, 80)])
    for p in first.predictions + second.predictions:
        assert (p.served_by, p.predicted_delay_minutes, p.fallback_reason) == (Arm.ML, 9.5, None)
        assert p.shadow_delay_minutes is None and p.shadow_model_version is None
    assert caplog.text.count("challenger gb-broken not scored in shadow") == 1
    # And a served model that fails does not stop the challenger being scored.
    predictor = make(executor, tmp_path, percentage=100, model=BrokenModel())
    serve(predictor, shadow=ShadowModel(value=3.0))
    result = run(predictor, [booking_json(i) for i in range(20)])
    assert {p.fallback_reason for p in result.predictions} == {FallbackReason.MODEL_ERROR}
    assert {p.shadow_delay_minutes for p in result.predictions} == {3.0}


def test_a_slow_challenger_never_holds_predictions_back(executor, tmp_path, caplog):
    class SlowChallenger(ShadowModel):
        """Slow on its first batch only."""

        def predict(self, X):
            if not self.calls:
                time.sleep(1.0)
            return super().predict(X)

    predictor = make(executor, tmp_path, percentage=100, model=ConstantModel(value=9.5))
    serve(predictor, shadow=SlowChallenger(value=1.0))
    started = time.perf_counter()
    first = run(predictor, [booking_json(i) for i in range(20)])
    second = run(predictor, [booking_json(i) for i in range(20, 40)])  # it still scores the 1st
    assert time.perf_counter() - started < 0.8  # neither batch waited for it (1 s)
    for p in first.predictions + second.predictions:
        assert (p.predicted_delay_minutes, p.shadow_delay_minutes) == (9.5, None)
    assert predictor.shadow_skipped == 2  # late for the first, busy for the second
    assert "not scored in shadow: TimeoutError" in caplog.text
    deadline = time.monotonic() + 30
    while not predictor._shadow_inflight.done() and time.monotonic() < deadline:
        time.sleep(0.05)  # it answers meanwhile: the next batch is scored again
    predictor._shadow_wait_s = 5.0  # a loaded machine may take more than 50 ms to hand over
    third = run(predictor, [booking_json(i) for i in range(40, 45)])
    assert {p.shadow_delay_minutes for p in third.predictions} == {1.0}


def test_the_kill_switch_stops_the_challenger_too(executor, tmp_path):
    challenger = ShadowModel(value=1.0)
    predictor = make(executor, tmp_path, percentage=50, model=ConstantModel(), enabled=False)
    serve(predictor, shadow=challenger)
    result = run(predictor, [booking_json(i) for i in range(30)])
    assert challenger.calls == []
    assert all(p.shadow_delay_minutes is None for p in result.predictions)


def test_without_a_model_a_booking_missing_a_feature_says_no_model(executor, tmp_path):
    predictor = make(executor, tmp_path, percentage=100)
    features = np.ones((3, 4))
    features[1, 2] = np.nan
    reasons, details = [None] * 3, [None] * 3
    asyncio.run(
        predictor._predict_ml(
            predictor._models.current, features, np.ones(3, dtype=bool), np.zeros(3),
            np.zeros(3), np.zeros(3, dtype=bool), reasons, details, score_shadow=False,
        )
    )  # fmt: skip
    assert reasons == [FallbackReason.NO_MODEL] * 3
