"""``/metrics``: Prometheus text, read from the shared stores at scrape time.

The worker counters come from the Redis hash the workers flush to (:mod:`streams.worker.metrics`),
so they are the sum over every worker; outcomes and the join's dead letters come from
PostgreSQL's pipeline counters (``join.outcomes``, ``join.dead_letters:<kind>``); consumer lag
from Kafka, for each consumer group and topic it reads (committed offsets against the high
watermarks): the predict workers on bookings, the outcome workers on predictions and actuals,
the recorder on predictions, outcomes and alerts. A store that does not answer leaves its
series out, and ``delaycast_scrape_source_up{source}`` says which, rather than failing the
scrape.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from connectors.kafka_lag import KafkaLagError, KafkaUnreachable
from connectors.p90_tracking import TrackingStore
from connectors.postgres import read_counters
from models.interval import tracking_factor
from schemas import Arm, DeadLetterKind, FallbackReason
from streams.operate.api.resources import Resources
from streams.settings import Settings
from streams.worker.metrics import WorkerTotals, metrics_key, parse_totals

log = logging.getLogger("delaycast.api")

OUTCOMES_COUNTER = "join.outcomes"
JOIN_DEAD_LETTERS = "join.dead_letters:"


@dataclass(frozen=True)
class Lag:
    group: str
    topic: str
    messages: int


@dataclass(frozen=True)
class Scrape:
    """What one scrape read; None where the store did not answer. ``lags`` has one entry per
    group and topic that answered."""

    worker: WorkerTotals | None
    outcomes: int | None
    lags: tuple[Lag, ...] | None
    # The served P90's online factor of each version (None: Redis did not answer; empty: no
    # outcome tracked yet or tracking off).
    p90_factors: dict[str, float] | None = None
    # The join's dead letters by kind (None: PostgreSQL did not answer).
    join_dead_letters: dict[str, int] | None = None

    def dead_letters_by_kind(self) -> dict[str, int] | None:
        """Dead letters of both paths by kind; None when neither store answered."""
        if self.worker is None and self.join_dead_letters is None:
            return None
        kinds = Counter(self.worker.dead_letter_kinds if self.worker else {})
        kinds.update(self.join_dead_letters or {})
        return dict(sorted(kinds.items()))


def _worker_families(totals: WorkerTotals) -> Iterator[Metric]:
    bookings = CounterMetricFamily("delaycast_bookings", "Booking records the workers consumed.")
    bookings.add_metric([], totals.bookings)
    yield bookings
    predictions = CounterMetricFamily(
        "delaycast_predictions", "Predictions written, by assigned arm.", labels=["arm"]
    )
    for arm in sorted({*(a.value for a in Arm), *totals.predictions}):
        predictions.add_metric([arm], totals.predictions.get(arm, 0))
    yield predictions
    fallbacks = CounterMetricFamily(
        "delaycast_fallbacks",
        "ML-arm bookings served by the heuristic, by reason.",
        labels=["reason"],
    )
    for reason in sorted({*(r.value for r in FallbackReason), *totals.fallbacks}):
        fallbacks.add_metric([reason], totals.fallbacks.get(reason, 0))
    yield fallbacks
    dead = CounterMetricFamily(
        "delaycast_dead_letters", "Records the prediction path sent to dead-letters."
    )
    dead.add_metric([], totals.dead_letters)
    yield dead
    latency = HistogramMetricFamily(
        "delaycast_prediction_latency_seconds",
        "From the booking's Kafka timestamp to its prediction.",
    )
    latency.add_metric(
        [],
        buckets=[("+Inf" if b == float("inf") else repr(b), n) for b, n in totals.latency_buckets],
        sum_value=totals.latency_sum,
    )
    yield latency
    if totals.weather_hit_ratio is not None:
        ratio = GaugeMetricFamily(
            "delaycast_weather_cache_hit_ratio",
            "Share of weather lookups answered from the in-process or Redis cache.",
        )
        ratio.add_metric([], totals.weather_hit_ratio)
        yield ratio


def metric_families(scrape: Scrape) -> list[Metric]:
    """The families of one scrape; a store that did not answer gives no series but its
    ``delaycast_scrape_source_up`` 0."""
    families: list[Metric] = []
    if scrape.worker is not None:
        families.extend(_worker_families(scrape.worker))
    if scrape.outcomes is not None:
        outcomes = CounterMetricFamily(
            "delaycast_outcomes", "Predictions joined with their actual delay."
        )
        outcomes.add_metric([], scrape.outcomes)
        families.append(outcomes)
    if scrape.p90_factors:
        factors = GaugeMetricFamily(
            "delaycast_p90_tracking_factor",
            "The factor online tracking applies to each served version's calibrated P90 scale "
            "(above 1: its P90s missed more than 1 in 10 and were widened).",
            labels=["version"],
        )
        for version in sorted(scrape.p90_factors):
            factors.add_metric([version], scrape.p90_factors[version])
        families.append(factors)
    kinds = scrape.dead_letters_by_kind()
    if kinds is not None:
        by_kind = CounterMetricFamily(
            "delaycast_dead_letters_by_kind",
            "Records sent to dead-letters by either path, by kind.",
            labels=["kind"],
        )
        for kind in sorted({*(k.value for k in DeadLetterKind), *kinds}):
            by_kind.add_metric([kind], kinds.get(kind, 0))
        families.append(by_kind)
    if scrape.lags:
        lag = GaugeMetricFamily(
            "delaycast_consumer_lag",
            "Messages of the topic not yet committed by the consumer group.",
            labels=["group", "topic"],
        )
        for entry in scrape.lags:
            lag.add_metric([entry.group, entry.topic], entry.messages)
        families.append(lag)
    up = GaugeMetricFamily(
        "delaycast_scrape_source_up",
        "1 when the store answered this scrape.",
        labels=["source"],
    )
    for source, answered in (
        ("redis", scrape.worker is not None),
        ("postgres", scrape.outcomes is not None),
        ("kafka", scrape.lags is not None),
    ):
        up.add_metric([source], 1.0 if answered else 0.0)
    families.append(up)
    return families


class StoreCollector(Collector):
    """Reads the stores at each scrape through ``read``."""

    def __init__(self, read: Callable[[], Scrape]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        return metric_families(self._read())

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to read at registration


def registry_for(read: Callable[[], Scrape]) -> CollectorRegistry:
    """A registry of delaycast's series only (no process or platform collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(read))
    return registry


