"""How delaycast configures Faust: the worker's app (:mod:`streams.app`) and the benchmark's
bench-only apps are built here alike, so they differ only in their id and data directory."""

from __future__ import annotations

from pathlib import Path

import faust
from faust.types import TopicT

from streams.settings import Settings


def make_app(settings: Settings, app_id: str, datadir: Path) -> faust.App:
    """A Faust app on the settings' broker; ``app_id`` is its consumer group."""
    return faust.App(
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


def raw_topic(app: faust.App, *names: str) -> TopicT:
    """``names`` as one source of raw bytes: the agents decode and validate themselves."""
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
