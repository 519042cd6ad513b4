"""How delaycast configures Faust: the worker's app (:mod:`streams.app`) and the benchmark's
bench-only apps are built here alike, so they differ only in their id and data directory."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, TopicT

from streams.settings import Settings

log = logging.getLogger("delaycast.kafka")

# How long the broker may hold a fetch that finds no new records. Faust asks for 1,500 ms, and
# aiokafka sends one fetch per broker at a time. When Faust is slow to take records it already
# holds (a busy loop, > 100 ms), aiokafka fetches the worker's other partitions alone (Faust's
# leader topic, say, which is always empty): the broker holds that fetch for the whole wait, and
# new bookings wait behind it. Measured with 300 bookings/s: 1.3 s median end to end with
# 1,500 ms, 94 ms with 50 ms. An idle worker then sends 20 empty fetches a second: nothing.
FETCH_MAX_WAIT_MS = 50

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
        did_commit = bool(
            await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)
        )
        if not did_commit and offsets:
            self._committed_offset.update(before)
            log.warning(
                "[Kafka] commit of %d partition(s) failed; it is made again with the next "
                "acknowledged records (until then a restart re-reads them: at least once)",
                len(offsets),
            )
        return did_commit

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust counts offsets it read past without delivering them as acknowledged (for
        compacted topics and transaction markers, which delaycast's inputs never have): on an
        input topic that means events no agent saw and will never see. Say so."""
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
        broker_heartbeat_interval=min(3.0, settings.consumer_session_timeout_s / 3),
        web_enabled=False,
        datadir=str(datadir / "{conf.name}"),
        # No autodiscovery: it would import every module of the origin package (the API, the
        # bench, scikit-learn and river with them) into every worker. `delaycast worker`
        # imports streams.agents, which registers the agents of the worker's role.
        autodiscover=False,
        origin="streams",
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
