"""Retraining from the system's own history: the served features and the actual delays.

Every live prediction is stored with the features it was served with, weather included, as
they were then (point-in-time correct: no later weather or correction leaks in), and every
outcome with its actual delay. :func:`retrain` trains the candidates of ``delaycast train`` on
the bookings of a window, holds out its latest part, saves the best candidate and registers it
as the **challenger**: judged against the champion, never served by that alone. The holdout
compares it with the champion by the paired difference of their errors on the same bookings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from connectors.model_store import (
    champion_version,
    load_version,
    record_audit,
    save_artifact,
    set_challenger,
)
from connectors.postgres.history import Bind, ServedRow, served_rows
from models.area import ServiceArea
from models.paired import paired_difference
from models.training import Progress, Split, TrainingConfig, holdout_start, train_split
from streams.outcomes.counterfactual import feature_rows


class RetrainRefused(ValueError):
    """Not retrained: the message says why and what to do."""


@dataclass(frozen=True)
class Served:
    split: Split
    booking_ids: list[str]
    left_out: int  # rows without every feature


def served_split(rows: Sequence[ServedRow], holdout_fraction: float) -> Served:
    """The complete rows in order of scheduled pickup, the latest ``holdout_fraction`` held out."""
    x, complete = feature_rows(rows)
    kept = [int(i) for i in np.flatnonzero(complete)]
    pickup = np.array([rows[i].scheduled_pickup_at.timestamp() for i in kept], dtype=np.float64)
    order = np.argsort(pickup, kind="stable")
    index = np.array(kept, dtype=np.int64)[order]
    y = np.array([rows[int(i)].actual_delay_minutes for i in index], dtype=np.float64)
    split = Split(
        X=x[index] if index.size else x[:0],
        y=y,
        pickup_s=pickup[order],
        split=holdout_start(len(y), holdout_fraction) if len(y) else 0,
    )
    return Served(split, [rows[int(i)].booking_id for i in index], len(rows) - len(kept))


def retrain(
    bind: Bind,
    *,
    out: Path,
    since: datetime,
    until: datetime,
    config: TrainingConfig,
    min_outcomes: int,
    area: ServiceArea,
    now: datetime,
    progress: Progress,
) -> dict[str, Any]:
    """Train on the window's served bookings, register the best as challenger in ``out``, and
    return the JSON summary. Raises :class:`RetrainRefused` when there is too little to learn
    from."""
    if until <= since:
        raise RetrainRefused(f"--until ({until.isoformat()}) must be after --since")
    progress("history", f"reading the served bookings from {since.isoformat()} to {until}")
    served = served_split(served_rows(bind, since=since, until=until), config.holdout_fraction)
    n = len(served.split.y)
    if n < min_outcomes:
        raise RetrainRefused(
            f"{n} bookings with served features and an actual delay between {since.isoformat()} "
            f"and {until.isoformat()} ({served.left_out} more without every feature); at least "
            f"{min_outcomes} are needed (--min-outcomes): widen the window or wait for outcomes"
        )
    try:
        result = train_split(served.split, config, progress, area)
    except ValueError as exc:  # too few rows for the holdout, say
        raise RetrainRefused(str(exc)) from None
    progress("save", f"writing the artifact under {out}")
    info = save_artifact(out, result, created_at=now, make_champion=False)
    set_challenger(out, info.version)
    record_audit(
        out,
        "challenger",
        version=info.version,
        since=since.isoformat(),
        until=until.isoformat(),
        outcomes=n,
    )
    progress("done", f"{info.version} is challenger")
    return {
        "challenger": info.version,
        "artifact": str(info.path),
        "since": since.isoformat(),
        "until": until.isoformat(),
        "outcomes": n,
        "left_out": served.left_out,
        **result.summary(),
        "against_champion": _against_champion(out, area, served.split, result.predictor),
    }


def _against_champion(
    model_dir: Path, area: ServiceArea, split: Split, challenger: Any
) -> dict[str, Any] | None:
    """The challenger against the champion on the holdout's bookings, paired; None without a
    champion (or one that no longer loads: its reason is given instead)."""
    version = champion_version(model_dir)
    if version is None:
        return None
    try:
        champion = load_version(model_dir, version, area)
    except Exception as exc:
        return {"champion": version, "error": f"{type(exc).__name__}: {exc}"}
    y = split.y_hold
    ours = np.abs(np.asarray(challenger.predict(split.X_hold)[0], dtype=np.float64) - y)
    theirs = np.abs(np.asarray(champion.predictor.predict(split.X_hold)[0], dtype=np.float64) - y)
    comparison = paired_difference("challenger", ours, "champion", theirs)
    # A champion trained on these very bookings looks better on them than it is.
    window = champion.metadata.get("training_window") or {}
    trained_from, trained_until = window.get("start"), window.get("end")
    overlaps = trained_on_holdout(trained_from, trained_until, split)
    return {
        "champion": version,
        "champion_trained_from": trained_from,
        "champion_trained_until": trained_until,
        "champion_saw_the_holdout": overlaps,
        **comparison.as_dict(),
    }


def trained_on_holdout(trained_from: str | None, trained_until: str | None, split: Split) -> bool:
    """Whether a model trained on pickups from ``trained_from`` to ``trained_until`` (ISO 8601;
    None when its metadata does not say) saw any of the holdout's pickups.

    >>> hold = Split(X=np.zeros((4, 1)), y=np.zeros(4), split=2,
    ...              pickup_s=np.array([0.0, 3600.0, 7200.0, 10800.0]))  # 00:00 to 03:00 UTC
    >>> trained_on_holdout("1970-01-01T00:00:00+00:00", "1970-01-01T02:30:00+00:00", hold)
    True
    >>> trained_on_holdout("1970-01-01T00:00:00+00:00", "1970-01-01T01:30:00+00:00", hold)
    False
    >>> trained_on_holdout(None, "1970-01-01T02:30:00+00:00", hold)
    False
    """
    if trained_from is None or trained_until is None or len(split.y) == split.split:
        return False
    holdout_from = datetime.fromtimestamp(float(split.pickup_s[split.split]), UTC)
    holdout_until = datetime.fromtimestamp(float(split.pickup_s[-1]), UTC)
    return (
        datetime.fromisoformat(trained_from) <= holdout_until
        and datetime.fromisoformat(trained_until) >= holdout_from
    )
