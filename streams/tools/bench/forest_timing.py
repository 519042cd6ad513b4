"""Micro-benchmark of the forest's prediction:
``python -m streams.tools.bench.forest_timing [--model-dir DIR]``.

A developer's tool (it reads a clock and the model store, so it lives with the bench, not in
``models``): it times, on the default model configuration, scikit-learn's own ``predict``, the
previous per-tree path (each tree's compiled ``predict`` on the float32 batch) and
:class:`models.forest.ForestPredictor` (the compiled forest, delays and confidences), for one row
and per row at 100 and 1,000 rows, and
prints the medians, minima and maxima and the largest differences from scikit-learn. Each case
runs its repetitions back to back (warm CPU caches); the one-row calls are then timed again with
the caches flushed before each call, closer to a worker that did other work between two batches.
It asserts nothing: timings on a shared machine vary; compare medians and ratios of one run.

Without ``--model-dir`` the model is trained as ``delaycast train`` trains it on
``delaycast synthetic history`` (90 days by default, 100 trees of depth 12), which takes a minute
or two; with it, the champion of that model directory is loaded.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import numpy as np
from sklearn.ensemble import RandomForestRegressor

from models.confidence import confidence_from_spread
from models.features import feature_matrix
from models.forest import ForestPredictor
from models.inputs import ModelInputs
from models.predictor import Predictor
from models.synthetic import generate_history

HISTORY_END = datetime(2026, 11, 1, tzinfo=UTC)
BATCH_SIZES = (1, 100, 1000)
FLUSH_BYTES = 64 * 2**20  # read before a cold call: more than the CPU's caches


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one case at one batch size."""

    case: str
    rows: int
    seconds: list[float]

    def per_row_us(self, pick: Callable[[list[float]], float]) -> float:
        return pick(self.seconds) * 1e6 / self.rows


Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def per_tree_loop(estimator: RandomForestRegressor) -> Predict:
    """The previous ``ForestPredictor.predict``: a compiled call per tree, then mean and spread."""
    trees = [member.tree_ for member in estimator.estimators_]

    def predict(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        per_tree = np.empty((len(trees), X32.shape[0]))
        for i, tree in enumerate(trees):
            per_tree[i] = tree.predict(X32)[:, 0]
        return per_tree.sum(axis=0) / len(trees), confidence_from_spread(per_tree.std(axis=0))

    return predict


def time_cases(
    cases: dict[str, Callable[[np.ndarray], object]], X: np.ndarray, repeats: int
) -> list[Timing]:
    """Each case ``repeats`` times in a row per batch size, after one warm-up call, then the
    one-row calls again with the CPU caches flushed before each (as after other work)."""
    timings: list[Timing] = []
    for rows in BATCH_SIZES:
        batch = np.ascontiguousarray(X[:rows])
        for name, call in cases.items():
            call(batch)
            timings.append(Timing(name, rows, [_seconds(call, batch) for _ in range(repeats)]))
    flush = np.ones(FLUSH_BYTES // 8)
    row = np.ascontiguousarray(X[:1])
    for name, call in cases.items():
        seconds = []
        for _ in range(repeats):
            flush.sum()
            seconds.append(_seconds(call, row))
        timings.append(Timing(f"{name}, cold caches", 1, seconds))
    return timings


def _seconds(call: Callable[[np.ndarray], object], batch: np.ndarray) -> float:
    started = time.perf_counter()
    call(batch)
    return time.perf_counter() - started


def train_default(
    days: int, seed: int
) -> tuple[RandomForestRegressor, ModelInputs, np.ndarray, str]:
    """The default model trained on synthetic history, its inputs, and booking features of its
    holdout."""
    from models.training import TrainingConfig, train

    click.echo(f"generating {days} days of synthetic history (seed {seed})", err=True)
    history = generate_history(HISTORY_END - timedelta(days=days), HISTORY_END, seed=seed)
    click.echo(f"training the default forest on {len(history.rows)} rows", err=True)
    result = train(history.rows, history.row_weather, TrainingConfig(candidates=("forest",)))
    tail = history.rows[-2000:]
    X = feature_matrix([row.booking for row in tail], history.row_weather[-2000:])
    origin = f"trained on {result.train_rows} rows of {days} days"
    return result.forest_estimator, ModelInputs(), X, origin


def load_champion_with_rows(model_dir: Path, seed: int) -> tuple[Predictor, np.ndarray]:
    """The champion of ``model_dir`` (whatever its kind), and feature rows of three days of
    synthetic bookings."""
    from connectors.model_store import ArtifactError, load_champion

    try:
        loaded = load_champion(model_dir)
    except ArtifactError as exc:
        raise click.ClickException(f"cannot load the champion of {model_dir}: {exc}") from None
    history = generate_history(HISTORY_END - timedelta(days=3), HISTORY_END, seed=seed)
    X = feature_matrix([row.booking for row in history.rows], history.row_weather)
    return loaded.predictor, X


def load_from(
    model_dir: Path, seed: int
) -> tuple[RandomForestRegressor, ModelInputs, np.ndarray, str]:
    """The champion of ``model_dir``, a forest, its inputs, and booking features of synthetic
    bookings."""
    predictor, X = load_champion_with_rows(model_dir, seed)
    estimator = predictor.estimator
    if not isinstance(estimator, RandomForestRegressor):
        raise click.ClickException(
            f"the champion {predictor.version} is a {type(estimator).__name__}; this bench "
            "times forests (python -m streams.tools.bench.boosting_timing times boosting)"
        )
    return estimator, predictor.inputs, X, f"champion {predictor.version}"


def report(timings: list[Timing]) -> list[str]:
    lines = [
        f"{'case':<50}{'rows':>6}   {'per call, ms':^26}   {'per row, µs':^26}",
        f"{'':<50}{'':>6}   {'median':>8}{'min':>9}{'max':>9}   {'median':>8}{'min':>9}{'max':>9}",
    ]
    for t in timings:
        ms = [statistics.median(t.seconds) * 1e3, min(t.seconds) * 1e3, max(t.seconds) * 1e3]
        us = [t.per_row_us(statistics.median), t.per_row_us(min), t.per_row_us(max)]
        lines.append(
            f"{t.case:<50}{t.rows:>6}   {ms[0]:>8.3f}{ms[1]:>9.3f}{ms[2]:>9.3f}"
            f"   {us[0]:>8.1f}{us[1]:>9.1f}{us[2]:>9.1f}"
        )
    return lines


def differences(predictor: ForestPredictor, X: np.ndarray) -> list[str]:
    """``X``: booking features; scikit-learn gets the forest's own inputs made from them."""
    estimator = predictor.estimator
    delays, confidences = predictor.predict(X)
    one_by_one = np.concatenate([predictor.predict(X[i : i + 1])[0] for i in range(100)])
    per_tree = predictor.tree_predictions(X)
    X = predictor.inputs.transform(X)
    trees = np.array([member.predict(X) for member in estimator.estimators_])
    _, old_confidences = per_tree_loop(estimator)(X)
    return [
        f"max |compiled - sklearn predict|, {len(X)} rows in one batch: "
        f"{np.max(np.abs(delays - estimator.predict(X))):.3g}",
        f"max |compiled - sklearn predict|, 100 single-row calls:      "
        f"{np.max(np.abs(one_by_one - estimator.predict(X[:100]))):.3g}",
        f"max |per-tree value - estimators_[i].predict|:               "
        f"{np.max(np.abs(per_tree - trees)):.3g}",
        f"max |confidence - previous per-tree confidence|:             "
        f"{np.max(np.abs(confidences - old_confidences)):.3g}",
    ]


@click.command()
@click.option(
    "--model-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Benchmark the champion of this model directory instead of training a model.",
)
@click.option("--days", type=click.IntRange(7, 3650), default=90, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=42, show_default=True)
@click.option("--repeats", type=click.IntRange(5, 10_000), default=100, show_default=True)
def main(model_dir: Path | None, days: int, seed: int, repeats: int) -> None:
    """Time sklearn's predict against the compiled forest and print the figures."""
    if model_dir is None:
        estimator, inputs, X, origin = train_default(days, seed)
    else:
        estimator, inputs, X, origin = load_from(model_dir, seed)
    if len(X) < max(BATCH_SIZES):
        raise click.ClickException(f"only {len(X)} feature rows; need {max(BATCH_SIZES)}")
    started = time.perf_counter()
    predictor = ForestPredictor(estimator, "bench", inputs)
    compile_ms = (time.perf_counter() - started) * 1e3
    trees = [member.tree_ for member in estimator.estimators_]
    click.echo(
        f"model: {len(trees)} trees, depth {max(t.max_depth for t in trees)}, "
        f"{sum(t.node_count for t in trees):,} nodes, {estimator.n_features_in_} features "
        f"({origin}); compiled in {compile_ms:.0f} ms; {repeats} repetitions"
    )
    loop = per_tree_loop(estimator)
    # Every case starts from the booking features; selecting the model's columns is a view.
    cases: dict[str, Callable[[np.ndarray], object]] = {
        "sklearn RandomForestRegressor.predict": lambda X: estimator.predict(inputs.transform(X)),
        "previous: per-tree tree_.predict loop": lambda X: loop(inputs.transform(X)),
        "compiled: ForestPredictor.predict": predictor.predict,
    }
    timings = time_cases(cases, X, repeats)
    for line in report(timings):
        click.echo(line)
    medians = {(t.case, t.rows): statistics.median(t.seconds) for t in timings}
    for suffix, rows in [("", rows) for rows in BATCH_SIZES] + [(", cold caches", 1)]:
        sklearn_s = medians[f"sklearn RandomForestRegressor.predict{suffix}", rows]
        compiled_s = medians[f"compiled: ForestPredictor.predict{suffix}", rows]
        click.echo(
            f"sklearn / compiled, medians, {rows:>4} rows{suffix}: {sklearn_s / compiled_s:6.1f}x"
        )
    for line in differences(predictor, X[:1000]):
        click.echo(line)


if __name__ == "__main__":
    main()
