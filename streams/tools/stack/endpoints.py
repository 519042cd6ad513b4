"""The three URLs a delaycast process needs, and how they are shown without secrets."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV_NAMES = {
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "redis_url": "REDIS_URL",
    "database_url": "DATABASE_URL",
}


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``; other URLs and host lists are unchanged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


@dataclass(frozen=True)
class Endpoints:
    """Where Kafka, Redis and PostgreSQL of a stack are reached.

    ``database_url`` is an SQLAlchemy URL (``postgresql+psycopg2://...``). The repr hides
    passwords; the attributes hold the real values.
    """

    kafka_bootstrap_servers: str
    redis_url: str
    database_url: str

    def __repr__(self) -> str:
        return (
            f"Endpoints(kafka_bootstrap_servers={self.kafka_bootstrap_servers!r}, "
            f"redis_url={redact_url(self.redis_url)!r}, "
            f"database_url={redact_url(self.database_url)!r})"
        )

    def as_env(self) -> dict[str, str]:
        """The environment variables that point ``streams.settings`` at these servers."""
        return {ENV_NAMES[key]: value for key, value in asdict(self).items()}

    def export_lines(self) -> list[str]:
        """``export NAME=value`` lines for a POSIX shell, values quoted."""
        return [f"export {name}={shlex.quote(value)}" for name, value in self.as_env().items()]

    def write(self, path: Path) -> None:
        """Write the JSON file ``streams.settings`` reads; owner-only, as a given URL may hold
        a password."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self), out, indent=2)
            out.write("\n")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> Endpoints | None:
        """The endpoints in ``path``, or None when it is missing or unreadable."""
        try:
            data = json.loads(path.read_text())
            return cls(
                kafka_bootstrap_servers=str(data["kafka_bootstrap_servers"]),
                redis_url=str(data["redis_url"]),
                database_url=str(data["database_url"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
