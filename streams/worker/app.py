"""The worker's Faust app, made by :func:`create_app` from the settings it is given.

Nothing is built when a module is imported: ``delaycast worker`` reads the settings, makes the
app (with the runtime that wires both paths, and the agents of the worker's role) and runs it.
"""

from __future__ import annotations

import faust

from streams.settings import Settings, delaycast_home
from streams.worker.agents import register
from streams.worker.faust_config import make_app
from streams.worker.runtime import Runtime


def create_app(settings: Settings) -> faust.App:
    """A worker's app: its consumer group is the role's (:attr:`Settings.worker_group`), the
    runtime starts and stops with it, and only the agents of ``settings.worker_role`` run."""
    app = make_app(settings, settings.worker_group, delaycast_home() / "faust")
    runtime = Runtime(app, settings)
    app.add_dependency(runtime)
    register(app, settings, runtime)
    return app
