"""The recorder's batch step: store, then monitor, then publish what the monitors raise."""

from models.alert_rules import ThresholdRules
from schemas import AlertKind, Arm
from streams.recorder import Recorder, RecorderTopics
from tests import factories
from tests.factories import T0, seconds_after_t0


class FakeMessage:
    def __init__(self, topic, value):
        self._topic, self._value = topic, value

    def error(self):
        return None

    def topic(self):
        return self._topic

    def value(self):
        return self._value


class FakeHistory:
    def __init__(self):
        self.predictions, self.outcomes, self.alerts = [], [], []

    def write_predictions(self, predictions):
        self.predictions += predictions
        return len(predictions)

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
