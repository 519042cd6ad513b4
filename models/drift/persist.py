"""Saving and restoring a monitor's state, checked against the monitor's configuration.

The state is a pickle (it holds river detectors). Restore only bytes this code saved (e.g. from
the project's own database): unpickling runs code named in the data.
"""

from __future__ import annotations

import pickle
from typing import Any

_FORMAT = 1


def dump_state(monitor: str, config: Any, data: Any) -> bytes:
    return pickle.dumps(
        {"format": _FORMAT, "monitor": monitor, "config": config, "data": data},
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def load_state(monitor: str, config: Any, state: bytes) -> Any:
    """The saved data; ValueError when it was saved by another monitor, format or
    configuration (the caller then starts afresh rather than mixing two configurations)."""
    try:
        saved = pickle.loads(state)
    except Exception as exc:  # any unpickling failure means: not a state we can use
        raise ValueError(f"not a saved monitor state: {exc}") from exc
    if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
        raise ValueError("not a saved monitor state of this format")
    if saved.get("monitor") != monitor:
        raise ValueError(f"state of a {saved.get('monitor')} monitor, not of a {monitor} monitor")
    if saved.get("config") != config:
        raise ValueError("state saved with another configuration")
    return saved["data"]
