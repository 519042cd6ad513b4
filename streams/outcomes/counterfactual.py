"""Counterfactual evaluation: what would each model have scored on the bookings already served?

Every live prediction is stored with the features it was served with, weather included, as
they were at that moment; every outcome with the actual delay. :func:`evaluate` scores stored
bookings of a window with several models (the heuristic, the champion, any stored version, or
what was served) on identical rows, and compares each pair by the paired difference of their
MAE (:mod:`models.paired`): an A/B test answered from history without touching live traffic.

Rows whose stored features do not give every model a finite input (a booking served the
heuristic because a feature was missing, or stored by a version with other features) are left
out of every model alike, and counted.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from connectors.model_store import champion_version, load_heuristic, load_version
from connectors.postgres.history import Bind, ServedRow, served_rows
from models import heuristic as heuristic_model
from models.area import ServiceArea
from models.features import FEATURE_NAMES
from models.metrics import bias, mae, rmse
from models.paired import PairedDifference, paired_difference

SERVED = "served"
HEURISTIC = "heuristic"
CHAMPION = "champion"
MIN_ROWS = 2  # the least a paired interval needs


class EvaluationError(ValueError):
    """An evaluation that cannot be made as asked; the message says why and what to give."""


@dataclass(frozen=True)
class Scored:
    name: str  # as asked: served, heuristic, champion, or a version
    version: str  # the artifact or heuristic version that scored ("as served" for served)
    predictions: np.ndarray


@dataclass(frozen=True)
class Evaluation:
    since: datetime
    until: datetime
    booking_ids: list[str]
    actual: np.ndarray
    scored: list[Scored]
    differences: list[PairedDifference]
    left_out: int  # rows some model could not score

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rows": len(self.booking_ids),
            "left_out": self.left_out,
            "models": {
                s.name: {
                    "version": s.version,
                    "mae": mae(self.actual, s.predictions),
                    "rmse": rmse(self.actual, s.predictions),
                    "bias": bias(self.actual, s.predictions),
                }
                for s in self.scored
            },
            "differences": [d.as_dict() for d in self.differences],
        }


def parse_models(value: str) -> list[str]:
    """The model names of ``--models``, in order, each once.

    >>> parse_models("heuristic, champion,heuristic")
    ['heuristic', 'champion']
    >>> parse_models(" , ")
    Traceback (most recent call last):
    ...
    streams.outcomes.counterfactual.EvaluationError: no model named; give e.g. heuristic,champion
    """
    names = list(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise EvaluationError("no model named; give e.g. heuristic,champion")
    return names


def feature_rows(rows: Sequence[ServedRow]) -> tuple[np.ndarray, np.ndarray]:
    """The stored features as a matrix in the models' order, and which rows are complete (every
    feature present and finite)."""
    x = np.full((len(rows), len(FEATURE_NAMES)), np.nan)
    for i, row in enumerate(rows):
        for j, name in enumerate(FEATURE_NAMES):
            value = row.features.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                x[i, j] = float(value)
    return x, np.isfinite(x).all(axis=1)


def evaluate(
    bind: Bind,
    *,
    model_dir: Path,
    area: ServiceArea | None,
    models: Sequence[str],
    since: datetime,
    until: datetime,
    confidence: float = 0.95,
) -> Evaluation:
    """Score the window's stored bookings with ``models`` and compare each pair."""
    if until <= since:
        raise EvaluationError(f"--until ({until.isoformat()}) must be after --since")
    # Every model first: a name that loads nothing is refused before the history is read.
    scorers = [_scorer(name, model_dir=model_dir, area=area) for name in models]
    rows = served_rows(bind, since=since, until=until)
    x, complete = feature_rows(rows)
    served = np.array([r.served_delay_minutes for r in rows], dtype=np.float64)
    actual = np.array([r.actual_delay_minutes for r in rows], dtype=np.float64)
    kept = np.flatnonzero(complete)
    if kept.size < MIN_ROWS:
        raise EvaluationError(
            f"{kept.size} booking(s) with served features and an actual delay between "
            f"{since.isoformat()} and {until.isoformat()} ({len(rows)} with an actual delay in "
            f"all); at least {MIN_ROWS} are needed: widen the window"
        )
    scored = [
        Scored(name, version, served[kept] if score is None else score(x[kept]))
        for name, version, score in scorers
    ]
    differences = [
        paired_difference(
            a.name,
            np.abs(a.predictions - actual[kept]),
            b.name,
            np.abs(b.predictions - actual[kept]),
            confidence,
        )
        for a, b in itertools.combinations(scored, 2)
    ]
    return Evaluation(
        since=since,
        until=until,
        booking_ids=[rows[i].booking_id for i in kept],
        actual=actual[kept],
        scored=scored,
        differences=differences,
        left_out=len(rows) - int(kept.size),
    )


Scorer = Callable[[np.ndarray], np.ndarray]


def _scorer(
    name: str, *, model_dir: Path, area: ServiceArea | None
) -> tuple[str, str, Scorer | None]:
    """(name, version, its predictions of a feature matrix); None scores what was served."""
    if name == SERVED:
        return name, "as served", None
    if name == HEURISTIC:
        params = load_heuristic(model_dir)

        def by_heuristic(x: np.ndarray) -> np.ndarray:
            return np.asarray(heuristic_model.predict(params, x)[0], dtype=np.float64)

        return name, params.version, by_heuristic
    version = champion_version(model_dir) if name == CHAMPION else name
    if version is None:
        raise EvaluationError(f"no champion in {model_dir}: train one, or name a version")
    try:
        loaded = load_version(model_dir, version, area)
    except Exception as exc:  # missing, corrupt, another area or feature set
        raise EvaluationError(f"cannot load model {version!r}: {exc}") from None

    def by_model(x: np.ndarray) -> np.ndarray:
        return np.asarray(loaded.predictor.predict(x)[0], dtype=np.float64)

    return name, loaded.version, by_model
