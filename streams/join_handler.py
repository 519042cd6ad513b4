"""The join agent's batch step: decode, join against the table, emit outcomes, then commit state."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

from connectors.kafka import BatchProducer, Record
from schemas import ActualDelay, Prediction
from streams.decode import Inbound, decode_batch
from streams.join import JoinBatch, expired_keys

log = logging.getLogger("delaycast.join")


class JoinHandler:
    def __init__(
        self,
        *,
        table: MutableMapping[bytes, Any],
        producer: BatchProducer,
        predictions_topic: str,
        outcomes_topic: str,
        dead_letters_topic: str,
        horizon_s: float,
        clock: Callable[[], datetime],
        ebb: Callable[[], Awaitable[None]],
        chunk: int = 200,
    ) -> None:
        self._table = table
        self._producer = producer
        self._predictions_topic = predictions_topic
        self._outcomes_topic = outcomes_topic
        self._dead_letters_topic = dead_letters_topic
        self._horizon_s = horizon_s
        self._clock = clock
        self._ebb = ebb
        self._chunk = chunk
        self.stream_time = float("-inf")
        self.counters: Counter[str] = Counter()

    async def handle(self, records: list[Inbound]) -> None:
        now = self._clock()
        predictions = [r for r in records if r.topic == self._predictions_topic]
        actuals = [r for r in records if r.topic != self._predictions_topic]
        good_p, bad_p = decode_batch(predictions, Prediction, agent="join", now=now)
        good_a, bad_a = decode_batch(actuals, ActualDelay, agent="join", now=now)
        batch = JoinBatch(self._table)
        # Join in arrival order: it decides which of two duplicates counts.
        events: dict[int, Prediction | ActualDelay] = {id(d.record): d.event for d in good_p}
        events.update((id(d.record), d.event) for d in good_a)
        for record in records:
            event = events.get(id(record))
            if isinstance(event, Prediction):
                batch.add_prediction(event)
            elif isinstance(event, ActualDelay):
                batch.add_actual(event)
        out = [
            Record(self._outcomes_topic, o.booking_id.encode(), o.model_dump_json().encode())
            for o in batch.outcomes
        ]
        out += [
            Record(self._dead_letters_topic, d.source_key, d.model_dump_json().encode())
            for d in (*bad_p, *bad_a)
        ]
        await self._producer.send_batch(out)
        batch.apply(self._table)
        # Each table write is a changelog message: let them drain before the next batch, so the
        # join never leaves a backlog that would hold up the predict agent's input.
        await self._ebb()
        self.stream_time = max(self.stream_time, batch.newest_event_time)
        self.counters.update(batch.counters)
        self.counters["dead_letters"] += len(bad_p) + len(bad_a)

    async def sweep(self) -> Counter[str]:
        """Drop entries older than the horizon (by event time); returns what expired.

        Each removal is a changelog message: they go out in chunks, with the changelog drained
        between chunks, so a sweep that expires thousands of entries never floods the producer
        (a full Faust producer buffer pauses every stream of the worker, predictions included).
        """
        if self.stream_time == float("-inf"):
            return Counter()
        started = time.perf_counter()
        entries = list(self._table.items())
        keys, counts = expired_keys(
            entries, stream_time=self.stream_time, horizon_s=self._horizon_s
        )
        scan_ms = (time.perf_counter() - started) * 1000
        for first in range(0, len(keys), self._chunk):
            for key in keys[first : first + self._chunk]:
                self._table.pop(key, None)
            await self._ebb()
        if keys:
            log.info(
                "[ML] join: %d unmatched entries expired (%s) in %.0f ms",
                len(keys),
                dict(counts),
                (time.perf_counter() - started) * 1000,
            )
        # The scan runs on the event loop in one go: say when it holds the loop long enough.
        level = logging.WARNING if scan_ms > 100 else logging.DEBUG
        log.log(level, "[ML] join sweep scanned %d entries in %.0f ms", len(entries), scan_ms)
        self.counters.update(counts)
        return counts
