"""A Faust app built like delaycast's own (:func:`streams.worker.faust_config.make_app`), for the
bench-only agents: an app id (consumer group) and data directory of its own, so scenarios (b)
and (f) differ from the real worker only in what their agent does.
"""

from __future__ import annotations

import sys

import faust
from faust.types import TopicT

from streams.settings import Settings, delaycast_home
from streams.worker.faust_config import make_app, raw_topic


def bench_app(settings: Settings, name: str) -> faust.App:
    return make_app(settings, settings.topic(name), delaycast_home() / "bench" / "faust")


def bookings_topic(app: faust.App, settings: Settings) -> TopicT:
    return raw_topic(app, settings.topic("bookings"))


def run_worker(app: faust.App) -> None:
    """Run ``app``'s worker in this process until it is sent SIGTERM."""
    (delaycast_home() / "bench" / "faust").mkdir(parents=True, exist_ok=True)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--without-web"]
    app.main()
