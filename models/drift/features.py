"""Feature drift: incoming bookings against the model's training distribution, per feature.

For each monitored feature, the live values of a tumbling window of ``window`` bookings are
counted into the training bins (:class:`models.drift.psi.Reference`, from the
``feature_distributions`` in the model's metadata) and the window's PSI is compared with
``threshold``. Counting is a ``searchsorted`` and a ``bincount`` per feature and batch, so a
500-row batch costs well under a millisecond and no sub-sampling is needed. Windows hold exactly
``window`` rows whatever the batch sizes, so a replay raises the same alarms.

The default threshold, 0.15, sits between the noise of a stationary window (the largest over
whole synthetic days at 10 bookings/s is 0.05–0.07, on ``lead_time_min``, whose mix follows the
time of day a little) and a moderate shift (stretchers going from 10 % to 30 % of bookings gives
0.32; see :mod:`streams.tools.drift_calibration.calibrate`).

Monitored by default (:data:`DEFAULT_FEATURES`): the features whose distribution does not depend
on the clock or the sky — trip geometry, lead time, vehicle and priority mix, and
``weather_is_default`` (the weather feed's health). Left out: the calendar features (hour, weekday,
month, weekend, rush hour) and the weather measurements. A window of minutes holds one time of day
and one hour's weather, so their PSI against weeks of training data is large at every moment
(typically 1–10): it would measure the clock, not drift. Pass ``features`` to monitor them anyway,
with windows and thresholds sized for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from models.distribution import FeatureDistribution
from models.drift.cooldown import Cooldown
from models.drift.persist import (
    dict_of,
    dump_state,
    encode_float,
    float_of,
    int_list,
    int_of,
    list_of,
    load_state,
)
from models.drift.psi import Reference, bin_counts, largest_shift, psi
from models.drift.signal import DriftSignal
from models.drift.window import window_segments
from models.features import FEATURE_NAMES, PRIORITY_ORDER, VEHICLE_ORDER
from schemas.alert import AlertKind

BINARY_FEATURES: frozenset[str] = frozenset(
    {
        "is_weekend",
        "is_rush_hour",
        *(f"vehicle_{v.value}" for v in VEHICLE_ORDER),
        *(f"priority_{p.value}" for p in PRIORITY_ORDER),
        "weather_is_default",
    }
)
DEFAULT_FEATURES: tuple[str, ...] = (
    "distance_km",
    "pickup_center_km",
    "lead_time_min",
    *(f"vehicle_{v.value}" for v in VEHICLE_ORDER),
    *(f"priority_{p.value}" for p in PRIORITY_ORDER),
    "weather_is_default",
)


@dataclass(frozen=True)
class FeatureDriftConfig:
    features: tuple[str, ...] = DEFAULT_FEATURES
    window: int = 1000
    threshold: float = 0.15
    cooldown: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if self.window < 10 or self.threshold <= 0:
            raise ValueError("window must be >= 10 and threshold > 0")
        if not self.features:
            raise ValueError("no features to monitor")


class FeatureDriftMonitor:
    """PSI per feature over tumbling windows of bookings (see the module docstring)."""

    _NAME = "feature_drift"

    def __init__(
        self,
        distributions: Mapping[str, FeatureDistribution],
        config: FeatureDriftConfig | None = None,
        feature_names: Sequence[str] = FEATURE_NAMES,
    ) -> None:
        """``distributions`` as in the model's metadata; ``feature_names`` names the columns
        of the matrices given to :meth:`update`. Raises ValueError for a monitored feature
        without a distribution or a column."""
        self.config = config or FeatureDriftConfig()
        names = list(feature_names)
        missing = [f for f in self.config.features if f not in distributions or f not in names]
        if missing:
            raise ValueError(f"no training distribution or column for {missing}")
        self._features = self.config.features
        self._columns = np.array([names.index(f) for f in self._features])
        self._references = [
            Reference.binary(distributions[f])
            if f in BINARY_FEATURES
            else Reference.from_distribution(distributions[f])
            for f in self._features
        ]
        digest = hashlib.sha256()
        for ref in self._references:
            digest.update(ref.edges.tobytes() + b"|" + ref.fractions.tobytes() + b"|")
        self._fingerprint = {**asdict(self.config), "reference": digest.hexdigest()}
        self._counts = [np.zeros(ref.bins, dtype=np.int64) for ref in self._references]
        self._filled = 0
        self._windows = 0
        self._last_psi: dict[str, float] = {}
        self._alarms: dict[str, int] = {}
        self._cooldown = Cooldown(self.config.cooldown)

    def update(self, X: np.ndarray, event_times: Sequence[datetime]) -> list[DriftSignal]:
        """Feed a batch of feature rows (columns as ``feature_names``) in event-time order, with
        each booking's event time (its creation). Returns the alarms of the windows it closed."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != len(event_times):
            raise ValueError("need a 2-D feature matrix with one event time per row")
        signals: list[DriftSignal] = []
        size = self.config.window
        for start, end, closes in window_segments(self._filled, size, X.shape[0]):
            block = X[start:end, self._columns]
            for i, ref in enumerate(self._references):
                self._counts[i] += bin_counts(block[:, i], ref)
            self._filled += end - start
            if closes:
                signals.extend(self._close(event_times[end - 1]))
        return signals

    def _close(self, at: datetime) -> list[DriftSignal]:
        signals: list[DriftSignal] = []
        self._windows += 1
        for feature, ref, counts in zip(
            self._features, self._references, self._counts, strict=True
        ):
            value = psi(counts, ref.fractions)
            self._last_psi[feature] = value
            if value > self.config.threshold and self._cooldown.allow(feature, at):
                self._alarms[feature] = self._alarms.get(feature, 0) + 1
                signals.append(
                    DriftSignal(
                        kind=AlertKind.FEATURE_DRIFT,
                        subject=feature,
                        statistic=value,
                        threshold=self.config.threshold,
                        event_time=at,
                        evidence={
                            "statistic": "psi",
                            "window_bookings": float(self.config.window),
                            **largest_shift(counts, ref),
                        },
                    )
                )
            counts[:] = 0
        self._filled = 0
        return signals

    def get(self) -> dict[str, Any]:
        """Windows closed, rows in the open window, and per feature the last PSI, alarms raised
        and suppressed, and until when it is cooling down."""
        per_feature: dict[str, Any] = {}
        for f in self._features:
            quiet = self._cooldown.quiet_until(f)
            per_feature[f] = {
                "last_psi": self._last_psi.get(f),
                "alarms": self._alarms.get(f, 0),
                "suppressed": self._cooldown.suppressed.get(f, 0),
                "cooling_down_until": None if quiet is None else quiet.isoformat(),
            }
        return {
            "windows": self._windows,
            "rows_in_open_window": self._filled,
            "threshold": self.config.threshold,
            "features": per_feature,
        }

    def state(self) -> bytes:
        """The monitor's state as JSON (see :mod:`models.drift.persist`)."""
        data = {
            "counts": [c.tolist() for c in self._counts],
            "filled": self._filled,
            "windows": self._windows,
            "last_psi": {f: encode_float(v) for f, v in self._last_psi.items()},
            "alarms": dict(self._alarms),
            "cooldown": self._cooldown.to_data(),
        }
        return dump_state(self._NAME, self._fingerprint, data)

    def restore(self, state: bytes) -> None:
        """Continue from :meth:`state`; ValueError when it was saved with another configuration
        or other training distributions (a new model: start afresh), or is not a valid state
        (the monitor is then left as it was)."""
        data = load_state(self._NAME, self._fingerprint, state)
        saved = list_of(data, "counts", length=len(self._references))
        counts = [
            np.asarray(int_list({"counts": c}, "counts", length=ref.bins), dtype=np.int64)
            for c, ref in zip(saved, self._references, strict=True)
        ]
        filled = int_of(data, "filled", high=self.config.window - 1)
        if any(int(c.sum()) != filled for c in counts):
            raise ValueError("saved counts do not add up to the open window's rows")
        last_psi, alarms = dict_of(data, "last_psi"), dict_of(data, "alarms")
        if not set(last_psi) | set(alarms) <= set(self._features):
            raise ValueError("saved state names features this monitor does not watch")
        windows = int_of(data, "windows")
        psis = {f: float_of(last_psi, f) for f in last_psi}
        alarm_counts = {f: int_of(alarms, f) for f in alarms}
        cooldown = Cooldown.from_data(self.config.cooldown, dict_of(data, "cooldown"))
        self._counts, self._filled, self._windows = counts, filled, windows
        self._last_psi, self._alarms, self._cooldown = psis, alarm_counts, cooldown
