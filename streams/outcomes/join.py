"""Joining predictions with actual delays by booking_id, whichever arrives first.

The state is one mapping from booking_id (bytes) to an entry: a pending prediction, a pending
actual (dicts), or ``done`` (already joined, so a second prediction or a second actual is counted
once): a done marker is the wall-clock time of its join alone, a float, the smallest value a
changelog and a table hold (a ``{"side": "done", "t": <event time>}`` dict written by an earlier
version counts duplicates the same, and expires with the horizon).
In the worker the mapping is a changelog-backed Faust table; here it is any MutableMapping, so the
logic is tested without Kafka. :class:`JoinBatch` reads through to the table but stages its
writes, so the caller can apply them only after the batch's outcomes are acknowledged by Kafka:
a crash in between recomputes the same outcomes (stored once by PostgreSQL) and loses none.

Entries carry ``t``, their event time in epoch seconds on the pickup clock (a prediction's
scheduled pickup, an actual's observed pickup); :func:`expired_keys` finds those older than the
horizon relative to the stream's event time: the newest observed actual (a booking can be made
weeks ahead, so a prediction's pickup time never moves the stream's time). Stamping predictions with
their prediction time instead would mix two clocks: an actual observed at a pickup days ahead
would make every fresh prediction look days old.

A ``done`` marker only has to outlive the duplicates it guards against (a prediction sent again
after a worker's crash, an actual a producer retried), which come within minutes of the
original, on the wall clock, whatever their event time (a backfill sends a day of pickups in
seconds): it expires ``JOIN_DONE_RETENTION_MINUTES`` of wall-clock time after its join. Pending
entries wait the whole horizon, in event time. So the table holds the bookings still in flight
and the last minutes' joins, not a week of joins: at 500 outcomes/s a week of markers would take
some 45 GB.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas import ActualDelay, Outcome, Prediction

PREDICTION = "prediction"
ACTUAL = "actual"
DONE = "done"

_DELETED = object()


def side_of(entry: Any) -> str:
    """``prediction``, ``actual`` or ``done`` (a float, or an earlier version's dict).

    >>> side_of(1.7e9), side_of({"side": "done", "t": 1.7e9}), side_of({"side": "actual", "t": 0})
    ('done', 'done', 'actual')
    """
    if isinstance(entry, int | float):
        return DONE
    return str(entry.get("side", "unknown"))


def time_of(entry: Any, default: float) -> float:
    """An entry's time (epoch seconds): a pending entry's event time, a done marker's wall-clock
    time of its join (an earlier version's dict marker: its event time)."""
    if isinstance(entry, int | float):
        return float(entry)
    return float(entry.get("t", default))


def prediction_entry(p: Prediction) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "side": PREDICTION,
        # Pickup time, the clock both sides share: an actual is observed at its pickup.
        "t": p.scheduled_pickup_at.timestamp(),
        "arm": p.arm.value,
        "served_by": p.served_by.value,
        "model_version": p.model_version,
        "bucket": p.bucket,
        "pct": p.ml_traffic_percentage,
        "fallback": p.fallback_reason.value if p.fallback_reason else None,
        "predicted": p.predicted_delay_minutes,
        "p90": p.delay_p90_minutes,
        "scheduled": p.scheduled_pickup_at.isoformat(),
        "predicted_at": p.predicted_at.isoformat(),
    }
    if p.shadow_model_version is not None and p.shadow_delay_minutes is not None:
        # Only with a challenger in shadow: the table's entries stay as small as before.
        entry["shadow_v"] = p.shadow_model_version
        entry["shadow"] = p.shadow_delay_minutes
    return entry


def actual_entry(a: ActualDelay) -> dict[str, Any]:
    return {
        "side": ACTUAL,
        "t": a.observed_at.timestamp(),
        "actual": a.actual_delay_minutes,
        "observed_at": a.observed_at.isoformat(),
    }


def outcome_of(booking_id: str, p: Mapping[str, Any], a: Mapping[str, Any]) -> Outcome:
    error = p["predicted"] - a["actual"]
    shadow = p.get("shadow")
    return Outcome(
        booking_id=booking_id,
        arm=p["arm"],
        served_by=p["served_by"],
        model_version=p["model_version"],
        bucket=p["bucket"],
        ml_traffic_percentage=p["pct"],
        fallback_reason=p["fallback"],
        predicted_delay_minutes=p["predicted"],
        # Entries pending since before predictions carried a P90 have no "p90".
        predicted_p90_minutes=p.get("p90"),
        actual_delay_minutes=a["actual"],
        error=error,
        abs_error=abs(error),
        shadow_model_version=p.get("shadow_v") if shadow is not None else None,
        shadow_predicted_delay_minutes=shadow,
        shadow_abs_error=None if shadow is None else abs(shadow - a["actual"]),
        scheduled_pickup_at=datetime.fromisoformat(p["scheduled"]),
        predicted_at=datetime.fromisoformat(p["predicted_at"]),
        observed_at=datetime.fromisoformat(a["observed_at"]),
    )


@dataclass
class JoinBatch:
    """One batch of joins over ``table``, with the writes staged in :attr:`changes`; ``now`` is
    the wall-clock time (epoch seconds) its done markers carry."""

    table: Mapping[bytes, Any]
    now: float
    changes: dict[bytes, Any] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    newest_event_time: float = float("-inf")

    def _get(self, key: bytes) -> Any:
        if key in self.changes:
            value = self.changes[key]
            return None if value is _DELETED else value
        return self.table.get(key)

    def _set(self, key: bytes, value: Any) -> None:
        self.changes[key] = value

    def add_prediction(self, p: Prediction) -> None:
        if p.replay:
            self.counters["replayed_predictions_skipped"] += 1  # replays never join live outcomes
            return
        key = p.booking_id.encode()
        entry = prediction_entry(p)
        # A prediction's pickup may be weeks ahead: only observed actuals move the stream's time.
        self._arrive(key, p.booking_id, entry, PREDICTION, ACTUAL)

    def add_actual(self, a: ActualDelay) -> None:
        key = a.booking_id.encode()
        entry = actual_entry(a)
        self.newest_event_time = max(self.newest_event_time, entry["t"])
        self._arrive(key, a.booking_id, entry, ACTUAL, PREDICTION)

    def _arrive(
        self, key: bytes, booking_id: str, entry: dict[str, Any], side: str, other: str
    ) -> None:
        current = self._get(key)
        if current is None:
            self._set(key, entry)
            self.counters[f"pending_{side}s"] += 1
            return
        if side_of(current) in (DONE, side):
            self.counters[f"duplicate_{side}s"] += 1
            return
        # The other side is waiting: join, and remember the booking as done (when, alone).
        p, a = (entry, current) if side == PREDICTION else (current, entry)
        self.outcomes.append(outcome_of(booking_id, p, a))
        self._set(key, float(self.now))
        self.counters["outcomes"] += 1

    def apply(self, table: MutableMapping[bytes, Any]) -> None:
        """Write the staged changes into ``table`` (after the outcomes were acknowledged)."""
        for key, value in self.changes.items():
            if value is _DELETED:
                table.pop(key, None)
            else:
                table[key] = value


def is_expired(
    entry: Any, *, stream_time: float, horizon_s: float, now: float, done_retention_s: float
) -> bool:
    """True when ``entry`` is older than ``horizon_s`` of event time before ``stream_time``, or,
    a done marker, older than ``done_retention_s`` of wall-clock time before ``now``.

    >>> marker, pending = 1000.0, {"side": PREDICTION, "t": 0.0}
    >>> [is_expired(e, stream_time=600.0, horizon_s=3600.0, now=1400.0, done_retention_s=300.0)
    ...  for e in (marker, pending)]
    [True, False]
    """
    if entry is None or entry == {}:
        return False
    if isinstance(entry, int | float):
        return float(entry) < now - done_retention_s
    return time_of(entry, stream_time) < stream_time - horizon_s


def expired_keys(
    items: Iterable[tuple[bytes, Any]],
    *,
    stream_time: float,
    horizon_s: float,
    now: float,
    done_retention_s: float,
) -> tuple[list[bytes], Counter[str]]:
    """Keys whose entries expired (:func:`is_expired`), counted by side."""
    keys: list[bytes] = []
    counts: Counter[str] = Counter()
    for key, entry in items:
        if is_expired(
            entry,
            stream_time=stream_time,
            horizon_s=horizon_s,
            now=now,
            done_retention_s=done_retention_s,
        ):
            keys.append(key)
            counts[f"expired_{side_of(entry)}s"] += 1
    return keys, counts
