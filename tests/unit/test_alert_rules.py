from models.alert_rules import ThresholdRules
from schemas import AlertKind, Arm, FallbackReason
from tests import factories
from tests.factories import T0, seconds_after_t0


def outcome(i, abs_error, arm=Arm.ML):
    return factories.outcome(f"B{i}", abs_error, arm=arm, at=seconds_after_t0(i))


def prediction(i, reason=None, arm=Arm.ML):
    return factories.prediction(
        f"B{i}",
        at=seconds_after_t0(i),
        arm=arm,
        served_by=Arm.HEURISTIC if reason else arm,
        fallback_reason=reason,
    )


def rules(**kw):
    return ThresholdRules(window=100, mae_minutes=3.0, ml_error_rate=0.2, storm_share=0.5, **kw)


def test_a_lasting_mae_breach_fires_once_and_again_only_after_it_cleared():
    r = rules(cooldown_s=600)
    assert r.on_outcomes([outcome(i, 2.0) for i in range(300)], T0) == []
    alerts = r.on_outcomes([outcome(300 + i, 5.0) for i in range(300)], T0)
    assert [a.kind for a in alerts] == [AlertKind.MAE_THRESHOLD]
    assert alerts[0].subject == "ml" and alerts[0].evidence["mae"] > 3.0
    # Still breached, even hours later in event time: no new alert.
    assert r.on_outcomes([outcome(9000 + i, 5.0) for i in range(300)], T0) == []
    assert r.on_outcomes([outcome(20000 + i, 1.0) for i in range(300)], T0) == []  # cleared
    again = r.on_outcomes([outcome(30000 + i, 6.0) for i in range(300)], T0)
    assert len(again) == 1 and again[0].alert_id != alerts[0].alert_id


def test_arms_are_watched_separately():
    r = rules()
    alerts = r.on_outcomes([outcome(i, 4.0, Arm.HEURISTIC) for i in range(100)], T0)
    assert [a.subject for a in alerts] == ["heuristic"]


def test_model_errors_above_20_percent_raise_an_ml_error_rate_alert():
    r = rules()
    healthy = [
        prediction(i, FallbackReason.MODEL_ERROR if i % 10 == 0 else None) for i in range(200)
    ]
    assert r.on_predictions(healthy, T0) == []
    failing = [
        prediction(200 + i, FallbackReason.MODEL_ERROR if i % 3 == 0 else None) for i in range(200)
    ]
    kinds = {a.kind for a in r.on_predictions(failing, T0)}
    assert kinds == {AlertKind.ML_ERROR_RATE}


def test_a_fallback_storm_is_raised_for_any_reason():
    alerts = rules().on_predictions(
        [prediction(i, FallbackReason.NO_MODEL) for i in range(150)], T0
    )
    assert [a.kind for a in alerts] == [AlertKind.FALLBACK_STORM]


def test_alert_ids_are_deterministic():
    a = rules().on_predictions([prediction(i, FallbackReason.NO_MODEL) for i in range(150)], T0)
    b = rules().on_predictions([prediction(i, FallbackReason.NO_MODEL) for i in range(150)], T0)
    assert [x.alert_id for x in a] == [x.alert_id for x in b]
