"""Candidates on one holdout, the promotion gate, and the service area, on data built to test
them: delays that no feature explains (no model can win), and another city's local time."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner

from connectors.datasets import write_history
from connectors.model_store import (
    ArtifactAreaMismatch,
    champion_version,
    load_champion,
    read_audit,
)
from models.area import GENEVA, ServiceArea
from models.forest import ForestConfig
from models.heuristic import DEFAULT_PARAMS
from models.history import HistoryRow
from models.synthetic import generate_history
from models.training import TrainingConfig, train
from streams.operate.cli.main import cli
from streams.operate.cli.train_cmd import EXIT_NOT_PROMOTED
from streams.predict.model_holder import ModelHolder

END = datetime(2026, 11, 1, tzinfo=UTC)
SMALL = TrainingConfig(forest=ForestConfig(n_estimators=10, max_depth=8, n_jobs=1))


def noise_history(seed: int = 7, days: int = 20) -> tuple[list[HistoryRow], list]:
    """Synthetic bookings whose delays are heavy-tailed noise, independent of every feature."""
    data = generate_history(END - timedelta(days=days), END, seed=seed, bookings_per_day=150)
    rng = np.random.default_rng(seed)
    delays = np.round(-1 + rng.lognormal(1.0, 1.2, len(data.rows)) - 2.0, 1)
    rows = [
        replace(r, actual_delay_minutes=float(d)) for r, d in zip(data.rows, delays, strict=True)
    ]
    return rows, list(data.row_weather)


@pytest.fixture(scope="module")
def noise():
    rows, weathers = noise_history()
    return rows, weathers, train(rows, weathers, SMALL)


def test_every_candidate_is_scored_on_the_same_holdout(noise):
    _, _, result = noise
    ml = ("forest", "boosting", "boosting_zones")
    assert set(result.candidates) == {"constant", "heuristic", *ml}
    assert result.model_kind in ml
    assert result.model_scores == result.candidates[result.model_kind]
    assert result.model_kind == min(ml, key=lambda k: result.candidates[k].mae)
    constant = result.candidates["constant"]
    assert constant.r2 <= 0.0  # a constant explains nothing of the holdout's variance


def test_the_gate_refuses_a_model_that_cannot_beat_the_constant(noise):
    _, _, result = noise
    assert not result.gate.passed
    assert any("constant" in reason for reason in result.gate.reasons)
    lead = result.leads["constant"]
    assert lead.low <= 0 < lead.high or lead.high <= 0
    assert lead.block == "hour" and lead.blocks > 50  # 4 holdout days: hours are resampled


def test_the_heuristic_never_loses_to_the_constant_on_heavy_tails(noise):
    _, _, result = noise
    assert result.candidates["heuristic"].mae <= result.candidates["constant"].mae


def test_on_data_with_signal_the_gate_passes_with_intervals_above_zero():
    data = generate_history(END - timedelta(days=40), END, seed=3, bookings_per_day=300)
    result = train(data.rows, data.row_weather, SMALL)
    assert result.gate.passed, result.gate.reasons
    for base in ("heuristic", "constant"):
        lead = result.leads[base]
        assert 0 < lead.low <= lead.minutes <= lead.high
        assert lead.minutes == pytest.approx(
            result.candidates[base].mae - result.model_scores.mae, abs=1e-9
        )
    most, least = result.confidence_deciles
    assert most < least


def _write(tmp_path, rows):
    path = tmp_path / "history.csv"
    write_history(path, rows)
    return path


def test_train_exits_3_keeps_the_artifact_and_names_the_reason_when_the_gate_refuses(
    tmp_path, noise
):
    rows, _, _ = noise
    history, models = _write(tmp_path, rows), tmp_path / "models"
    run = CliRunner().invoke(
        cli, ["train", "--history", str(history), "--out", str(models), "--trees", "10"]
    )
    assert run.exit_code == EXIT_NOT_PROMOTED == 3, run.output
    summary = json.loads(run.stdout)
    assert summary["champion"] is False and summary["gate"]["passed"] is False
    assert (models / summary["model_version"] / "model.joblib").is_file()
    assert champion_version(models) is None
    assert "NOT champion" in run.stderr and "constant" in run.stderr
    assert "constant " in run.stderr and "heuristic " in run.stderr  # the candidates' table

    args = ["train", "--history", str(history), "--out", str(models), "--trees", "10"]
    forced = CliRunner().invoke(cli, [*args, "--force", "holdout week was a strike"])
    assert forced.exit_code == 0, forced.output
    version = json.loads(forced.stdout)["model_version"]
    assert champion_version(models) == version
    (entry,) = read_audit(models)
    assert entry["action"] == "forced champion" and entry["version"] == version
    assert entry["reason"] == "holdout week was a strike"
    assert entry["gate_reasons"] and entry["user"]


def test_force_needs_a_reason_and_a_champion(tmp_path, noise):
    rows, _, _ = noise
    history = _write(tmp_path, rows[:200])
    for extra, expected in (
        (["--force", " "], "expected a reason"),
        (["--force", "x", "--no-champion"], "cannot go with --no-champion"),
        (["--candidates", "forest,svm"], "expected a comma-separated list"),
    ):
        run = CliRunner().invoke(cli, ["train", "--history", str(history), *extra])
        assert run.exit_code == 2 and expected in run.output, run.output


NEW_YORK = ServiceArea(timezone="America/New_York", center_lat=40.71, center_lon=-74.0)


def test_a_model_trained_for_one_area_is_not_served_under_another(tmp_path, noise):
    rows, weathers, _ = noise
    from connectors.model_store import save_artifact

    result = train(rows, weathers, SMALL, area=NEW_YORK)
    assert result.area == NEW_YORK
    info = save_artifact(tmp_path, result)
    assert load_champion(tmp_path, NEW_YORK).version == info.version
    with pytest.raises(
        ArtifactAreaMismatch, match=r"trained for another service area \(America/New_York"
    ):
        load_champion(tmp_path, GENEVA)
    holder = ModelHolder(tmp_path, GENEVA)
    holder.reload_if_changed()
    assert holder.model is None and holder.unavailable.value == "area_mismatch"
    assert "service area" in (holder.detail or "")
    # Its heuristic learned New York's hours: the default rules answer, without an interval.
    assert holder.heuristic is DEFAULT_PARAMS and holder.current.heuristic_p90_scale is None
    assert holder.current.heuristic_quantiles is None


def test_the_served_p90_scales_are_those_calibrated_on_the_holdout(tmp_path):
    from connectors.model_store import save_artifact

    data = generate_history(END - timedelta(days=30), END, seed=4, bookings_per_day=300)
    result = train(data.rows, data.row_weather, SMALL)
    for name in ("model", "heuristic"):
        interval = result.intervals[name]
        assert 0.85 <= interval.coverage <= 0.95, (name, interval)
        assert interval.calibration_rows + interval.evaluation_rows == result.holdout_rows
    save_artifact(tmp_path, result)
    holder = ModelHolder(tmp_path, GENEVA)
    holder.reload_if_changed()
    assert holder.current.model_p90_scale == result.intervals["model"].scale
    assert holder.current.heuristic_p90_scale == result.intervals["heuristic"].scale
    assert holder.metadata["p90"]["model"]["coverage"] == result.intervals["model"].coverage


def test_a_holdout_with_too_few_blocks_to_resample_is_refused_whatever_the_lead():
    from models.training import Lead, Scores, promotion_gate

    scores = {
        "constant": Scores(mae=5.0, rmse=6.0, r2=0.0, bias=0.0),
        "heuristic": Scores(mae=4.0, rmse=5.0, r2=0.2, bias=0.0),
        "boosting": Scores(mae=2.0, rmse=3.0, r2=0.6, bias=0.0),
    }
    few = {
        base: Lead(base, scores[base].mae - 2.0, 1.0, 3.0, blocks=6, block="hour")
        for base in ("constant", "heuristic")
    }
    gate = promotion_gate("boosting", scores, few)
    assert not gate.passed and len(gate.reasons) == 2
    assert "6 hours to resample, fewer than 10" in gate.reasons[0]
    enough = {base: replace(lead, blocks=10) for base, lead in few.items()}
    assert promotion_gate("boosting", scores, enough).passed
