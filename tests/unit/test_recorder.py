"""The recorder's batch step: store, then monitor, then publish what the monitors raise."""

from models.alert_rules import ThresholdRules
from schemas import AlertKind, Arm
from streams.outcomes.recorder import DataRefused, Recorder, RecorderTopics
from tests import factories
from tests.factories import T0, seconds_after_t0


class FakeMessage:
    offsets = iter(range(10**9))

    def __init__(self, topic, value):
        self._topic, self._value = topic, value
        self._offset = next(FakeMessage.offsets)

    def partition(self):
        return 0

    def offset(self):
        return self._offset

    def error(self):
        return None

    def topic(self):
        return self._topic

    def value(self):
        return self._value


class FakeHistory:
    """Stores in lists; refuses, as PostgreSQL would refuse data, any batch holding a booking
    whose id is in ``refuse``."""

    def __init__(self, refuse=()):
        self.predictions, self.outcomes, self.alerts, self.quarantine = [], [], [], []
        self.refuse = set(refuse)
        self.batches = []

    def write_predictions(self, predictions):
        self.batches.append(len(predictions))
        if any(p.booking_id in self.refuse for p in predictions):
            raise DataRefused("NumericValueOutOfRange: value out of range: overflow")
        self.predictions += predictions
        return len(predictions)

    def write_quarantine(self, events):
        self.quarantine += events
        return len(events)

    def write_outcomes(self, outcomes):
        self.outcomes += outcomes
        return len(outcomes)

    def write_alerts(self, alerts):
        self.alerts += alerts
        return len(alerts)


def outcome(i, abs_error):
    return factories.outcome(f"B{i}", abs_error, arm=Arm.HEURISTIC, at=seconds_after_t0(i))


def recorder(history, published, notified):
    return Recorder(
        consumer=None,  # handle() does not consume
        topics=RecorderTopics("p", "o", "a"),
        history=history,
        monitors=[ThresholdRules(window=50, mae_minutes=3, ml_error_rate=0.2, storm_share=0.5)],
        publish_alerts=published.extend,
        notify=notified.append,
        clock=lambda: T0,
    )


def test_outcomes_are_stored_and_a_breach_is_published_then_stored_and_notified():
    history, published, notified = FakeHistory(), [], []
    rec = recorder(history, published, notified)
    rec.handle([FakeMessage("o", outcome(i, 6.0).model_dump_json().encode()) for i in range(60)])
    assert len(history.outcomes) == 60
    assert [a.kind for a in published] == [AlertKind.MAE_THRESHOLD]
    assert history.alerts == [] and notified == []  # stored once it comes back from `alerts`
    rec.handle([FakeMessage("a", published[0].model_dump_json().encode())])
    assert [a.alert_id for a in history.alerts] == [published[0].alert_id]
    assert notified == history.alerts


def test_p90s_too_low_on_stored_outcomes_raise_one_interval_coverage_alert():
    history, published, notified = FakeHistory(), [], []
    rec = recorder(history, published, notified)
    # Actual 6, P90 5.5: every pickup later than its P90; the error (1 min) raises no MAE alert.
    narrow = [outcome(i, 1.0).model_copy(update={"predicted_p90_minutes": 5.5}) for i in range(120)]
    rec.handle([FakeMessage("o", o.model_dump_json().encode()) for o in narrow])
    assert [o.predicted_p90_minutes for o in history.outcomes] == [5.5] * 120
    [alert] = published
    assert (alert.kind, alert.subject) == (AlertKind.INTERVAL_COVERAGE, "heuristic")
    assert alert.evidence["coverage"] == 0.0 and alert.evidence["n"] == 50


def test_a_batch_refused_as_data_is_written_row_by_row_and_the_refused_row_quarantined():
    history, published, notified = FakeHistory(refuse={"B2"}), [], []
    rec = recorder(history, published, notified)
    messages = [
        FakeMessage("p", factories.prediction(f"B{i}").model_dump_json().encode()) for i in range(4)
    ]
    rec.handle(messages)
    assert [p.booking_id for p in history.predictions] == ["B0", "B1", "B3"]
    assert history.batches == [4, 1, 1, 1, 1]
    [q] = history.quarantine
    assert (q.source_topic, q.source_offset, q.booking_id) == ("p", messages[2].offset(), "B2")
    assert q.reason == "refused by PostgreSQL: NumericValueOutOfRange: value out of range: overflow"
    assert q.payload == messages[2].value()
    assert rec.totals["predictions"] == 3 and rec.totals["quarantined"] == 1


def test_huge_or_non_finite_numbers_are_quarantined_before_they_reach_the_sums():
    history, published, notified = FakeHistory(), [], []
    rec = recorder(history, published, notified)
    forged = (
        factories.prediction("B-huge")
        .model_dump_json()
        .replace('"predicted_delay_minutes":5.0', '"predicted_delay_minutes":1e200')
    )
    bad_outcome = outcome(7, 1.0).model_copy(update={"error": float("inf")})
    rec.handle(
        [
            FakeMessage("p", forged.encode()),
            FakeMessage("p", factories.prediction("B-ok").model_dump_json().encode()),
            FakeMessage("o", bad_outcome.model_dump_json(round_trip=True).encode()),
            FakeMessage("o", outcome(8, 1.0).model_dump_json().encode()),
        ]
    )
    assert [p.booking_id for p in history.predictions] == ["B-ok"]
    assert [o.booking_id for o in history.outcomes] == ["B8"]
    # The event contract bounds delays first (schemas/_types.py): the forgery never parses.
    reasons = sorted(q.reason for q in history.quarantine)
    assert reasons == [
        "invalid: error: Input should be a valid number",
        "invalid: predicted_delay_minutes: Input should be less than or equal to 10080",
    ]
    assert history.batches == [1]


def test_an_invalid_event_is_counted_and_skipped():
    history, published, notified = FakeHistory(), [], []
    rec = recorder(history, published, notified)
    rec.handle(
        [
            FakeMessage("o", b"{not json"),
            FakeMessage("o", outcome(1, 1.0).model_dump_json().encode()),
        ]
    )
    assert len(history.outcomes) == 1 and rec.totals["invalid"] == 1
    [q] = history.quarantine
    assert q.reason.startswith("invalid: value: Invalid JSON") and q.payload == b"{not json"
