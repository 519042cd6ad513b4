"""``delaycast evaluate`` on a seeded history in PostgreSQL, against the same figures computed
offline from the seeded rows themselves (not read back from the database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from connectors.model_store import champion_version, load_heuristic, load_version
from connectors.postgres import make_engine, write_outcomes, write_predictions
from models import heuristic
from models.features import FEATURE_NAMES, feature_dict, feature_matrix
from models.synthetic import generate_history
from schemas import Arm, Outcome
from tests.factories import prediction
from tests.integration.test_cli import cli

END = datetime(2025, 3, 8, tzinfo=UTC)
SINCE = END - timedelta(days=2)
LEFT_OUT = 5  # the latest bookings, stored without one of their features


@pytest.fixture(scope="module")
def seeded() -> dict:
    """Three days of the synthetic world: two inside the window, one before it."""
    history = generate_history(END - timedelta(days=3), END, seed=11, bookings_per_day=120)
    bookings = [row.booking for row in history.rows]
    x = feature_matrix(bookings, history.row_weather)
    actual = np.array([row.actual_delay_minutes for row in history.rows])
    rng = np.random.default_rng(7)
    served = actual + rng.normal(0, 3, size=len(actual))  # what the live path had said
    return {"bookings": bookings, "x": x, "actual": actual, "served": served}


def evaluate(stack, home, database_url: str, model_dir, *args: str, check: bool = True):
    """``delaycast evaluate ARGS`` against ``database_url`` and the models of ``model_dir``."""
    return cli(
        stack,
        "ev.",
        home,
        "evaluate",
        *args,
        check=check,
        DATABASE_URL=database_url,
        MODEL_DIR=str(model_dir),
    )


def store(database_url: str, seeded: dict) -> None:
    predictions, outcomes = [], []
    n = len(seeded["bookings"])
    for i, booking in enumerate(seeded["bookings"]):
        features = feature_dict(seeded["x"][i])
        if i >= n - LEFT_OUT:  # the latest bookings: inside the window
            del features["distance_km"]
        arm = Arm.ML if i % 2 else Arm.HEURISTIC
        pickup, served = booking.scheduled_pickup_at, float(seeded["served"][i])
        actual = float(seeded["actual"][i])
        predictions.append(
            prediction(
                booking.booking_id,
                at=booking.created_at,
                arm=arm,
                features=features,
                predicted_delay_minutes=served,
                scheduled_pickup_at=pickup,
            )
        )
        outcomes.append(
            Outcome(
                booking_id=booking.booking_id,
                arm=arm,
                served_by=arm,
                model_version="seeded",
                bucket=1,
                ml_traffic_percentage=50,
                predicted_delay_minutes=served,
                actual_delay_minutes=actual,
                error=served - actual,
                abs_error=abs(served - actual),
                scheduled_pickup_at=pickup,
                predicted_at=booking.created_at,
                observed_at=pickup,
            )
        )
    engine = make_engine(database_url)
    try:
        write_predictions(engine, predictions=predictions)
        write_outcomes(engine, outcomes=outcomes)
    finally:
        engine.dispose()


def test_evaluate_equals_the_offline_computation_on_identical_rows(
    stack, own_database, trained_model_dir, seeded, tmp_path
):
    store(own_database, seeded)
    out = evaluate(
        stack,
        tmp_path,
        own_database,
        trained_model_dir,
        "--since",
        SINCE.isoformat(),
        "--until",
        END.isoformat(),
        "--models",
        "served,heuristic,champion",
        "--json",
    )
    report = json.loads(out.stdout)
    text = evaluate(
        stack,
        tmp_path,
        own_database,
        trained_model_dir,
        "--since",
        SINCE.isoformat(),
        "--until",
        END.isoformat(),
    ).stdout.splitlines()
    assert text[0].startswith(f"{report['rows']} bookings scheduled from ")
    assert f"({LEFT_OUT} left out: features missing)" in text[0]
    champion_line = next(line for line in text if line.startswith("champion "))
    assert f"{report['models']['champion']['mae']:.3f}" in champion_line
    assert text[-1].startswith("heuristic - champion: ") and "95 % CI" in text[-1]

    # Offline: the seeded rows of the window that have every feature, scored directly.
    pickups = np.array([b.scheduled_pickup_at for b in seeded["bookings"]])
    inside = (pickups >= SINCE) & (pickups < END)
    complete = np.arange(len(pickups)) < len(pickups) - LEFT_OUT
    rows = inside & complete
    x, actual = seeded["x"][rows], seeded["actual"][rows]
    version = champion_version(trained_model_dir)
    assert version is not None
    champion = load_version(trained_model_dir, version).predictor.predict(x)[0]
    params = load_heuristic(trained_model_dir)
    offline = {
        "served": seeded["served"][rows],
        "heuristic": heuristic.predict(params, x)[0],
        "champion": np.asarray(champion),
    }
    assert x.shape[1] == len(FEATURE_NAMES)
    assert report["rows"] == int(rows.sum()) > 100
    assert report["left_out"] == int((inside & ~complete).sum()) == LEFT_OUT
    assert report["models"]["champion"]["version"] == version
    assert report["models"]["heuristic"]["version"] == params.version
    for name, predicted in offline.items():
        assert report["models"][name]["mae"] == pytest.approx(
            float(np.mean(np.abs(predicted - actual))), abs=1e-9
        )
    assert [(d["a"], d["b"]) for d in report["differences"]] == [
        ("served", "heuristic"),
        ("served", "champion"),
        ("heuristic", "champion"),
    ]
    for d in report["differences"]:
        ea, eb = np.abs(offline[d["a"]] - actual), np.abs(offline[d["b"]] - actual)
        test = stats.ttest_rel(ea, eb)
        interval = test.confidence_interval(0.95)
        assert d["n"] == len(actual)
        assert d["mae_difference"] == pytest.approx(float(np.mean(ea - eb)), abs=1e-9)
        assert d["interval"] == pytest.approx([interval.low, interval.high], abs=1e-9)
        assert d["p_value"] == pytest.approx(float(test.pvalue), abs=1e-9)


def test_too_few_bookings_and_bad_models_are_refused_with_what_was_expected(
    stack, own_database, trained_model_dir, tmp_path
):
    empty = evaluate(
        stack,
        tmp_path,
        own_database,
        trained_model_dir,
        "--since",
        "2031-01-01T00:00:00+00:00",
        "--until",
        "2031-01-02T00:00:00+00:00",
        check=False,
    )
    assert empty.returncode == 1
    assert "0 booking(s) with served features" in empty.stderr
    assert "at least 2 are needed: widen the window" in empty.stderr
    unknown = evaluate(
        stack,
        tmp_path,
        own_database,
        trained_model_dir,
        "--since",
        SINCE.isoformat(),
        "--until",
        END.isoformat(),
        "--models",
        "heuristic,gb-nosuchversion",
        check=False,
    )
    # The empty window is refused before any model loads; this one reaches the model.
    assert unknown.returncode == 1
    assert "gb-nosuchversion" in unknown.stderr
    backwards = evaluate(
        stack,
        tmp_path,
        own_database,
        trained_model_dir,
        "--since",
        END.isoformat(),
        "--until",
        SINCE.isoformat(),
        check=False,
    )
    assert backwards.returncode == 1
    assert "must be after --since" in backwards.stderr
