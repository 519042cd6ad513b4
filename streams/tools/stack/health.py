"""Is a server answering? One check per kind of server, and the wait for one to come up.

A check never raises for an unreachable server: it returns False, so callers can poll it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psycopg2
import redis

from connectors.kafka_admin import broker_count
from streams.tools.stack.errors import StackError
from streams.tools.stack.ports import is_listening


def _first_host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    first = first.split("://", 1)[-1]
    host, _, port = first.rpartition(":")
    return host.strip("[]"), int(port)


def kafka_healthy(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True when the cluster reports at least one broker."""
    try:
        host, port = _first_host_port(bootstrap)
    except ValueError:
        return False
    # Probe the socket first: librdkafka logs every refused connection while it retries.
    if not is_listening(port, host, timeout_s=min(timeout_s, 1.0)):
        return False
    return broker_count(bootstrap, timeout_s=timeout_s) > 0


def redis_healthy(url: str, timeout_s: float = 3.0) -> bool:
    """True when Redis answers PING."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def libpq_url(database_url: str) -> str:
    """The libpq form of an SQLAlchemy URL: ``postgresql+psycopg2://`` becomes ``postgresql://``."""
    scheme, sep, rest = database_url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def postgres_healthy(database_url: str, timeout_s: float = 3.0) -> bool:
    """True when PostgreSQL accepts a connection and answers ``SELECT 1``."""
    try:
        # libpq rounds connect_timeout below 2 s up to 2 s.
        conn = psycopg2.connect(libpq_url(database_url), connect_timeout=max(2, round(timeout_s)))
    except psycopg2.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    except psycopg2.Error:
        return False
    finally:
        conn.close()


def log_size(path: Path) -> int:
    """Current size of ``path`` (0 when missing): taken at a start, so that a failure report
    shows what that start wrote, not an earlier run's last lines."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_tail(path: Path, *, since: int = 0, lines: int = 15) -> str:
    """The last ``lines`` lines of ``path`` written after byte ``since``; empty if none."""
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(0, 2)
        end = f.tell()
        if end < since:  # rotated or truncated since
            since = 0
        f.seek(max(since, end - 16_384))
        text = f.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def wait_healthy(
    name: str,
    check: Callable[[], bool],
    *,
    timeout_s: float,
    alive: Callable[[], bool],
    log_files: Mapping[Path, int],
) -> None:
    """Poll ``check`` until it passes; raise StackError naming the logs when the process exits
    first (``alive`` turns False) or ``timeout_s`` runs out. ``log_files`` maps each log to the
    size it had when the server was started (see ``log_size``)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        if check():
            return
        if not alive():
            problem = f"{name} exited while starting"
            break
        if time.monotonic() >= deadline:
            problem = f"{name} was not healthy after {timeout_s:.0f} s"
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    message = f"{problem}; see {' and '.join(str(p) for p in log_files)}"
    for path, since in log_files.items():
        tail = log_tail(path, since=since)
        if tail:
            message += f"\nlast lines of {path}:\n{tail}"
    raise StackError(message)
