"""What ``StackManager.up`` and ``StackManager.status`` report, with the lines the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from connectors.kafka_admin import EnsureResult
from streams.tools.stack.endpoints import Endpoints
from streams.tools.stack.server import ORDER
from streams.tools.stack.state import ServerRecord


@dataclass(frozen=True)
class UpResult:
    """What ``up`` did: ``started`` now, ``reused`` from an earlier ``up``, or ``external``."""

    endpoints: Endpoints
    records: dict[str, ServerRecord]
    started: tuple[str, ...]
    reused: tuple[str, ...]
    external: tuple[str, ...]
    topics: EnsureResult = field(default_factory=EnsureResult)

    def lines(self) -> list[str]:
        """One human-readable line per server."""
        out = []
        for name in ORDER:
            rec = self.records[name]
            if name in self.external:
                out.append(f"{name:<9} external         {rec.endpoint}")
                continue
            how = "started" if name in self.started else "already running"
            pid = rec.process.pid if rec.process else "?"
            out.append(f"{name:<9} {how:<16} {rec.endpoint}  pid {pid}  log {rec.log_file}")
        return out


@dataclass(frozen=True)
class ServerStatus:
    name: str
    managed: bool
    running: bool
    healthy: bool
    endpoint: str | None = None
    port: int | None = None
    pid: int | None = None
    log_file: Path | None = None

    @property
    def ok(self) -> bool:
        return self.running and self.healthy

    def line(self) -> str:
        """``name  state  port/endpoint  pid``, e.g. ``redis  running, healthy  port 16379
        pid 4242``; an external server shows its endpoint (without password) instead."""
        if not self.managed:
            state = "external, " + ("healthy" if self.healthy else "NOT answering")
            return f"{self.name:<9} {state:<24} {self.endpoint}  external"
        if not self.running:
            return f"{self.name:<9} {'not running':<24} port -      pid -"
        state = "running, " + ("healthy" if self.healthy else "NOT healthy")
        line = f"{self.name:<9} {state:<24} port {self.port:<6} pid {self.pid}"
        if not self.healthy and self.log_file:
            line += f"  (see {self.log_file})"
        return line
