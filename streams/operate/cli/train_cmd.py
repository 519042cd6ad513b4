"""``delaycast train``: fit the candidates on a history CSV, keep the best, promote it if earned.

Exit status: 0 when the model is champion (or ``--no-champion`` asked for a candidate only),
:data:`EXIT_NOT_PROMOTED` when the promotion gate kept it from being champion (the artifact is
saved all the same), 1 on any error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from models.training import TrainingConfig, TrainingResult

EXIT_NOT_PROMOTED = 3


def training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a training: holdout, candidates, zone cells, trees and seed."""
    for option in reversed(_TRAINING_OPTIONS):
        command = option(command)
    return command


def training_config(
    holdout_fraction: float, candidates: str, zone_cell_km: float, trees: int, seed: int
) -> TrainingConfig:
    """The training options as a config; a bad --candidates is refused with what is expected."""
    from models.boosting import BoostingConfig
    from models.forest import ForestConfig
    from models.training import ML_CANDIDATES, TrainingConfig

    chosen = tuple(c.strip() for c in candidates.split(",") if c.strip())
    if not chosen or any(c not in ML_CANDIDATES for c in chosen):
        raise click.BadParameter(
            f"expected a comma-separated list among {', '.join(ML_CANDIDATES)}, got {candidates!r}",
            param_hint="--candidates",
        )
    return TrainingConfig(
        holdout_fraction=holdout_fraction,
        forest=ForestConfig(n_estimators=trees, random_state=seed),
        boosting=BoostingConfig(random_state=seed),
        candidates=chosen,
        seed=seed,
        zone_cell_km=zone_cell_km,
    )


_TRAINING_OPTIONS = [
    click.option(
        "--holdout-fraction",
        type=click.FloatRange(0.01, 0.9),
        default=0.2,
        show_default=True,
        help="The most recent share of rows (by pickup time) kept out of training for evaluation.",
    ),
    click.option(
        "--candidates",
        default="forest,boosting,boosting_zones",
        show_default=True,
        help="The ML candidates to train, comma-separated, among: forest, boosting, boosting_zones "
        "(boosting that also reads the zone encodings learned from the history).",
    ),
    click.option(
        "--zone-cell-km",
        type=click.FloatRange(0.1, 100.0),
        default=1.0,
        show_default=True,
        help="Side of the square cells whose delays boosting_zones encodes (pickup, dropoff, "
        "pickup × hour).",
    ),
    click.option("--trees", type=click.IntRange(1, 1000), default=100, show_default=True),
    click.option(
        "--seed", type=int, default=0, show_default=True, help="Random state of the fits."
    ),
]


