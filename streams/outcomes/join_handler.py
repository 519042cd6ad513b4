"""The join agent's batch step: decode, route home, join against the table, emit outcomes, then
commit state.

Which record does what, decided here and nowhere else:

- a record that breaks the input contract (:mod:`streams.decode`) becomes a dead letter;
- an actual delay found on another partition than its booking_id's (a producer with another
  partitioner, or without a key) is sent, re-keyed, to the ``actual-delays-routed`` topic, which
  this agent also reads: it joins there, on the partition that holds its prediction;
- a record whose join raises (a bug, or state written by an older version) becomes a dead
  letter of kind ``processing``, alone: its neighbours are joined;
- a failure to write to Kafka raises: the caller halts the worker so nothing is committed.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

from connectors.kafka import BatchProducer, Record, home_partition
from schemas import ActualDelay, DeadLetterKind, Prediction
from streams.decode import DEFAULT_CONTRACT, Contract, Inbound, dead_letter, decode_batch
from streams.outcomes.join import JoinBatch, expired_keys, is_expired, side_of

log = logging.getLogger("delaycast.join")

AGENT = "join"


class JoinHandler:
    def __init__(
        self,
        *,
        table: MutableMapping[bytes, Any],
        producer: BatchProducer,
        predictions_topic: str,
        outcomes_topic: str,
        dead_letters_topic: str,
        routed_topic: str,
        partitions: int,
        horizon_s: float,
        done_retention_s: float = 300.0,
        clock: Callable[[], datetime],
        ebb: Callable[[], Awaitable[None]],
        contract: Contract = DEFAULT_CONTRACT,
        chunk: int = 200,
    ) -> None:
        self._table = table
        self._producer = producer
        self._predictions_topic = predictions_topic
        self._outcomes_topic = outcomes_topic
        self._dead_letters_topic = dead_letters_topic
        self._routed_topic = routed_topic
        self._partitions = partitions
        self._horizon_s = horizon_s
        self._done_retention_s = done_retention_s
        self._clock = clock
        self._ebb = ebb
        self._contract = contract
        self._chunk = chunk
        self.stream_time = float("-inf")
        self.counters: Counter[str] = Counter()

    async def handle(self, records: list[Inbound]) -> None:
        now = self._clock()
        predictions = [r for r in records if r.topic == self._predictions_topic]
        actuals = [r for r in records if r.topic != self._predictions_topic]
        contract = self._contract
        good_p, bad = decode_batch(predictions, Prediction, agent=AGENT, now=now, contract=contract)
        good_a, bad_a = decode_batch(actuals, ActualDelay, agent=AGENT, now=now, contract=contract)
        bad += bad_a
        events: dict[int, Prediction | ActualDelay] = {id(d.record): d.event for d in good_p}
        events.update((id(d.record), d.event) for d in good_a)
        batch = JoinBatch(self._table, now=now.timestamp())
        routed: list[Record] = []
        # Join in arrival order: it decides which of two duplicates counts.
        for record in records:
            event = events.get(id(record))
            if event is None:
                continue
            home = home_partition(event.booking_id.encode(), self._partitions)
            if record.partition != home:
                if isinstance(event, ActualDelay) and record.topic != self._routed_topic:
                    key = event.booking_id.encode()
                    routed.append(Record(self._routed_topic, key, record.value or b""))
                    continue
                reason = (
                    f"on partition {record.partition}, but booking_id {event.booking_id!r} "
                    f"belongs on {home} of {self._partitions} (TOPIC_PARTITIONS): a topic with "
                    "another partition count, or a producer that does not hash keys with murmur2"
                )
                bad.append(
                    dead_letter(record, DeadLetterKind.PROCESSING, reason, agent=AGENT, now=now)
                )
                continue
            try:
                if isinstance(event, Prediction):
                    batch.add_prediction(event)
                else:
                    batch.add_actual(event)
            except Exception as exc:  # a bug or an old entry: this record alone, not its batch
                log.exception("[ML] join failed for %s", event.booking_id)
                reason = f"join failed: {type(exc).__name__}: {exc}"
                bad.append(
                    dead_letter(record, DeadLetterKind.PROCESSING, reason, agent=AGENT, now=now)
                )
        out = [
            Record(self._outcomes_topic, o.booking_id.encode(), o.model_dump_json().encode())
            for o in batch.outcomes
        ]
        out += routed
        out += [
            Record(self._dead_letters_topic, d.source_key, d.model_dump_json().encode())
            for d in bad
        ]
        await self._producer.send_batch(out)
        batch.apply(self._table)
        # Each table write is a changelog message: let them drain before the next batch, so the
        # join never leaves a backlog that would hold up the predict agent's input.
        await self._ebb()
        # Event time comes only from actuals that passed the contract, and never runs ahead of
        # the wall clock: no single record can make the sweep expire what is pending.
        latest = (now + contract.bounds.max_skew).timestamp()
        self.stream_time = max(self.stream_time, min(batch.newest_event_time, latest))
        self.counters.update(batch.counters)
        self.counters["routed_actuals"] += len(routed)
        self.counters["dead_letters"] += len(bad)
        self.counters.update(f"dead_letters:{d.kind.value}" for d in bad)

    async def sweep(self) -> Counter[str]:
        """Drop entries older than the horizon (event time), and done markers older than their
        retention (wall-clock time); returns what expired.

        Each removal is a changelog message: they go out in chunks, with the changelog drained
        between chunks, so a sweep that expires thousands of entries never floods the producer
        (a full Faust producer buffer pauses every stream of the worker, predictions included).
        A batch may rewrite an entry while the sweep waits between chunks: each one is checked
        again at the moment it is removed.
        """
        started = time.perf_counter()
        entries = list(self._table.items())
        stream_time, now = self.stream_time, self._clock().timestamp()
        keys, _ = expired_keys(
            entries,
            stream_time=stream_time,
            horizon_s=self._horizon_s,
            now=now,
            done_retention_s=self._done_retention_s,
        )
        scan_ms = (time.perf_counter() - started) * 1000
        counts: Counter[str] = Counter()
        for first in range(0, len(keys), self._chunk):
            for key in keys[first : first + self._chunk]:
                entry = self._table.get(key)
                if entry is not None and is_expired(
                    entry,
                    stream_time=stream_time,
                    horizon_s=self._horizon_s,
                    now=now,
                    done_retention_s=self._done_retention_s,
                ):
                    del self._table[key]
                    counts[f"expired_{side_of(entry)}s"] += 1
                else:
                    counts["expiry_skipped_rewritten"] += 1
            await self._ebb()
        if keys:
            log.info(
                "[ML] join: %d entries expired (%s) in %.0f ms",
                sum(v for k, v in counts.items() if k.startswith("expired_")),
                dict(counts),
                (time.perf_counter() - started) * 1000,
            )
        # The scan runs on the event loop in one go: say when it holds the loop long enough.
        level = logging.WARNING if scan_ms > 100 else logging.DEBUG
        log.log(level, "[ML] join sweep scanned %d entries in %.0f ms", len(entries), scan_ms)
        self.counters.update(counts)
        return counts
