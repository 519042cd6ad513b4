"""How delaycast configures Faust: the worker's app (:mod:`streams.worker.app`) and the benchmark's
bench-only apps are built here alike, so they differ only in their id and data directory."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiokafka
import faust
from aiokafka.errors import KafkaError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, TopicT
from mode import Service

from streams.settings import Settings

log = logging.getLogger("delaycast.kafka")

# How long the broker may hold a fetch that finds no new records. Faust asks for 1,500 ms, and
# aiokafka sends one fetch per broker at a time. When Faust is slow to take records it already
# holds (a busy loop, > 100 ms), aiokafka fetches the worker's other partitions alone (Faust's
# leader topic, say, which is always empty): the broker holds that fetch for the whole wait, and
# new bookings wait behind it. Measured with 300 bookings/s: 1.3 s median end to end with
# 1,500 ms, 94 ms with 50 ms. An idle worker then sends 20 empty fetches a second: nothing.
FETCH_MAX_WAIT_MS = 50

# How often the consumer looks for partitions whose records no agent will ever see, and how long
# one must stay so (commits run every second) before it is read again.
STRANDED_CHECK_S = 2.0
STRANDED_AFTER_S = 10.0

# A producer may write bookings or actual delays in transactions (a Java service with
# exactly-once, say). Faust reads uncommitted records unless it runs transactions itself, so a
# booking whose transaction was aborted would be predicted and joined as if it had happened.
# Read only committed records, like librdkafka's default and delaycast's own CLI readers. The
# offsets a transaction leaves behind (its marker, aborted records) are then skipped, and
# logged as passed over (runbooks/offsets-passed-over.md).
ISOLATION_LEVEL = "read_committed"


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes fixed values and no setting; aiokafka reads these when it starts.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        consumer._isolation_level = ISOLATION_LEVEL
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @Service.task
    async def _unstick(self) -> None:
        """Read a partition again when its records wait and nothing reads them.

        A restarted worker once left 417 actuals unjoined with its flow running, its queues
        empty and no error (the cause is fixed in :meth:`seek_to_committed`). Faust's
        bookkeeping has other ways to leave an input partition silent: it drops a fetched
        record whose offset is below the partition's last read offset, and a refused commit
        (faust-streaming#316) took the acknowledgements it was made of out of its books (put
        back in :meth:`_commit_offsets`). Every ``STRANDED_CHECK_S`` this looks at each input
        partition with nothing waiting for an agent; one stuck for ``STRANDED_AFTER_S`` is
        resumed and sought back to its committed offset (its records are read again: at least
        once), with a warning that says what was seen.
        """
        suspects: dict[TP, tuple[PartitionView, float]] = {}
        while not self.should_stop:
            await self.sleep(STRANDED_CHECK_S)
            if not self._may_look():
                suspects.clear()
                continue
            generation = self.app.consumer_generation_id
            now = time.monotonic()
            seen, suspects = suspects, {}
            try:
                views = self._partition_views()
            except Exception:  # a look must never take the consumer down
                log.exception("[Kafka] could not look at the consumer's partitions")
                continue
            for tp, view in views.items():
                if stuck_reason(view) is None:
                    continue
                before = seen.get(tp)
                suspects[tp] = before if before is not None and before[0] == view else (view, now)
            for tp, (view, since) in list(suspects.items()):
                if now - since < STRANDED_AFTER_S:
                    continue
                del suspects[tp]
                if not self._may_look() or self.app.consumer_generation_id != generation:
                    break  # a rebalance began: its seek puts every partition right
                try:
                    await self._read_again(tp, view, now - since)
                except Exception:  # unassigned meanwhile, or the broker went away
                    log.exception("[Kafka] %s[%d]: could not read it again", *tp)

    def _may_look(self) -> bool:
        return not (
            self.app.rebalancing
            or self.app.in_recovery
            or not self.flow_active
            or not self.app.flow_control.is_active()
        )

    def _partition_views(self) -> dict[TP, PartitionView]:
        """Each input partition with nothing waiting for an agent: its offsets as they stand.

        Read without waiting for the consumer's thread: positions being reset are skipped. A
        partition whose records wait in an agent's queue (Faust counts them as in flight only
        once the agent takes them), or that Faust holds back for a full queue, is not looked
        at: that is an agent being slow, not a partition left behind.
        """
        views: dict[TP, PartitionView] = {}
        in_flight = lowest_in_flight(self._unacked_messages)
        queued = {
            topic
            for channel in list(self.app.topics)
            if channel.queue.qsize() > 0
            for topic in getattr(channel, "topics", ())
        }
        client = self._thread._ensure_consumer()
        subscription = client._subscription.subscription
        if subscription is None:
            return views
        for tp in sorted(self.assignment()):
            if not self.app.topics.acks_enabled_for(tp.topic):
                continue  # a changelog: read by recovery, never committed
            if tp.topic in queued or tp in self._buffered_partitions:
                continue
            try:
                state = subscription.assignment.state_value(tp)
                if state is None or not state.has_valid_position:
                    continue
                position = state.position
                stable = client.last_stable_offset(tp)
                end = stable if stable is not None and stable >= 0 else client.highwater(tp)
            except (AssertionError, KafkaError):  # unassigned meanwhile
                continue
            committed = self._committed_offset.get(tp)
            views[tp] = PartitionView(
                committed=committed,
                read=self._read_offset.get(tp),
                position=position,
                end=end,
                in_flight=tp in in_flight,
                commit_due=committed is not None
                and any(
                    o in self._acked_index[tp] or self._gap[tp].overlaps(o)
                    for o in (committed, committed + 1)
                ),
            )
        return views

    async def _read_again(self, tp: TP, view: PartitionView, stuck_s: float) -> None:
        fetched = tp in self._get_active_partitions()
        log.warning(
            "[Kafka] %s[%d]: %s for %.0f s (committed %s, read %s, fetch position %s, end %s; "
            "%s); resuming it from offset %s: those records are read again (at least once)",
            tp.topic,
            tp.partition,
            stuck_reason(view),
            stuck_s,
            view.committed,
            view.read,
            view.position,
            view.end,
            "fetched" if fetched else "left out of the fetch",
            view.committed if view.committed is not None else view.position,
        )
        self.resume_partitions({tp})
        if view.committed is not None:
            await self._thread.seek_wait({tp: view.committed})

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every partition to its committed offset, and an input partition the group never
        committed to its oldest record.

        Faust drops records it fetched but did not deliver when a rebalance starts, and relies
        on this seek to fetch them again. aiokafka seeks only partitions with a committed offset
        above 0: a partition the group never committed kept its fetch position, past the
        dropped records, and they were never read (a worker restarted after a SIGKILL fetched
        every actual delay in its first assignment, and a second rebalance followed when the
        dead member's session expired: 417 of 2,000 outcomes never came).
        ``consumer_auto_offset_reset`` is "earliest", so the oldest record is where such a
        partition starts anyway.
        """
        committed = cast(Mapping[TP, int], await super().seek_to_committed())
        never = [
            tp
            for tp, offset in committed.items()
            if (offset is None or offset <= 0) and self.app.topics.acks_enabled_for(tp.topic)
        ]
        if never:
            log.info(
                "[Kafka] no committed offset on %s: read from the oldest record",
                ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(never)),
            )
            await self._thread.seek_to_beginning(*never)
        return committed

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset, with no record delivered meanwhile.

        After a table's recovery Faust resumes the stream partitions, then seeks them to their
        committed offsets, and only then clears the agents' queues (``flow_control.resume()``).
        Its consumer flow is still on from reading the changelog, so records fetched while the
        seek waits for the broker reach the queues and are cleared unprocessed, while the
        consumer's position has moved past them. The next record then looks like a gap in the
        offsets, which Faust counts as acknowledged: those events were lost for good (seen as
        a restarted worker joining only some of its outcomes). With the flow stopped first,
        nothing is delivered until Faust resumes it after the clear, from the committed
        offsets. Every caller (recovery's end, or a fetch that returned while the flow was
        stopped) resumes the flow itself afterwards.
        """
        self.stop_flow()
        await super().perform_seek()

    def _filter_committable_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        self._in_flight_floor = lowest_in_flight(self._unacked_messages)
        return cast(dict[TP, int], super()._filter_committable_offsets(tps))

    def _new_offset(self, tp: TP) -> int | None:
        """Never an offset past a record still being processed (faust-streaming#606).

        Faust reads its committed offset as the next one due, and lets the acknowledged run that
        starts one past it be committed: when the record at the committed offset is still in an
        agent (delivered, not acknowledged), the commit passes it, and a worker that dies then
        never sees it again. delaycast acknowledges in offset order, so its agents never leave
        such a hole; this keeps it so whatever an agent does.
        """
        floor = getattr(self, "_in_flight_floor", {}).get(tp)
        committed = self._committed_offset[tp]
        acked = self._acked[tp]
        # A record below the committed offset is Kafka's already: nothing left to protect.
        protect = floor is not None and (committed is None or floor >= committed)
        if protect and acked and min(acked) > cast(int, floor):
            return None
        return cast(int | None, super()._new_offset(tp))

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        """Faust records offsets as committed even when Kafka refused the commit
        (faust-streaming#316); put its record back, so that it says what Kafka holds."""
        before = {tp: self._committed_offset[tp] for tp in offsets}
        generation = self.app.consumer_generation_id
        did_commit = bool(
            await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)
        )
        if not did_commit and offsets:
            if self.app.consumer_generation_id != generation:
                return did_commit  # a rebalance: its seek reads the committed offsets anew
            try:
                held = self.assignment()
            except Exception:  # the consumer is stopping
                return did_commit
            for tp, end in offsets.items():
                start = before[tp]
                if tp not in held:
                    continue
                self._committed_offset[tp] = start
                # Faust took the acknowledged run out of its books to make this commit; without
                # it, the next commit would find a hole at the committed offset and stop there.
                if start is not None and start < end:
                    run = range(start, end)
                    self._acked_index[tp].update(run)
                    self._acked[tp] = sorted({*self._acked[tp], *run})
            log.warning(
                "[Kafka] commit of %d partition(s) failed; it is made again with the next "
                "acknowledged records (until then a restart re-reads them: at least once)",
                len(offsets),
            )
        return did_commit

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust counts offsets it read past without delivering them as acknowledged (meant for
        compacted topics and transaction markers): on an input topic, anything but a
        transaction's marker or aborted records is an event no agent saw and will never see.
        Say so."""
        log.warning(
            "[Kafka] %s[%d]: offsets %d..%d were passed over without reaching an agent; Faust "
            "counts them as processed (a transaction's marker or aborted records are expected "
            "gaps; anything else is a loss: runbooks/offsets-passed-over.md)",
            tp.topic,
            tp.partition,
            offset_from,
            offset_to - 1,
        )
        await super()._add_gap(tp, offset_from, offset_to)


@dataclass(frozen=True)
class PartitionView:
    """One input partition as the consumer holds it; offsets as Kafka counts them."""

    committed: int | None  # the next offset due, as last committed (None: never)
    read: int | None  # the last offset delivered to an agent (a seek sets the committed one)
    position: int  # the next offset the fetcher asks for
    end: int | None  # the offset after the last readable record (stable offset, or highwater)
    in_flight: bool  # a record of it is in an agent, unacknowledged
    commit_due: bool  # the records from the committed offset are acknowledged: a commit follows


def stuck_reason(view: PartitionView) -> str | None:
    """Why the partition's records will not reach an agent, or None when nothing is wrong.

    >>> ok = PartitionView(committed=10, read=9, position=10, end=10, in_flight=False,
    ...                    commit_due=False)
    >>> stuck_reason(ok) is None
    True
    >>> stuck_reason(PartitionView(10, 9, 10, 14, False, False))
    'offsets 10..13 wait and none is fetched'
    >>> stuck_reason(PartitionView(10, 18, 19, 19, False, False))
    'offsets 10..18 were fetched, and are neither in an agent nor acknowledged'
    """
    if view.in_flight or view.end is None:
        return None
    if view.position < view.end:
        return f"offsets {view.position}..{view.end - 1} wait and none is fetched"
    committed = view.committed
    if (
        committed is not None
        and view.read is not None
        and committed < view.read < view.position
        and not view.commit_due
    ):
        return (
            f"offsets {committed}..{view.position - 1} were fetched, and are neither in an "
            "agent nor acknowledged"
        )
    return None


def lowest_in_flight(messages: Iterable[Any]) -> dict[TP, int]:
    """The lowest offset per partition among ``messages`` not yet acknowledged."""
    floor: dict[TP, int] = {}
    for message in list(messages):
        if not message.acked:
            tp = message.tp
            if tp not in floor or message.offset < floor[tp]:
                floor[tp] = message.offset
    return floor


def make_app(settings: Settings, app_id: str, datadir: Path) -> faust.App:
    """A Faust app on the settings' broker; ``app_id`` is its consumer group."""
    app = faust.App(
        app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        # A new consumer group starts from the oldest booking: none is ever skipped.
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.consumer_session_timeout_s,
        # Static membership (KIP-345): aiokafka sends no LeaveGroup for a named member, and the
        # group keeps its assignment while it restarts within the session timeout.
        consumer_group_instance_id=settings.worker_instance_id,
        broker_heartbeat_interval=min(3.0, settings.consumer_session_timeout_s / 3),
        # Faust's rule: a request may not time out before the session does (90 s by default;
        # CONSUMER_SESSION_TIMEOUT_S goes up to 300).
        broker_request_timeout=max(90.0, settings.consumer_session_timeout_s + 30.0),
        web_enabled=False,
        datadir=str(datadir / "{conf.name}"),
        # No autodiscovery: it would import every module of the origin package (the API, the
        # bench, scikit-learn and river with them) into every worker. create_app registers
        # the agents of the worker's role (streams.worker.agents).
        autodiscover=False,
        origin="streams",
        # No standby copies of the join's table. With the memory store a partition taken over
        # is read from the start of its changelog anyway (a standby saves nothing), a standby
        # doubles the table's memory, and the join's sweep, which walks the whole table, would
        # expire the standby's entries too, writing tombstones into partitions another worker
        # owns: a stale standby copy could delete an entry its owner had just rewritten.
        table_standby_replicas=0,
    )
    # The transport builds the app's consumer: one whose fetches wait FETCH_MAX_WAIT_MS at most.
    cast(Any, app.transport).Consumer = _Consumer
    return app


def raw_topic(app: faust.App, *names: str) -> TopicT:
    """``names`` as one source of raw bytes: the agents decode and validate themselves."""
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
