"""Recording predictions, outcomes and alerts in PostgreSQL, and watching them, off the hot path.

The recorder runs in a process of its own beside the outcome worker
(:mod:`streams.outcomes.recorder_process`), with a consumer group of its own. It reads a batch,
writes it to PostgreSQL (waiting and retrying while PostgreSQL is down), and only then commits the
batch's offsets, so nothing is lost and the prediction path never waits on PostgreSQL: a PostgreSQL
outage delays history, never predictions. The same loop feeds the monitors (threshold rules, drift)
and publishes what they raise on ``alerts``; alerts read back from ``alerts`` are stored, logged
with the tag [ML] and sent to the webhook.

Data never stops it: an event that is invalid, out of bounds
(:mod:`streams.outcomes.recorder_bounds`) or refused by PostgreSQL as data (:class:`DataRefused`: a
batch that fails so is written again row by row) goes to the quarantine table with its reason, and
the rest of its batch is stored. Only an unavailable PostgreSQL makes it wait (in ``History``), as
before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from pydantic import ValidationError

from schemas import Alert, Outcome, Prediction
from schemas.quarantine import QuarantinedEvent
from streams.outcomes.recorder_bounds import out_of_bounds

log = logging.getLogger("delaycast.recorder")

E = TypeVar("E", Prediction, Outcome, Alert)


class DataRefused(Exception):
    """PostgreSQL refused a write because of the rows themselves (a value out of range, a
    violated constraint), not because it is unavailable: the same rows would fail again."""


class History(Protocol):
    """The PostgreSQL writes the recorder needs (connectors.postgres.history on an engine)."""

    def write_predictions(self, predictions: Sequence[Prediction]) -> int: ...
    def write_outcomes(self, outcomes: Sequence[Outcome]) -> int: ...
    def write_alerts(self, alerts: Sequence[Alert]) -> int: ...
    def write_quarantine(self, events: Sequence[QuarantinedEvent]) -> int: ...


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
                    self._commit()
                for i, (interval, task) in enumerate(self.periodic):
                    if time.monotonic() - last_run[i] >= interval:
                        last_run[i] = time.monotonic()
                        self._guarded(task)
        finally:
            if self.on_stop is not None:
                self._guarded(self.on_stop)
            self.consumer.close()

    def _commit(self) -> None:
        """Commit what was stored. A commit Kafka refuses (the group rebalanced while this
        waited for PostgreSQL past its poll interval, the coordinator away) is not an error of
        the data: the batch is read again, by this member or another, and stored once."""
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:
            self.totals["commits_failed"] += 1
            log.warning(
                "[ML] recorder commit refused (%s); the batch will be read again and stored once",
                exc.args[0] if exc.args else exc,
            )

    def _guarded(self, task: Callable[[], None]) -> None:
        try:
            task()
        except Exception:
            log.exception("[ML] recorder task %s failed; it runs again later", task)

    def handle(self, messages: Sequence[Message]) -> None:
        parsed: dict[str, list[tuple[Any, Message]]] = {
            self.topics.predictions: [],
            self.topics.outcomes: [],
            self.topics.alerts: [],
        }
        models: dict[str, type[Prediction] | type[Outcome] | type[Alert]] = {
            self.topics.predictions: Prediction,
            self.topics.outcomes: Outcome,
            self.topics.alerts: Alert,
        }
        quarantined: list[QuarantinedEvent] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("[ML] recorder consumer error: %s", error)
                continue
            topic, value = message.topic(), message.value() or b""
            model = models.get(topic or "")
            if model is None:
                continue
            try:
                event = model.model_validate_json(value)
            except ValidationError as exc:
                # Our own agents wrote these; a bad one is a bug or a forgery to see, not a
                # reason to stop.
                self.totals["invalid"] += 1
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                    for e in exc.errors()[:3]
                )
                log.error("[ML] recorder skipped an invalid event on %s: %s", topic, problems)
                quarantined.append(_quarantined(message, None, f"invalid: {problems}"))
                continue
            problem = out_of_bounds(event)
            if problem is not None:
                booking = getattr(event, "booking_id", None)
                quarantined.append(_quarantined(message, booking, f"out of bounds: {problem}"))
                continue
            parsed[topic or ""].append((event, message))
        now = self.clock()
        predictions = self._store(
            "predictions",
            parsed[self.topics.predictions],
            self.history.write_predictions,
            quarantined,
        )
        outcomes = self._store(
            "outcomes", parsed[self.topics.outcomes], self.history.write_outcomes, quarantined
        )
        alerts = self._store(
            "alerts", parsed[self.topics.alerts], self.history.write_alerts, quarantined
        )
        if quarantined:
            self.totals["quarantined"] += self.history.write_quarantine(quarantined)
            log.warning(
                "[ML] recorder quarantined %d event(s) it cannot store, e.g. %s@%d: %s",
                len(quarantined),
                quarantined[0].source_topic,
                quarantined[0].source_offset,
                quarantined[0].reason,
            )
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

    def _store(
        self,
        kind: str,
        items: list[tuple[E, Message]],
        write: Callable[[Sequence[E]], int],
        quarantined: list[QuarantinedEvent],
    ) -> list[E]:
        """Write the batch; when PostgreSQL refuses it as data, write it row by row and
        quarantine the rows it refuses. Returns the events stored (or already stored)."""
        events = [event for event, _ in items]
        if not events:
            return []
        try:
            self.totals[kind] += write(events)
            return events
        except DataRefused as exc:
            log.warning(
                "[ML] PostgreSQL refused a %s batch of %d as data (%s); writing it row by row",
                kind,
                len(events),
                exc,
            )
        kept: list[E] = []
        for event, message in items:
            try:
                self.totals[kind] += write([event])
            except DataRefused as exc:
                booking = getattr(event, "booking_id", None)
                quarantined.append(_quarantined(message, booking, f"refused by PostgreSQL: {exc}"))
                continue
            kept.append(event)
        return kept


def _quarantined(message: Message, booking_id: str | None, reason: str) -> QuarantinedEvent:
    return QuarantinedEvent(
        source_topic=message.topic() or "",
        source_partition=message.partition() or 0,
        source_offset=message.offset() or 0,
        booking_id=booking_id,
        reason=reason,
        payload=message.value() or b"",
    )
