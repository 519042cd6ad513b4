"""Prediction drift: abrupt changes in the distribution of predicted delays, per subject.

Subjects are what the caller keys predictions by, normally the arm (the two predictors have
different distributions, and the traffic split would otherwise move the mix). Each subject's
bins are the deciles of a reference sample of its predictions: given by the caller (e.g. the
model's predictions on its holdout) or learned from its first ``reference_windows`` windows.
Then every tumbling window of ``window`` predictions is binned and its PSI compared with
``threshold``, against a trailing reference: the mean histogram of the previous
``trailing_windows`` windows (it starts as the reference sample's). Counting is vectorized, so no
sub-sampling is needed (a KSWIN-style test per prediction would run a Kolmogorov–Smirnov test per
event and compound its false-alarm rate over millions of events).

Why trailing: predictions legitimately move through the day with the hour and the weather of the
pickups (a rush hour in the rain raises them by minutes). Against a fixed reference that
movement alone reaches a PSI of 0.6 on ordinary days of the synthetic world, as large as real
problems; against the last ``trailing_windows`` windows (about 20 minutes at 10 bookings/s) it
stays near 0.1, while an abrupt change — a broken or mis-scaled feature, a wrong model file, a
producer sending different bookings — stands out at once (see
:mod:`streams.tools.drift_calibration.calibrate`). A change slow enough to be absorbed by the
trailing reference is the feature monitor's and the error monitor's to see.
``trailing_windows=None`` compares with the fixed reference instead. Call
:meth:`PredictionDriftMonitor.reset` for a subject when its predictor changes on purpose (a new
champion).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from models.drift.cooldown import Cooldown
from models.drift.persist import (
    dict_of,
    dump_state,
    encode_float,
    encode_floats,
    float_list,
    int_list,
    int_of,
    list_of,
    load_state,
    optional_float_of,
)
from models.drift.psi import Reference, bin_counts, largest_shift, psi
from models.drift.signal import DriftSignal
from models.drift.window import window_segments
from schemas.alert import AlertKind


@dataclass(frozen=True)
class PredictionDriftConfig:
    window: int = 500
    threshold: float = 0.25
    reference_windows: int = 6
    trailing_windows: int | None = 12
    cooldown: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if self.window < 10 or self.threshold <= 0 or self.reference_windows < 1:
            raise ValueError("window must be >= 10, threshold > 0, reference_windows >= 1")
        if self.trailing_windows is not None and self.trailing_windows < 1:
            raise ValueError("trailing_windows must be at least 1 (or None)")


@dataclass
class _Subject:
    reference: Reference | None = None
    learning: list[np.ndarray] = field(default_factory=list)  # predictions kept for a reference
    learned: int = 0
    counts: np.ndarray | None = None
    trailing: deque[np.ndarray] = field(default_factory=deque)  # histograms of past windows
    filled: int = 0
    windows: int = 0
    last_psi: float | None = None
    alarms: int = 0


class PredictionDriftMonitor:
    """PSI of each subject's predictions against its reference (see the module docstring).

    >>> from datetime import UTC
    >>> m = PredictionDriftMonitor(PredictionDriftConfig(window=1000, reference_windows=2))
    >>> rng = np.random.default_rng(0)
    >>> t = [datetime(2026, 3, 12, 8, tzinfo=UTC)] * 6000
    >>> before = m.update(["ml"] * 6000, rng.normal(6, 2, 6000), t)
    >>> after = m.update(["ml"] * 1000, rng.normal(8, 2, 1000), t[:1000])
    >>> before, [(s.subject, s.statistic > 0.5) for s in after]
    ([], [('ml', True)])
    """

    _NAME = "prediction_drift"

    def __init__(
        self,
        config: PredictionDriftConfig | None = None,
        references: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.config = config or PredictionDriftConfig()
        self._subjects: dict[str, _Subject] = {}
        digest = hashlib.sha256()
        for subject, values in sorted((references or {}).items()):
            ref = Reference.from_sample(np.asarray(values, dtype=np.float64), subject)
            self._subjects[subject] = self._ready(_Subject(), ref)
            digest.update(subject.encode() + b"|" + ref.edges.tobytes() + ref.fractions.tobytes())
        self._fingerprint = {**asdict(self.config), "references": digest.hexdigest()}
        self._cooldown = Cooldown(self.config.cooldown)

    def update(
        self,
        subjects: Sequence[str],
        predicted: np.ndarray | Sequence[float],
        event_times: Sequence[datetime],
    ) -> list[DriftSignal]:
        """Feed predictions in event-time order with their subject (arm) and event time (the
        booking's creation). Returns the alarms of the windows they closed."""
        values = np.asarray(predicted, dtype=np.float64)
        if not len(subjects) == len(values) == len(event_times):
            raise ValueError("subjects, predicted and event_times need one entry per prediction")
        keys = np.asarray(subjects, dtype=object)
        signals: list[DriftSignal] = []
        for subject in dict.fromkeys(keys.tolist()):  # first-seen order: deterministic
            rows = np.flatnonzero(keys == subject)
            state = self._subjects.setdefault(str(subject), _Subject())
            signals.extend(
                self._feed(
                    str(subject), state, values[rows], [event_times[i] for i in rows.tolist()]
                )
            )
        signals.sort(key=lambda s: s.event_time)
        return signals

    def _feed(
        self, subject: str, state: _Subject, values: np.ndarray, times: list[datetime]
    ) -> list[DriftSignal]:
        if state.reference is None:
            needed = self.config.window * self.config.reference_windows - state.learned
            state.learning.append(values[:needed])
            state.learned += min(needed, len(values))
            if state.learned < self.config.window * self.config.reference_windows:
                return []
            reference = Reference.from_sample(np.concatenate(state.learning), subject)
            self._ready(state, reference)
            values, times = values[needed:], times[needed:]
        assert state.counts is not None and state.reference is not None
        signals: list[DriftSignal] = []
        for start, end, closes in window_segments(state.filled, self.config.window, len(values)):
            state.counts += bin_counts(values[start:end], state.reference)
            state.filled += end - start
            if not closes:
                continue
            state.windows += 1
            expected = np.sum(state.trailing, axis=0)
            expected = expected / expected.sum()
            state.last_psi = psi(state.counts, expected)
            if self.config.trailing_windows is not None:
                state.trailing.append(state.counts.astype(np.float64))
            at = times[end - 1]
            if state.last_psi > self.config.threshold and self._cooldown.allow(subject, at):
                state.alarms += 1
                signals.append(
                    DriftSignal(
                        kind=AlertKind.PREDICTION_DRIFT,
                        subject=subject,
                        statistic=state.last_psi,
                        threshold=self.config.threshold,
                        event_time=at,
                        evidence={
                            "statistic": "psi",
                            "window_predictions": float(self.config.window),
                            "reference": "fixed"
                            if self.config.trailing_windows is None
                            else f"previous {self.config.trailing_windows} windows",
                            **largest_shift(state.counts, state.reference, expected),
                        },
                    )
                )
            state.counts[:] = 0
            state.filled = 0
        return signals

    def _ready(self, state: _Subject, reference: Reference) -> _Subject:
        """Start testing with ``reference``: its bins, and its shares as the trailing history."""
        state.reference = reference
        state.counts = np.zeros(reference.bins, dtype=np.int64)
        state.learning = []
        history = self.config.trailing_windows or 1
        state.trailing = deque([reference.fractions * self.config.window] * history, maxlen=history)
        return state

    def reset(self, subject: str) -> None:
        """Forget a subject's reference and open window; it learns a new reference from its
        next predictions (use when its predictor is replaced on purpose)."""
        self._subjects.pop(subject, None)

    def get(self) -> dict[str, Any]:
        """Per subject: whether its reference is ready, windows closed, the last PSI, alarms
        raised and suppressed, and until when it is cooling down."""
        out: dict[str, Any] = {}
        for subject, s in sorted(self._subjects.items()):
            quiet = self._cooldown.quiet_until(subject)
            out[subject] = {
                "reference_ready": s.reference is not None,
                "reference_predictions_learned": s.learned,
                "windows": s.windows,
                "rows_in_open_window": s.filled,
                "last_psi": s.last_psi,
                "alarms": s.alarms,
                "suppressed": self._cooldown.suppressed.get(subject, 0),
                "cooling_down_until": None if quiet is None else quiet.isoformat(),
            }
        return out

    def state(self) -> bytes:
        """The monitor's state as JSON (see :mod:`models.drift.persist`)."""
        subjects = {name: _subject_data(s) for name, s in self._subjects.items()}
        data = {"subjects": subjects, "cooldown": self._cooldown.to_data()}
        return dump_state(self._NAME, self._fingerprint, data)

    def restore(self, state: bytes) -> None:
        """Continue from :meth:`state`; ValueError when it was saved with another configuration
        or other supplied references, or is not a valid state (the monitor is then left as it
        was)."""
        data = load_state(self._NAME, self._fingerprint, state)
        saved = dict_of(data, "subjects")
        subjects = {str(name): self._subject_from(saved[name]) for name in saved}
        self._cooldown = Cooldown.from_data(self.config.cooldown, dict_of(data, "cooldown"))
        self._subjects = subjects

    def _subject_from(self, data: Any) -> _Subject:
        c = self.config
        history = c.trailing_windows or 1
        needed = c.window * c.reference_windows
        learned = int_of(data, "learned", high=needed)
        last_psi = optional_float_of(data, "last_psi")
        state = _Subject(
            learned=learned,
            windows=int_of(data, "windows"),
            alarms=int_of(data, "alarms"),
            last_psi=last_psi,
        )
        if data.get("reference") is None:  # still learning its reference sample
            learning = [np.asarray(float_list({"v": v}, "v")) for v in list_of(data, "learning")]
            if sum(len(v) for v in learning) != learned:
                raise ValueError("saved reference sample does not match its count")
            state.learning = learning
            return state
        ref = dict_of(data, "reference")
        edges = np.asarray(float_list(ref, "edges"), dtype=np.float64)
        fractions = np.asarray(float_list(ref, "fractions", length=len(edges) + 1))
        if len(edges) < 1 or not np.all(np.diff(edges) > 0) or not np.all(fractions >= 0):
            raise ValueError("saved reference bins are not increasing, or shares negative")
        state.reference = Reference(edges, fractions)
        bins = state.reference.bins
        state.counts = np.asarray(int_list(data, "counts", length=bins), dtype=np.int64)
        state.filled = int_of(data, "filled", high=c.window - 1)
        if int(state.counts.sum()) != state.filled:
            raise ValueError("saved counts do not add up to the open window's rows")
        trailing = list_of(data, "trailing")
        if not 1 <= len(trailing) <= history:
            raise ValueError("saved trailing history does not fit the configuration")
        state.trailing = deque(
            (np.asarray(float_list({"h": h}, "h", length=bins)) for h in trailing),
            maxlen=history,
        )
        return state


def _subject_data(s: _Subject) -> dict[str, Any]:
    reference = (
        None
        if s.reference is None
        else {
            "edges": encode_floats(s.reference.edges.tolist()),
            "fractions": encode_floats(s.reference.fractions.tolist()),
        }
    )
    return {
        "reference": reference,
        "learning": [encode_floats(v.tolist()) for v in s.learning],
        "learned": s.learned,
        "counts": None if s.counts is None else s.counts.tolist(),
        "trailing": [encode_floats(h.tolist()) for h in s.trailing],
        "filled": s.filled,
        "windows": s.windows,
        "last_psi": None if s.last_psi is None else encode_float(s.last_psi),
        "alarms": s.alarms,
    }
