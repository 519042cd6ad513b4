"""Routing flags in Redis: the state, the atomic store and the worker's watcher."""

from connectors.flags.state import FlagFormatError, FlagState, parse_flags, render_flags
from connectors.flags.store import FlagConflict, FlagStore
from connectors.flags.watcher import (
    SOURCE_LAST_SEEN,
    SOURCE_REDIS,
    SOURCE_SETTINGS,
    FlagWatcher,
)

__all__ = [
    "SOURCE_LAST_SEEN",
    "SOURCE_REDIS",
    "SOURCE_SETTINGS",
    "FlagConflict",
    "FlagFormatError",
    "FlagState",
    "FlagStore",
    "FlagWatcher",
    "parse_flags",
    "render_flags",
]
