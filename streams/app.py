"""The Faust application. Only the App lives here; agents are in streams.agents."""

from __future__ import annotations

import faust

from streams.settings import delaycast_home, get_settings

settings = get_settings()

app = faust.App(
    settings.worker_group,
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
    datadir=str(delaycast_home() / "faust" / "{conf.name}"),
    # No autodiscovery: it would import every module of the origin package (the API, the bench,
    # scikit-learn and river with them) into every worker. `delaycast worker` imports
    # streams.agents, which registers the agents of the worker's role.
    autodiscover=False,
    origin="streams",
)
