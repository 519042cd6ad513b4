"""Micro-benchmark of the two ML candidates on the compiled path:
``python -m streams.tools.bench.boosting_timing [--days 90] [--rounds 15]``.

A developer's tool (it reads a clock, so it lives with the bench, not in ``models``). It fits,
on synthetic history sorted by pickup time (the earlier 80 % of the rows), the default forest
(:class:`models.forest.ForestConfig`) and the default boosting model with its spread model
(:class:`models.boosting.BoostingConfig`, ``SPREAD_CONFIG``), then times each predictor's
``predict``: one booking (each call on another holdout row) and a batch of 500, in rounds that
alternate between the models, so that a change in the machine's load falls on both. It prints
the median and the 10th and 90th percentiles of each, the holdout MAE of each model, and whether
the compiled predictions equal scikit-learn's. It asserts nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import click
import numpy as np

from models.boosting import (
    SPREAD_CONFIG,
    BoostingConfig,
    BoostingPredictor,
    fit_boosting,
    fit_spread,
)
from models.features import feature_matrix
from models.forest import ForestConfig, ForestPredictor, fit_forest
from models.inputs import ModelInputs
from models.synthetic import generate_history

HISTORY_END = datetime(2026, 11, 1, tzinfo=UTC)
BATCH_ROWS = 500
SINGLE_CALLS = 200  # one-booking calls per round, each on its own row

Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def time_rounds(cases: dict[str, Predict], X: np.ndarray, rounds: int) -> dict[str, dict]:
    """Seconds per booking of every case, one booking and batched, over alternating rounds."""
    batch = np.ascontiguousarray(X[:BATCH_ROWS])
    singles = [np.ascontiguousarray(X[i : i + 1]) for i in range(SINGLE_CALLS)]
    seconds: dict[str, dict[str, list[float]]] = {name: {"one": [], "batch": []} for name in cases}
    for _ in range(rounds):
        for name, predict in cases.items():
            predict(batch)  # warm-up of this case's arrays after the other case ran
            for row in singles:
                started = time.perf_counter()
                predict(row)
                seconds[name]["one"].append(time.perf_counter() - started)
            for _ in range(10):
                started = time.perf_counter()
                predict(batch)
                seconds[name]["batch"].append((time.perf_counter() - started) / BATCH_ROWS)
    return seconds


def describe(samples: list[float]) -> str:
    tenths = statistics.quantiles(samples, n=10)
    return (
        f"{statistics.median(samples) * 1e6:7.1f} µs "
        f"(p10 {tenths[0] * 1e6:6.1f}, p90 {tenths[-1] * 1e6:6.1f}, n={len(samples)})"
    )


@click.command()
@click.option("--days", type=click.IntRange(7, 3650), default=90, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=42, show_default=True)
@click.option("--rounds", type=click.IntRange(1, 1000), default=15, show_default=True)
def main(days: int, seed: int, rounds: int) -> None:
    """Fit the default forest and boosting models, time their predictions, print the figures."""
    history = generate_history(HISTORY_END - timedelta(days=days), HISTORY_END, seed=seed)
    X = feature_matrix([row.booking for row in history.rows], history.row_weather)
    y = np.array([row.actual_delay_minutes for row in history.rows])
    split = int(len(X) * 0.8)
    X_train, y_train, X_hold, y_hold = X[:split], y[:split], X[split:], y[split:]
    click.echo(f"{len(X)} rows of {days} days: {split} to fit, {len(X) - split} held out")

    inputs = ModelInputs()
    M_train = inputs.transform(X_train)
    forest = ForestPredictor(fit_forest(M_train, y_train, ForestConfig()), "bench", inputs)
    point = fit_boosting(M_train, y_train, BoostingConfig())
    spread = fit_spread(M_train, y_train, point.predict(M_train), SPREAD_CONFIG)
    boosting = BoostingPredictor(point, version="bench", spread_estimator=spread)
    for name, model in (("forest", forest.estimator), ("boosting", point), ("spread", spread)):
        click.echo(f"{name}: {_shape(model)}")

    cases: dict[str, Predict] = {"forest": forest.predict, "boosting + spread": boosting.predict}
    seconds = time_rounds(cases, X_hold, rounds)
    for name, predict in cases.items():
        delays, confidences = predict(X_hold)
        estimator = forest.estimator if name == "forest" else point
        same = bool(np.array_equal(delays, estimator.predict(inputs.transform(X_hold))))
        click.echo(
            f"{name:<18} one booking {describe(seconds[name]['one'])}; "
            f"batch of {BATCH_ROWS}: {describe(seconds[name]['batch'])} per booking"
        )
        click.echo(
            f"{'':<18} holdout MAE {np.mean(np.abs(delays - y_hold)):.4f} min, "
            f"mean confidence {confidences.mean():.3f}, equal to scikit-learn's predict: {same}"
        )


def _shape(model: object) -> str:
    from models.compiled_boosting import compile_boosting
    from models.compiled_forest import compile_forest

    compile_ = compile_forest if hasattr(model, "estimators_") else compile_boosting
    compiled = compile_(model)
    return f"{compiled.n_trees} trees, depth {compiled.depth}, {compiled.node_count:,} nodes"


if __name__ == "__main__":
    main()
