"""A Faust app configured like delaycast's own (:mod:`streams.app`), for the bench-only agents.

Same broker, serializers, offset reset, commit interval and session timeouts as the worker, with
an app id (consumer group) of its own, so scenarios (b) and (f) differ from the real worker
only in what their agent does.
"""

from __future__ import annotations

import sys

import faust

from streams.settings import Settings, delaycast_home


def bench_app(settings: Settings, name: str) -> faust.App:
    return faust.App(
        settings.topic(name),
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.consumer_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.consumer_session_timeout_s / 3),
        web_enabled=False,
        datadir=str(delaycast_home() / "bench" / "faust" / "{conf.name}"),
    )


def bookings_topic(app: faust.App, settings: Settings) -> faust.TopicT:
    return app.topic(
        settings.topic("bookings"),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


def run_worker(app: faust.App) -> None:
    """Run ``app``'s worker in this process until it is sent SIGTERM."""
    (delaycast_home() / "bench" / "faust").mkdir(parents=True, exist_ok=True)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--without-web"]
    app.main()
