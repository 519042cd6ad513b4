"""What the API's endpoints share while it runs: the settings, a PostgreSQL engine, a Redis
client, the Kafka lag reader and the clock. Built once by the app factory, released at shutdown.

Every client has short timeouts, so an endpoint answers (503, or a degraded health) within a few
seconds when a server is down instead of hanging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis
import sqlalchemy as sa
from confluent_kafka.admin import AdminClient
from fastapi import Request

from connectors.flags import FlagState, FlagStore
from connectors.kafka_admin import admin_client
from connectors.kafka_lag import LagReader
from connectors.postgres import head_revision, make_engine
from streams.clock import utc_now
from streams.operate.flag_change import settings_flags
from streams.settings import Settings

POSTGRES_CONNECT_TIMEOUT_S = 2
REDIS_TIMEOUT_S = 1.0
KAFKA_TIMEOUT_S = 1.5


@dataclass
class Resources:
    settings: Settings
    engine: sa.Engine
    redis: redis.Redis
    lag: LagReader
    clock: Callable[[], datetime]
    head_revision: str | None
    # One admin client for every /api/health, kept for the app's life: a client per request
    # would open new connections to every broker each time.
    kafka_admin: AdminClient | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], datetime] = utc_now
    ) -> Resources:
        """Clients for the servers in ``settings``; nothing is connected yet."""
        return cls(
            settings=settings,
            engine=make_engine(
                settings.database_url.get_secret_value(),
                connect_timeout_s=POSTGRES_CONNECT_TIMEOUT_S,
                pool_size=8,
            ),
            redis=redis.Redis.from_url(
                settings.redis_url.get_secret_value(),
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            ),
            lag=LagReader(settings.kafka_bootstrap_servers, timeout_s=KAFKA_TIMEOUT_S),
            clock=clock,
            head_revision=head_revision(),
            kafka_admin=admin_client(settings.kafka_bootstrap_servers, KAFKA_TIMEOUT_S),
        )

    @property
    def flag_store(self) -> FlagStore:
        return FlagStore(self.redis, self.settings.flags_redis_key)

    @property
    def initial_flags(self) -> FlagState:
        return settings_flags(self.settings)

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()
        self.lag.close()


def get_resources(request: Request) -> Resources:
    """FastAPI dependency: the resources of the app serving ``request``."""
    resources: Resources = request.app.state.resources
    return resources
