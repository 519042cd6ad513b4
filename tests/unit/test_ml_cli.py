"""`delaycast synthetic history` then `delaycast train`, end to end on files (no services)."""

import json

from click.testing import CliRunner

from connectors.model_store import load_champion
from streams.operate.cli.main import cli


def test_synthetic_history_then_train_writes_a_champion(tmp_path):
    runner = CliRunner()
    data, models = tmp_path / "data", tmp_path / "models"
    made = runner.invoke(
        cli,
        "synthetic history --days 20 --end 2026-11-01T00:00Z --bookings-per-day 300 "
        f"--weather-days-after 2 --seed 3 --out {data}".split(),
    )
    assert made.exit_code == 0, made.output
    summary = json.loads(made.stdout)
    assert summary["rows"] > 5000  # enough for the model to pass the promotion gate
    assert summary["weather_until"] == "2026-11-03T00:00:00+00:00"
    assert summary["weather_rows"] == (20 + 2) * 24 * 3

    trained = runner.invoke(
        cli,
        f"train --history {data / 'history.csv'} --weather {data / 'weather.csv'} "
        f"--out {models} --trees 5".split(),
    )
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["gate"] == {"passed": True, "reasons": []}
    result = json.loads(trained.stdout)
    assert result["rows"] == summary["rows"]
    assert result["train_rows"] + result["holdout_rows"] == result["rows"]
    assert result["default_weather_rows"] == 0
    assert set(result["model"]) == {"mae", "rmse", "r2", "bias"}
    assert load_champion(models).version == result["model_version"]


def test_train_names_the_bad_line(tmp_path):
    bad = tmp_path / "history.csv"
    bad.write_text("booking_id,created_at\nB-1,yesterday\n")
    result = CliRunner().invoke(cli, ["train", "--history", str(bad), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "line 1: missing column(s)" in result.output
