"""Recording predictions, outcomes and alerts in PostgreSQL, and watching them, off the hot path.

The recorder runs in a process of its own beside the outcome worker
(:mod:`streams.recorder_process`), with a consumer group of its own. It reads a batch, writes it to
PostgreSQL (waiting and retrying while PostgreSQL is down), and only then commits the batch's
offsets, so nothing is lost and the prediction path never waits on PostgreSQL: a PostgreSQL outage
delays history, never predictions. The same loop feeds the monitors (threshold rules, drift) and
publishes what they raise on ``alerts``; alerts read back from ``alerts`` are stored, logged with
the tag [ML] and sent to the webhook.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, Message
from pydantic import ValidationError

from schemas import Alert, Outcome, Prediction

log = logging.getLogger("delaycast.recorder")


class History(Protocol):
    """The PostgreSQL writes the recorder needs (connectors.postgres.history on an engine)."""

    def write_predictions(self, predictions: Sequence[Prediction]) -> int: ...
    def write_outcomes(self, outcomes: Sequence[Outcome]) -> int: ...
    def write_alerts(self, alerts: Sequence[Alert]) -> int: ...


class Monitor(Protocol):
    """Something that watches the stream and may raise alerts."""

    def on_predictions(self, predictions: Sequence[Prediction], now: datetime) -> list[Alert]: ...
    def on_outcomes(self, outcomes: Sequence[Outcome], now: datetime) -> list[Alert]: ...


@dataclass
class RecorderTopics:
    predictions: str
    outcomes: str
    alerts: str


@dataclass
class Recorder:
    consumer: Consumer
    topics: RecorderTopics
    history: History
    monitors: Sequence[Monitor]
    publish_alerts: Callable[[list[Alert]], None]
    notify: Callable[[Alert], Any] | None
    clock: Callable[[], datetime]
    batch_max: int = 2000
    poll_timeout_s: float = 0.5
    periodic: Sequence[tuple[float, Callable[[], None]]] = ()
    on_start: Callable[[], None] | None = None
    on_stop: Callable[[], None] | None = None
    totals: Counter[str] = field(default_factory=Counter)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        self.consumer.subscribe([self.topics.predictions, self.topics.outcomes, self.topics.alerts])
        last_run = [time.monotonic()] * len(self.periodic)
        if self.on_start is not None:
            self._guarded(self.on_start)
        try:
            while not self.stop_event.is_set():
                messages = self.consumer.consume(self.batch_max, self.poll_timeout_s)
                if messages:
                    self.handle(messages)
                    self.consumer.commit(asynchronous=False)
                for i, (interval, task) in enumerate(self.periodic):
                    if time.monotonic() - last_run[i] >= interval:
                        last_run[i] = time.monotonic()
                        self._guarded(task)
        finally:
            if self.on_stop is not None:
                self._guarded(self.on_stop)
            self.consumer.close()

    def _guarded(self, task: Callable[[], None]) -> None:
        try:
            task()
        except Exception:
            log.exception("[ML] recorder task %s failed; it runs again later", task)

    def handle(self, messages: Sequence[Message]) -> None:
        predictions: list[Prediction] = []
        outcomes: list[Outcome] = []
        alerts: list[Alert] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("[ML] recorder consumer error: %s", error)
                continue
            topic, value = message.topic(), message.value() or b""
            try:
                if topic == self.topics.predictions:
                    predictions.append(Prediction.model_validate_json(value))
                elif topic == self.topics.outcomes:
                    outcomes.append(Outcome.model_validate_json(value))
                elif topic == self.topics.alerts:
                    alerts.append(Alert.model_validate_json(value))
            except ValidationError as exc:
                # Our own agents wrote these; a bad one is a bug to see, not a reason to stop.
                self.totals["invalid"] += 1
                log.error(
                    "[ML] recorder skipped an invalid event on %s: %s", topic, exc.errors()[:2]
                )
        now = self.clock()
        if predictions:
            self.totals["predictions"] += self.history.write_predictions(predictions)
        if outcomes:
            self.totals["outcomes"] += self.history.write_outcomes(outcomes)
        if alerts:
            self.totals["alerts"] += self.history.write_alerts(alerts)
            for alert in alerts:
                log.warning(
                    "[ML] ALERT %s %s (%s): %s",
                    alert.severity.value.upper(),
                    alert.kind.value,
                    alert.subject,
                    alert.message,
                )
                if self.notify is not None:
                    self.notify(alert)
        raised: list[Alert] = []
        for monitor in self.monitors:
            if predictions:
                raised += monitor.on_predictions(predictions, now)
            if outcomes:
                raised += monitor.on_outcomes(outcomes, now)
        if raised:
            self.publish_alerts(raised)
            self.totals["alerts_raised"] += len(raised)
