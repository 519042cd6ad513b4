"""Where a stack keeps its files under ``$DELAYCAST_HOME/stack``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streams.settings import stack_endpoints_file


@dataclass(frozen=True)
class StackPaths:
    """The file layout of one stack; ``home`` is its DELAYCAST_HOME."""

    home: Path

    @property
    def root(self) -> Path:
        return self.home / "stack"

    @property
    def state_file(self) -> Path:
        """PIDs, ports and directories of what ``up`` started (see
        ``streams.tools.stack.state``)."""
        return self.root / "state.json"

    @property
    def endpoints_file(self) -> Path:
        """The URLs that ``streams.settings`` falls back to when the environment names none."""
        return stack_endpoints_file(self.home)

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def server_dir(self, name: str) -> Path:
        """Everything of one server (config, data, logs): ``stack/kafka``, ``stack/redis``, ..."""
        return self.root / name