def render(scrape: Scrape) -> bytes:
    """The Prometheus text exposition of one scrape's values."""
    return generate_latest(registry_for(lambda: scrape))


def read_scrape(resources: Resources) -> Scrape:
    """Read every store once (blocking, bounded by the clients' timeouts)."""
    s = resources.settings
    try:
        worker: WorkerTotals | None = parse_totals(resources.redis.hgetall(metrics_key(s)))
    except (RedisError, OSError) as exc:
        log.warning("[API] /metrics: Redis unavailable (%s)", type(exc).__name__)
        worker = None
    outcomes: int | None = None
    join_dead: dict[str, int] | None = None
    try:
        counters = read_counters(resources.engine)
        outcomes = counters.get(OUTCOMES_COUNTER, 0)
        join_dead = {
            name.removeprefix(JOIN_DEAD_LETTERS): n
            for name, n in counters.items()
            if name.startswith(JOIN_DEAD_LETTERS)
        }
    except SQLAlchemyError as exc:
        log.warning("[API] /metrics: PostgreSQL unavailable (%s)", type(exc).__name__)
    lags: list[Lag] = []
    for group, topic, always in consumed_topics(s):
        try:
            messages = resources.lag.lag(group=group, topic=topic, require_commit=not always)
            lags.append(Lag(group, topic, messages))
        except KafkaUnreachable as exc:
            log.warning("[API] /metrics: consumer lag unknown (%s)", exc)
            lags = []
            break  # one wait for a broker that does not answer, not one per topic
        except KafkaLagError as exc:
            log.debug("[API] /metrics: lag of %s on %s unknown (%s)", group, topic, exc)
    try:
        sums = TrackingStore(resources.redis, s.p90_tracking_redis_key, limit=0.0).read()
        factors: dict[str, float] | None = {
            version: tracking_factor(total, s.p90_tracking_rate) for version, total in sums.items()
        }
    except Exception:  # Redis down (said for the worker counters) or a garbled hash
        factors = None
    return Scrape(
        worker,
        outcomes,
        tuple(lags) if lags else None,
        factors if s.p90_tracking_rate > 0 else {},
        join_dead,
    )


def consumed_topics(s: Settings) -> list[tuple[str, str, bool]]:
    """Each consumer group that may read each topic, and whether its lag is always shown.

    The bookings' lag under CONSUMER_GROUP is always shown (nothing committed: every booking
    waits). The join's topics are read under ``<group>-outcomes`` when the paths run apart and
    under CONSUMER_GROUP when a worker runs both (``--role all``): each is shown once its group
    has committed there, so the group that no worker runs never shows a topic's whole length.
    """
    predict, outcomes, history = (
        s.topic(s.consumer_group),
        s.topic(f"{s.consumer_group}-outcomes"),
        s.topic(f"{s.consumer_group}-history"),
    )
    joined = [s.topic(t) for t in ("predictions", "actual-delays", "actual-delays-routed")]
    return [
        (predict, s.topic("bookings"), True),
        *((group, topic, False) for group in (outcomes, predict) for topic in joined),
        *((history, s.topic(t), False) for t in ("predictions", "outcomes", "alerts")),
    ]


router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def metrics(request: Request) -> Response:
    """Worker counters, latency histogram, weather cache hit ratio, outcomes, consumer lag and
    the served P90's online factors."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