@click.command()
@click.option(
    "--history",
    "history_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="History CSV: one booking per row with its actual delay.",
)
@click.option(
    "--weather",
    "weather_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Weather history CSV; without it every booking gets the default weather.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Model directory [default: MODEL_DIR from the settings].",
)
@training_options
@click.option(
    "--champion/--no-champion",
    default=True,
    show_default=True,
    help="Make the new model the champion the workers serve, if it passes the gate.",
)
@click.option(
    "--force",
    "force_reason",
    metavar="REASON",
    help="Make it champion even when the gate refuses; REASON is written to the audit log.",
)
def train(
    history_csv: Path,
    weather_csv: Path | None,
    out: Path | None,
    holdout_fraction: float,
    candidates: str,
    zone_cell_km: float,
    trees: int,
    seed: int,
    champion: bool,
    force_reason: str | None,
) -> None:
    """Train the candidates on a history CSV and keep the best; promote it if it earns it.

    The most recent 20 % of the history (by scheduled pickup) is held out. On it, the constant
    median, the fitted heuristic and each ML candidate are scored (MAE, R², bias); the ML
    candidate with the lowest MAE is saved. It becomes champion only when it beats both the
    heuristic and the constant beyond doubt: the 95 % block-bootstrap interval of its MAE lead
    over each lies above 0. Local time and the distance to the centre are those of the
    service area (SERVICE_AREA_* settings), which the artifact records.

    Progress goes to stderr, then a table of the candidates; a JSON summary goes to stdout.

    \b
    Exit status:
      0  the model is champion, or --no-champion asked for a candidate only
      3  the promotion gate refused it: it is saved, not champion (the reasons are printed)
      1  an error (unreadable history, too few rows, a bad option)

    \b
    Examples:
      delaycast train --history history.csv --weather weather.csv --out .delaycast/models
      delaycast train --history history.csv --no-champion              # a candidate only
      delaycast train --history history.csv --force "holdout week was a strike"
    """
    from connectors.datasets import DatasetError, read_history
    from connectors.model_store import record_audit, save_artifact, set_champion
    from connectors.weather.recorded import WeatherHistoryError, history_weather
    from models.training import train as train_model
    from streams.clock import utc_now
    from streams.operate.cli.progress import Stages, heartbeat
    from streams.settings import get_settings

    config = training_config(holdout_fraction, candidates, zone_cell_km, trees, seed)
    if force_reason is not None and not force_reason.strip():
        raise click.BadParameter("expected a reason for the audit log", param_hint="--force")
    if force_reason is not None and not champion:
        raise click.BadParameter("--force makes a champion; it cannot go with --no-champion")
    settings = get_settings()
    area = settings.service_area
    out = out if out is not None else settings.model_dir

    step = Stages()

    try:
        step("history", f"reading {history_csv}")
        rows = read_history(history_csv)
        step("weather", f"looking up {len(rows)} bookings in {weather_csv or 'default weather'}")
        weathers = history_weather(rows, weather_csv)
    except (DatasetError, WeatherHistoryError) as exc:
        raise click.ClickException(str(exc)) from None
    defaulted = sum(w.is_default for w in weathers)
    if weather_csv is not None and defaulted:
        step("weather", f"{defaulted} bookings had no observation nearby: default weather")

    fit_started = time.perf_counter()
    try:
        with heartbeat(step.still, every_s=10.0):
            result = train_model(rows, weathers, config, progress=step, area=area)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    fit_seconds = time.perf_counter() - fit_started
    step("save", f"writing the artifact under {out}")
    info = save_artifact(out, result, created_at=utc_now(), make_champion=False)
    gate = result.gate
    forced = champion and not gate.passed and force_reason is not None
    promoted = champion and (gate.passed or forced)
    if forced:
        record_audit(
            out,
            "forced champion",
            version=info.version,
            reason=force_reason,
            gate_reasons=list(gate.reasons),
        )
    if promoted:
        set_champion(out, info.version)
    step("done", f"{info.version}{' (champion)' if promoted else ''}")

    summary = {
        "model_version": info.version,
        "artifact": str(info.path),
        "champion": promoted,
        "forced": forced,
        **result.summary(),
        "default_weather_rows": defaulted,
        "model_bytes": info.model_bytes,
        "train_seconds": round(fit_seconds, 2),
        "total_seconds": round(step.seconds, 2),
    }
    click.echo(json.dumps(summary, indent=2))
    for line in report_lines(result):
        click.echo(line, err=True)
    if promoted:
        note = " (FORCED past the gate; audited)" if forced else ""
        click.echo(f"{info.version} is champion{note}", err=True)
    elif not champion:
        click.echo(f"{info.version} saved as a candidate (--no-champion)", err=True)
    else:
        click.echo(f"{info.version} saved, NOT champion: the promotion gate refused it", err=True)
        for reason in gate.reasons:
            click.echo(f"  - {reason}", err=True)
        click.echo(
            "  the workers keep their current champion, or without one the default rules "
            f"(heuristic-default); `delaycast model promote {info.version}` or `train --force "
            '"REASON"` overrides',
            err=True,
        )
        raise SystemExit(EXIT_NOT_PROMOTED)


def report_lines(result: TrainingResult) -> list[str]:
    """The candidates' holdout scores as a table, then the model's leads with their intervals."""
    lines = [
        f"holdout: {result.holdout_rows} rows from {result.holdout_start:%Y-%m-%d %H:%M} UTC; "
        f"trained on {result.train_rows}",
        f"  {'candidate':<10} {'MAE':>7} {'R²':>7} {'bias':>7}",
    ]
    for name, scores in result.candidates.items():
        mark = " <- model" if name == result.model_kind else ""
        lines.append(f"  {name:<10} {scores.mae:7.2f} {scores.r2:7.3f} {scores.bias:+7.2f}{mark}")
    for lead in result.leads.values():
        lines.append(
            f"  lead of {result.model_kind} over the {lead.over}: {lead.minutes:+.2f} min, 95 % "
            f"interval [{lead.low:+.2f}, {lead.high:+.2f}] ({lead.blocks} {lead.block}s resampled)"
        )
    if result.heuristic_note:
        lines.append(f"  note: {result.heuristic_note}")
    return lines
