"""A Redis server on loopback from the Debian package, persisting with an append-only file.

Files under its directory: ``redis.conf`` (rewritten at each start), ``data/`` (the AOF and
snapshots) and ``redis.log``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from streams.tools.stack.errors import StackError
from streams.tools.stack.health import log_size, redis_healthy, wait_healthy
from streams.tools.stack.ports import HOST, pick_port
from streams.tools.stack.process import owns, ref_for, spawn_detached, terminate
from streams.tools.stack.state import ServerRecord


def find_redis_server() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )


def _quoted(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_conf(*, port: int, data: Path) -> str:
    return "\n".join(
        [
            "# Written by `delaycast stack up`; edits are lost at the next start.",
            f"bind {HOST}",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            # Log to stdout, which the stack appends to redis.log.
            'logfile ""',
            f"dir {_quoted(data)}",
            "appendonly yes",
            # The config path in the process title lets `ps` (and `stack down`) tell this
            # server from another Redis on the machine.
            'proc-title-template "{title} {listen-addr} {config-file}"',
            "",
        ]
    )


class RedisServer:
    name = "redis"
    endpoint_key = "redis_url"

    def __init__(self, directory: Path, *, port: int) -> None:
        self.dir = directory
        self.port = port
        self.log = directory / "redis.log"
        self._log_mark = 0

    def launch(self, previous: ServerRecord | None = None) -> ServerRecord:
        exe = find_redis_server()
        if exe is None:
            raise StackError("redis-server is not installed; run `delaycast stack install`")
        port = pick_port(previous.port if previous and previous.port else self.port)
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        conf.write_text(redis_conf(port=port, data=data))
        self._log_mark = log_size(self.log)
        pid = spawn_detached([exe, str(conf)], cwd=data, log_file=self.log)
        return ServerRecord(
            name=self.name,
            managed=True,
            endpoint=f"redis://{HOST}:{port}/0",
            port=port,
            process=ref_for(pid, self.dir),
            data_dir=data,
            log_file=self.log,
        )

    def wait_ready(self, record: ServerRecord, timeout_s: float) -> None:
        ref = record.process
        wait_healthy(
            self.name,
            lambda: self.healthy(record.endpoint, 1.0),
            timeout_s=timeout_s,
            alive=lambda: ref is not None and owns(ref),
            log_files={self.log: self._log_mark},
        )

    def healthy(self, endpoint: str, timeout_s: float) -> bool:
        return redis_healthy(endpoint, timeout_s)

    def unrecorded(self) -> ServerRecord | None:
        # Started and recorded within milliseconds; there is no PID file to recover from.
        return None

    def stop(self, record: ServerRecord) -> bool:
        # On SIGTERM Redis flushes its append-only file before it exits.
        return record.process is not None and terminate(record.process, grace_s=15.0)
