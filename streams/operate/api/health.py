"""``/api/health``: PostgreSQL, Redis, Kafka and the champion model, checked side by side.

Overall ``down`` (HTTP 503) when PostgreSQL is down, as nothing can be shown without it;
``degraded`` (HTTP 200) when anything else is not ok. Each check is bounded by its client's
timeout (about 2 s), so the answer comes within a few seconds even with every server down.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from connectors.kafka_admin import broker_count
from connectors.model_store import ArtifactError, champion_version
from connectors.postgres.monitoring import schema_revision
from streams.operate.api.resources import KAFKA_TIMEOUT_S, Resources, get_resources
from streams.operate.api.responses import Dependencies, Dependency, Health, Status

router = APIRouter(prefix="/api", tags=["health"])
Res = Annotated[Resources, Depends(get_resources)]


def _timed(check: Callable[[], tuple[Status, str]]) -> Dependency:
    started = time.perf_counter()
    status, detail = check()
    latency = round((time.perf_counter() - started) * 1000.0, 3)
    return Dependency(status=status, detail=detail, latency_ms=latency)


def check_postgres(resources: Resources) -> Dependency:
    def check() -> tuple[Status, str]:
        try:
            revision = schema_revision(resources.engine)
        except SQLAlchemyError as exc:
            return "down", f"no answer ({type(exc).__name__})"
        if revision != resources.head_revision:
            return "degraded", (
                f"schema at revision {revision}, code expects {resources.head_revision}: "
                "run 'delaycast db upgrade'"
            )
        return "ok", f"schema at revision {revision}"

    return _timed(check)


def check_redis(resources: Resources) -> Dependency:
    def check() -> tuple[Status, str]:
        try:
            resources.redis.ping()
        except (RedisError, OSError) as exc:
            return "down", f"no answer ({type(exc).__name__})"
        return "ok", "answers PING"

    return _timed(check)


def check_kafka(resources: Resources) -> Dependency:
    def check() -> tuple[Status, str]:
        brokers = broker_count(
            resources.settings.kafka_bootstrap_servers,
            timeout_s=KAFKA_TIMEOUT_S,
            client=resources.kafka_admin,
        )
        if brokers == 0:
            return "down", f"no broker answered within {KAFKA_TIMEOUT_S:g} s"
        return "ok", f"{brokers} broker{'s' if brokers > 1 else ''}"

    return _timed(check)


def check_model(resources: Resources) -> Dependency:
    """The champion in MODEL_DIR, as the workers on this machine would load it."""
    model_dir = resources.settings.model_dir

    def check() -> tuple[Status, str]:
        try:
            version = champion_version(model_dir)
        except ArtifactError as exc:
            return "degraded", str(exc)
        if version is None:
            return "degraded", "no champion model: the heuristic serves every booking"
        try:
            metadata = json.loads((model_dir / version / "metadata.json").read_text())
        except (OSError, ValueError) as exc:
            return "degraded", f"champion {version} unreadable ({type(exc).__name__})"
        if metadata.get("model_version") != version:
            return "degraded", f"champion {version} has mismatched metadata"
        return "ok", f"champion {version}"

    return _timed(check)


def overall(dependencies: Dependencies) -> Status:
    if dependencies.postgres.status == "down":
        return "down"
    statuses = [d.status for d in (dependencies.postgres, dependencies.redis)]
    statuses += [dependencies.kafka.status, dependencies.model.status]
    return "ok" if all(s == "ok" for s in statuses) else "degraded"


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "PostgreSQL is down"}},
)
async def health(resources: Res) -> JSONResponse:
    """The state of each dependency and of the whole."""
    postgres, redis, kafka, model = await asyncio.gather(
        *(
            run_in_threadpool(check, resources)
            for check in (check_postgres, check_redis, check_kafka, check_model)
        )
    )
    dependencies = Dependencies(postgres=postgres, redis=redis, kafka=kafka, model=model)
    answer = Health(
        status=overall(dependencies), checked_at=resources.clock(), dependencies=dependencies
    )
    return JSONResponse(
        answer.model_dump(mode="json"), status_code=503 if answer.status == "down" else 200
    )
