"""``delaycast retrain`` on a served history in PostgreSQL: the challenger it registers, what it
was trained and held out on, and its refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from connectors.model_store import (
    challenger_version,
    champion_version,
    load_version,
    read_audit,
)
from tests.integration.served_history import END, LEFT_OUT, SINCE, WINDOW, seeded, store
from tests.integration.test_cli import cli


def retrain(stack, home, database_url: str, *args: str, check: bool = True):
    return cli(stack, "rt.", home, "retrain", *args, check=check, DATABASE_URL=database_url)


def window_rows(served: dict) -> np.ndarray:
    """The seeded bookings retrain learns from: in the window, every feature stored, in order
    of scheduled pickup."""
    pickups = np.array([b.scheduled_pickup_at.timestamp() for b in served["bookings"]])
    inside = (pickups >= SINCE.timestamp()) & (pickups < END.timestamp())
    complete = np.arange(len(pickups)) < len(pickups) - LEFT_OUT
    rows = np.flatnonzero(inside & complete)
    return rows[np.argsort(pickups[rows], kind="stable")]


def test_retrain_registers_a_challenger_trained_on_the_served_features_and_keeps_the_champion(
    stack, own_database, trained_model_dir, tmp_path
):
    served = seeded()
    store(own_database, served)
    models = tmp_path / "models"
    shutil.copytree(trained_model_dir, models)
    champion = champion_version(models)
    args = (
        *WINDOW,
        "--out",
        str(models),
        "--min-outcomes",
        "100",
        "--candidates",
        "boosting",
        "--trees",
        "20",
    )
    out = retrain(stack, tmp_path, own_database, *args)
    summary = json.loads(out.stdout)
    assert "history: reading the served bookings" in out.stderr  # progress on stderr

    # What it learned from: the window's bookings with every feature, in order of pickup.
    rows = window_rows(served)
    assert summary["outcomes"] == summary["rows"] == len(rows)
    assert summary["left_out"] == LEFT_OUT
    assert summary["train_rows"] + summary["holdout_rows"] == len(rows)
    assert summary["holdout_rows"] == round(len(rows) * 0.2)

    # Registered as challenger, never champion.
    version = summary["challenger"]
    assert challenger_version(models) == version != champion
    assert champion_version(models) == champion
    [entry] = [e for e in read_audit(models) if e["action"] == "challenger"]
    assert entry["version"] == version and entry["outcomes"] == len(rows)
    listing = cli(stack, "rt.", tmp_path, "model", "list", "--json", "--model-dir", str(models))
    listed = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [r["version"] for r in listed if r["challenger"]] == [version]
    assert [r["version"] for r in listed if r["champion"]] == [champion]

    # Scored on the latest bookings, against the champion, paired: recomputed offline.
    holdout = rows[summary["train_rows"] :]
    x, y = served["x"][holdout], served["actual"][holdout]
    ours = np.abs(load_version(models, version).predictor.predict(x)[0] - y)
    theirs = np.abs(load_version(models, champion).predictor.predict(x)[0] - y)
    against = summary["against_champion"]
    assert against["champion"] == champion and against["n"] == len(holdout)
    assert against["mae_a"] == pytest.approx(float(ours.mean()), abs=1e-9)
    assert against["mae_b"] == pytest.approx(float(theirs.mean()), abs=1e-9)
    assert summary["model"]["mae"] == pytest.approx(float(ours.mean()), abs=1e-9)
    assert set(summary["candidates"]) == {"constant", "heuristic", "boosting"}
    # The champion was trained on the present; this window is in 2025: no overlap.
    assert against["champion_saw_the_holdout"] is False

    # A second challenger promoted, then rolled back: back to the champion, not to the first
    # challenger, which was never served.
    second = json.loads(retrain(stack, tmp_path, own_database, *args, "--seed", "1").stdout)
    cli(stack, "rt.", tmp_path, "model", "promote", second["challenger"], MODEL_DIR=str(models))
    assert champion_version(models) == second["challenger"]
    cli(stack, "rt.", tmp_path, "model", "rollback", MODEL_DIR=str(models))
    assert champion_version(models) == champion


def test_too_few_outcomes_are_refused_with_the_count_and_what_to_do(stack, own_database, tmp_path):
    served = seeded()
    store(own_database, served)
    refused = retrain(
        stack,
        tmp_path,
        own_database,
        *WINDOW,
        "--out",
        str(tmp_path / "models"),
        check=False,
    )
    assert refused.returncode == 1
    n = len(window_rows(served))
    assert f"not retrained: {n} bookings with served features" in refused.stderr
    assert f"({LEFT_OUT} more without every feature)" in refused.stderr
    assert "at least 1000 are needed (--min-outcomes)" in refused.stderr
    assert not (tmp_path / "models").exists() or challenger_version(tmp_path / "models") is None
