"""The Faust application. Only the App lives here; agents are in streams.worker.agents."""

from __future__ import annotations

from streams.settings import delaycast_home, get_settings
from streams.worker.faust_config import make_app

settings = get_settings()

app = make_app(settings, settings.worker_group, delaycast_home() / "faust")
