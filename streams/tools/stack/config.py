"""The stack's inputs besides its home: preferred ports, and servers the environment names."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from streams import settings as _settings
from streams.tools.stack.endpoints import ENV_NAMES


def _port_of(url: str) -> int:
    port = urlsplit(url if "://" in url else f"kafka://{url}").port
    assert port is not None, url
    return port


@dataclass(frozen=True)
class Ports:
    """Preferred loopback ports; a taken one is replaced by the next free port above it."""

    kafka: int = _port_of(_settings.DEFAULT_KAFKA)
    kafka_controller: int = _port_of(_settings.DEFAULT_KAFKA) + 1
    redis: int = _port_of(_settings.DEFAULT_REDIS)
    postgres: int = _port_of(_settings.DEFAULT_DATABASE)


@dataclass(frozen=True)
class External:
    """Servers named by KAFKA_BOOTSTRAP_SERVERS, REDIS_URL, DATABASE_URL: checked, not started."""

    kafka_bootstrap_servers: str | None = None
    redis_url: str | None = None
    database_url: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> External:
        env = os.environ if environ is None else environ
        values = {key: env.get(name) or None for key, name in ENV_NAMES.items()}
        return cls(**values)

    def get(self, key: str) -> str | None:
        value: str | None = getattr(self, key)
        return value
