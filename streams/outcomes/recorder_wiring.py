"""Building the history recorder from settings and running it beside the Faust worker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

import redis
import sqlalchemy as sa
from confluent_kafka import Consumer
from sqlalchemy.exc import SQLAlchemyError

from connectors.kafka import BlockingProducer
from connectors.p90_tracking import TrackingStore
from connectors.postgres import current_revision, head_revision, history
from connectors.postgres.quarantine import write_quarantine
from connectors.postgres.retry import describe, is_data_error, write_until_done
from connectors.webhook import WebhookNotifier
from connectors.webhook_queue import WebhookQueue
from models.alert_rules import ThresholdRules, coverage_window_warning
from models.interval import tracking_deltas, tracking_limit
from schemas import Alert, Outcome, Prediction
from schemas.quarantine import QuarantinedEvent
from streams.clock import utc_now
from streams.outcomes import labels
from streams.outcomes.ab_eval import periodic_task
from streams.outcomes.drift import DriftWatch, restore_all, save_all
from streams.outcomes.recorder import DataRefused, Monitor, Recorder, RecorderTopics
from streams.settings import Settings

log = logging.getLogger("delaycast.recorder")

CHECKPOINT_INTERVAL_S = 60.0
WEBHOOK_QUEUE = 100  # alerts waiting for a slow webhook; older ones are dropped beyond it


class PostgresHistory:
    """The recorder's writes, each retried until PostgreSQL has it; a write PostgreSQL refuses
    as data raises DataRefused (the recorder then sets the rows apart)."""

    def __init__(self, engine: sa.Engine, cancel: threading.Event) -> None:
        self.engine = engine
        self.cancel = cancel  # stops the waiting when the worker stops

    def _write(self, write: Callable[[], int], what: str) -> int:
        try:
            return write_until_done(write, what=what, log=log, cancel=self.cancel)
        except SQLAlchemyError as exc:
            if is_data_error(exc):
                raise DataRefused(describe(exc)) from None
            raise

    def write_predictions(self, predictions: Sequence[Prediction]) -> int:
        return self._write(
            lambda: history.write_predictions(self.engine, predictions=predictions),
            f"predictions batch of {len(predictions)}",
        )

    def write_outcomes(self, outcomes: Sequence[Outcome]) -> int:
        return self._write(
            lambda: history.write_outcomes(self.engine, outcomes=outcomes),
            f"outcomes batch of {len(outcomes)}",
        )

    def write_alerts(self, alerts: Sequence[Alert]) -> int:
        return self._write(
            lambda: history.write_alerts(self.engine, alerts=alerts),
            f"alerts batch of {len(alerts)}",
        )

    def write_quarantine(self, events: Sequence[QuarantinedEvent]) -> int:
        # Plain data (bytes, capped text): PostgreSQL has no reason to refuse it as data.
        return write_until_done(
            lambda: write_quarantine(self.engine, events=events),
            what=f"quarantine of {len(events)}",
            log=log,
            cancel=self.cancel,
        )


def build_recorder(
    settings: Settings,
    engine: sa.Engine,
    extra_monitors: Sequence[Monitor] = (),
    webhook_queue: int = WEBHOOK_QUEUE,
) -> Recorder:
    s = settings
    consumer = Consumer(
        {
            "bootstrap.servers": s.kafka_bootstrap_servers,
            "group.id": s.topic(f"{s.consumer_group}-history"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(s.consumer_session_timeout_s * 1000),
            "max.poll.interval.ms": int(s.recorder_max_poll_interval_s * 1000),
        }
    )
    producer = BlockingProducer(s.kafka_bootstrap_servers)
    alerts_topic = s.topic("alerts")

    def publish(alerts: list[Alert]) -> None:
        for alert in alerts:
            producer.send(alerts_topic, alert.alert_id.encode(), alert.model_dump_json().encode())
        producer.flush()

    rules = ThresholdRules(
        window=s.alert_window,
        mae_minutes=s.mae_alert_minutes,
        ml_error_rate=s.ml_error_rate_alert,
        storm_share=s.fallback_storm_share,
        coverage_low=s.coverage_alert_low,
        coverage_high=s.coverage_alert_high,
        coverage_window=s.coverage_alert_window,
    )
    warning = coverage_window_warning(
        s.coverage_alert_window, s.coverage_alert_low, s.coverage_alert_high
    )
    if warning is not None:
        log.warning("[ALERT] %s", warning)
    # The webhook is sent from a queue by a thread of its own: a slow one never delays recording.
    webhook: WebhookQueue | None = None
    if s.alert_webhook_url is not None:
        giving_up = threading.Event()
        notifier = WebhookNotifier(
            s.alert_webhook_url,
            timeout_s=s.alert_webhook_timeout_s,
            sleep=giving_up.wait,  # a backoff between retries ends at stop
        )
        webhook = WebhookQueue(notifier, capacity=webhook_queue, stopping=giving_up)
    stop = threading.Event()
    tracking: P90Tracking | None = None
    if s.p90_tracking_rate > 0:
        tracking = P90Tracking(
            TrackingStore(
                redis.Redis.from_url(
                    s.redis_url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
                ),
                s.p90_tracking_redis_key,
                limit=tracking_limit(s.p90_tracking_rate),
            )
        )
    ab_task = periodic_task(engine, clock=utc_now, publish=publish, min_samples=s.ab_min_samples)
    label_task = labels.periodic_task(
        engine,
        clock=utc_now,
        publish=publish,
        target=s.label_coverage_target,
        min_due=s.label_coverage_min_due,
        wait_minutes=s.label_wait_minutes,
        hours=s.label_coverage_hours,
    )
    drift = DriftWatch(s.model_dir)
    checkpoint_prefix = f"{s.topic(s.consumer_group)}:drift:"

    def load(name: str) -> bytes | None:
        return history.load_checkpoint(engine, name=name)

    def save(name: str, state: bytes) -> None:
        history.save_checkpoint(engine, name=name, state=state)

    def checkpoint() -> None:
        save_all(drift, save, checkpoint_prefix)

    def start() -> None:
        if webhook is not None:
            webhook.start()
        restored = restore_all(drift, load, checkpoint_prefix)
        log.info("[ML] drift monitors: %d restored from their checkpoints", restored)

    def stop_() -> None:
        if webhook is not None:
            webhook.stop()
        checkpoint()

    return Recorder(
        on_start=start,
        on_stop=stop_,
        periodic=[
            (s.ab_interval_s, ab_task),
            (s.ab_interval_s, label_task),
            (CHECKPOINT_INTERVAL_S, checkpoint),
        ],
        stop_event=stop,
        consumer=consumer,
        topics=RecorderTopics(s.topic("predictions"), s.topic("outcomes"), alerts_topic),
        history=PostgresHistory(engine, stop),
        monitors=[rules, drift, *([tracking] if tracking else []), *extra_monitors],
        publish_alerts=publish,
        notify=webhook.submit if webhook else None,
        clock=utc_now,
    )


class P90Tracking:
    """A monitor that adds each outcome batch's misses to the tracked P90 sums in Redis
    (:mod:`connectors.p90_tracking`), which the prediction path reads to widen or narrow the P90
    it serves. It raises no alert; a Redis that does not answer loses that batch's update
    (logged once until it answers again), never the batch."""

    def __init__(self, store: TrackingStore) -> None:
        self._store = store
        self._failing = False

    def on_predictions(self, predictions: Sequence[Prediction], now: datetime) -> list[Alert]:
        return []

    def on_outcomes(self, outcomes: Sequence[Outcome], now: datetime) -> list[Alert]:
        deltas = tracking_deltas(
            (o.model_version for o in outcomes), (o.within_p90 for o in outcomes)
        )
        try:
            self._store.add(deltas)
        except (redis.RedisError, OSError) as exc:
            if not self._failing:
                log.warning("[P90] cannot update the tracked P90 sums: %s", type(exc).__name__)
            self._failing = True
            return []
        self._failing = False
        return []


def wait_for_schema(engine: sa.Engine, stop: threading.Event, every_s: float = 5.0) -> bool:
    """Wait until PostgreSQL answers with the schema this code needs; False if stopped first."""
    reported = None
    while not stop.is_set():
        try:
            current, head = current_revision(engine), head_revision()
            if current == head:
                if reported is not None:
                    log.info("[ML] PostgreSQL ready at revision %s; recording history", head)
                return True
            problem = (
                f"the database is at revision {current or 'empty'} and delaycast needs {head}: "
                "run `delaycast db upgrade`"
            )
        except SQLAlchemyError as exc:
            problem = f"PostgreSQL is unreachable ({describe(exc)})"
        if problem != reported:
            log.error("[ML] history recording waits: %s", problem)
            reported = problem
        stop.wait(every_s)
    return False


def run_recorder(recorder: Recorder, engine: sa.Engine) -> None:
    """Record until the recorder is stopped, once PostgreSQL has the schema this code needs."""
    try:
        if wait_for_schema(engine, recorder.stop_event):
            recorder.run()
    except Exception:
        log.exception("[ML] the history recorder stopped on an error")
        raise
