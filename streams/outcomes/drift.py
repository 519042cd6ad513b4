"""Drift monitoring in the recorder: river-based monitors fed from the stream, state checkpointed.

Error drift (Page–Hinkley on each arm's absolute error) is fed by outcomes; feature drift (PSI
against the champion's training distribution) and prediction drift (PSI per arm) by predictions.
Their state is saved in PostgreSQL's monitor_checkpoints every minute and at stop, and restored at
start, so a restart does not forget what they learned.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.distribution import FeatureDistribution
from models.drift.errors import ErrorDriftMonitor
from models.drift.features import FeatureDriftMonitor
from models.drift.predictions import PredictionDriftMonitor
from models.drift.signal import DriftSignal
from models.features import FEATURE_NAMES
from schemas import Alert, Outcome, Prediction, Severity

log = logging.getLogger("delaycast.drift")


class Checkpointable(Protocol):
    def state(self) -> bytes: ...
    def restore(self, state: bytes) -> None: ...


def signal_alert(signal: DriftSignal, now: datetime) -> Alert:
    raw = f"{signal.kind.value}|{signal.subject}|{signal.event_time.isoformat()}"
    return Alert(
        alert_id=hashlib.sha256(raw.encode()).hexdigest()[:24],
        kind=signal.kind,
        severity=Severity.WARNING,
        subject=signal.subject,
        message=(
            f"{signal.kind.value.replace('_', ' ')} on {signal.subject}: "
            f"{signal.statistic:.3g} crossed {signal.threshold:.3g}"
        ),
        evidence={"statistic": signal.statistic, "threshold": signal.threshold, **signal.evidence},
        event_time=signal.event_time,
        raised_at=now,
    )


def champion_distributions(model_dir: Path) -> tuple[str, dict[str, FeatureDistribution]] | None:
    """The champion's version and training distributions, read from its metadata (no unpickling)."""
    try:
        version = (model_dir / "CHAMPION").read_text().strip()
        meta = json.loads((model_dir / version / "metadata.json").read_text())
        raw = meta["feature_distributions"]
        return version, {name: FeatureDistribution.from_dict(d) for name, d in raw.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("[ML] feature drift not monitored: no readable champion metadata (%s)", exc)
        return None


class DriftWatch:
    """The recorder's drift monitors, as one Monitor."""

    def __init__(self, model_dir: Path) -> None:
        self.errors = ErrorDriftMonitor()
        self.predictions = PredictionDriftMonitor()
        self.features: FeatureDriftMonitor | None = None
        self.model_version = "none"
        champion = champion_distributions(model_dir)
        if champion is not None:
            self.model_version, distributions = champion
            try:
                self.features = FeatureDriftMonitor(distributions)
            except ValueError as exc:
                log.warning("[ML] feature drift not monitored: %s", exc)

    def checkpoints(self) -> dict[str, Checkpointable]:
        named: dict[str, Checkpointable] = {"errors": self.errors, "predictions": self.predictions}
        if self.features is not None:
            named[f"features:{self.model_version}"] = self.features
        return named

    def on_outcomes(self, outcomes: Sequence[Outcome], now: datetime) -> list[Alert]:
        live = sorted((o for o in outcomes if not o.replay), key=lambda o: o.observed_at)
        return [signal_alert(s, now) for s in self.errors.update_outcomes(live)] if live else []

    def on_predictions(self, predictions: Sequence[Prediction], now: datetime) -> list[Alert]:
        live = sorted((p for p in predictions if not p.replay), key=lambda p: p.booking_created_at)
        if not live:
            return []
        times = [p.booking_created_at for p in live]
        signals = self.predictions.update(
            [p.arm.value for p in live], [p.predicted_delay_minutes for p in live], times
        )
        if self.features is not None:
            X = np.array(
                [[p.features.get(name, np.nan) for name in FEATURE_NAMES] for p in live],
                dtype=np.float64,
            )
            signals += self.features.update(X, times)
        return [signal_alert(s, now) for s in signals]


def restore_all(watch: DriftWatch, load: Any, prefix: str) -> int:
    """Restore every monitor whose checkpoint exists and fits; returns how many were restored."""
    restored = 0
    for name, monitor in watch.checkpoints().items():
        state = load(f"{prefix}{name}")
        if state is None:
            continue
        try:
            monitor.restore(state)
            restored += 1
        except (ValueError, TypeError) as exc:  # another configuration or training distribution
            log.warning("[ML] drift monitor %s starts afresh: %s", name, exc)
    return restored


def save_all(watch: DriftWatch, save: Any, prefix: str) -> None:
    for name, monitor in watch.checkpoints().items():
        save(f"{prefix}{name}", monitor.state())
