"""The Faust application. Only the App lives here; agents are in streams.agents."""

from __future__ import annotations

from streams.faust_config import make_app
from streams.settings import delaycast_home, get_settings

settings = get_settings()

app = make_app(settings, settings.worker_group, delaycast_home() / "faust")
