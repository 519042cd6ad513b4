"""``delaycast evaluate`` on a seeded history in PostgreSQL, against the same figures computed
offline from the seeded rows themselves (not read back from the database)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from connectors.model_store import champion_version, load_heuristic, load_version
from models import heuristic
from models.features import FEATURE_NAMES
from tests.integration.served_history import END, LEFT_OUT, SINCE, WINDOW, store
from tests.integration.served_history import seeded as served_history
from tests.integration.test_cli import cli


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


def test_evaluate_equals_the_offline_computation_on_identical_rows(
    stack, own_database, trained_model_dir, tmp_path
):
    seeded = served_history()
    store(own_database, seeded)
    out = evaluate(
        stack,
        tmp_path,
        own_database,
        trained_model_dir,
        *WINDOW,
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
        *WINDOW,
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
        *WINDOW,
        "--models",
        "heuristic,gb-nosuchversion",
        check=False,
    )
    # Models load before the history is read: an unknown version is refused at once.
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
