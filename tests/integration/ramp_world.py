"""A compressed-time world for the guarded ramp: bookings routed by the flags in Redis exactly as
the workers route them (the same salt, hash and percentage), stored as live predictions and
outcomes in PostgreSQL as the recorder stores them, with each arm's errors, label losses and
drift alarms under the test's control. The controller under test sees only Redis and
PostgreSQL, so it cannot tell this world from the workers."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import redis

from connectors.flags import FlagStore
from connectors.postgres import make_engine, write_alerts, write_outcomes, write_predictions
from models.alert_rules import alert_id
from models.routing import bucket, routes_to_ml
from schemas import Alert, AlertKind, Arm, Outcome, Severity
from streams.clock import utc_now
from tests.factories import prediction


@dataclass
class Conditions:
    """What the world does now; the test changes it while the world runs."""

    ml_sigma: float = 1.0  # ML's errors: |N(0, sigma)| minutes
    heuristic_sigma: float = 2.0
    drop_ml_labels: float = 0.0  # share of ML's actuals that never arrive
    drifting: bool = False  # raise a feature-drift alarm at each batch


class World:
    def __init__(
        self,
        database_url: str,
        redis_url: str,
        flags_key: str,
        *,
        per_batch: int = 100,
        pause_s: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.conditions = Conditions()
        self._engine = make_engine(database_url)
        self._redis = redis.Redis.from_url(redis_url)
        self._flags = FlagStore(self._redis, flags_key)
        self._per_batch = per_batch
        self._pause_s = pause_s
        self._rng = np.random.default_rng(seed)
        self._ids = itertools.count()
        self._run_id = uuid.uuid4().hex[:8]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ramp-world", daemon=True)
        self.batches = 0
        self.counts: Counter[str] = Counter()  # "predicted:ml", "labelled:heuristic", ...
        self.error: BaseException | None = None

    def __enter__(self) -> World:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._engine.dispose()
        self._redis.close()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self.batch()
                self._stop.wait(self._pause_s)
        except BaseException as exc:  # surfaced by check()
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the world stopped: {self.error!r}") from self.error

    def batch(self) -> None:
        flags = self._flags.read()
        if flags is None:
            return  # no flags yet: the ramp has not started
        now = utc_now()
        c = self.conditions
        predictions, outcomes = [], []
        for _ in range(self._per_batch):
            booking_id = f"w-{self._run_id}-{next(self._ids)}"
            b = bucket(flags.salt, booking_id)
            ml = routes_to_ml(b, enabled=flags.ml_enabled, percentage=flags.ml_traffic_percentage)
            arm = Arm.ML if ml else Arm.HEURISTIC
            pickup = now - timedelta(minutes=1)  # its actual is already due
            predicted = 10.0
            predictions.append(
                prediction(
                    booking_id,
                    at=now,
                    arm=arm,
                    bucket=b,
                    ml_traffic_percentage=flags.ml_traffic_percentage,
                    ml_enabled=flags.ml_enabled,
                    predicted_delay_minutes=predicted,
                    scheduled_pickup_at=pickup,
                    latency_ms=40.0,
                )
            )
            if ml and self._rng.random() < c.drop_ml_labels:
                continue
            error = float(self._rng.normal(0.0, c.ml_sigma if ml else c.heuristic_sigma))
            actual = predicted - error
            outcomes.append(
                Outcome(
                    booking_id=booking_id,
                    arm=arm,
                    served_by=arm,
                    model_version="rf-world" if ml else "heuristic-world",
                    bucket=b,
                    ml_traffic_percentage=flags.ml_traffic_percentage,
                    predicted_delay_minutes=predicted,
                    actual_delay_minutes=actual,
                    error=error,
                    abs_error=abs(error),
                    scheduled_pickup_at=pickup,
                    predicted_at=now,
                    observed_at=now,
                )
            )
        write_predictions(self._engine, predictions=predictions)
        write_outcomes(self._engine, outcomes=outcomes)
        self.counts.update(f"predicted:{p.arm.value}" for p in predictions)
        self.counts.update(f"labelled:{o.arm.value}" for o in outcomes)
        if c.drifting:
            write_alerts(self._engine, alerts=[drift_alert()])
        self.batches += 1


def drift_alert() -> Alert:
    """A feature-drift alarm as the outcome worker's drift monitor raises it."""
    now = utc_now()
    return Alert(
        alert_id=alert_id(AlertKind.FEATURE_DRIFT, "distance_km", now),
        kind=AlertKind.FEATURE_DRIFT,
        severity=Severity.WARNING,
        subject="distance_km",
        message="distance_km drifted from its training distribution",
        evidence={"statistic": 0.4},
        event_time=now,
        raised_at=now,
    )


def wait_until(
    predicate: Callable[[], object], timeout_s: float, world: World | None = None, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if world is not None:
            world.check()
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
