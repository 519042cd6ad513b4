"""What a stack started, persisted in ``$DELAYCAST_HOME/stack/state.json``.

``down`` trusts nothing but this file to decide what to stop, and ``up`` reads it to recognise a
stack that is already running. It is rewritten after each server starts, so that a failure
half-way leaves a file that still names every process to stop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from streams.tools.stack.errors import StackError
from streams.tools.stack.process import ProcessRef

STATE_VERSION = 1


@dataclass(frozen=True)
class ServerRecord:
    """One server of the stack.

    ``managed`` is False for a server named by the environment (KAFKA_BOOTSTRAP_SERVERS, ...):
    the stack only checked it and never stops it; its ``endpoint`` is then stored without password.
    """

    name: str
    managed: bool
    endpoint: str
    port: int | None = None
    controller_port: int | None = None
    process: ProcessRef | None = None
    data_dir: Path | None = None
    log_file: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "managed": self.managed,
            "endpoint": self.endpoint,
            "port": self.port,
            "controller_port": self.controller_port,
            "process": self.process.to_json() if self.process else None,
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "log_file": str(self.log_file) if self.log_file else None,
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> ServerRecord:
        return cls(
            name=name,
            managed=bool(data["managed"]),
            endpoint=str(data["endpoint"]),
            port=data.get("port"),
            controller_port=data.get("controller_port"),
            process=ProcessRef.from_json(data["process"]) if data.get("process") else None,
            data_dir=Path(data["data_dir"]) if data.get("data_dir") else None,
            log_file=Path(data["log_file"]) if data.get("log_file") else None,
        )


@dataclass(frozen=True)
class StackState:
    servers: dict[str, ServerRecord] = field(default_factory=dict)

    def with_server(self, record: ServerRecord) -> StackState:
        return replace(self, servers={**self.servers, record.name: record})

    def without(self, name: str) -> StackState:
        return replace(self, servers={k: v for k, v in self.servers.items() if k != name})

    def managed(self) -> list[ServerRecord]:
        return [r for r in self.servers.values() if r.managed and r.process is not None]


def load_state(path: Path) -> StackState:
    """The recorded state; empty when there is no file. A corrupt file is an error, not a reset,
    because forgetting it would orphan running servers."""
    if not path.is_file():
        return StackState()
    try:
        data = json.loads(path.read_text())
        servers = {n: ServerRecord.from_json(n, d) for n, d in data["servers"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(f"{path} is unreadable ({exc}); fix or remove it") from exc
    return StackState(servers)


def save_state(path: Path, state: StackState) -> None:
    """Write ``state`` atomically; remove the file when nothing is recorded."""
    if not state.servers:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "version": STATE_VERSION,
        "servers": {name: rec.to_json() for name, rec in state.servers.items()},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)
