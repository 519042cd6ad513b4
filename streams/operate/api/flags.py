"""``/api/feature-flags``: the routing flags in force, and the rollout changed over HTTP.

A change goes through :func:`streams.operate.flag_change.change_flags`, exactly as ``delaycast
flags``: Redis, then an audit row in ``flag_changes`` with actor ``api:<actor>``, then the log.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from connectors.flags import FlagFormatError, FlagState
from connectors.postgres import recent_flag_changes
from streams.operate import flag_change
from streams.operate.api.auth import require_token
from streams.operate.api.resources import Resources, get_resources
from streams.operate.api.responses import FlagChange, Flags

log = logging.getLogger("delaycast.api")

RECENT_CHANGES = 20
ACTOR_PATTERN = r"^[^\x00-\x1f\x7f]+$"
ACTOR = "a name of 1 to 100 printable characters, or null"

router = APIRouter(prefix="/api/feature-flags", tags=["feature flags"])
Res = Annotated[Resources, Depends(get_resources)]


class EnableBody(BaseModel):
    percentage: float = Field(
        ge=0, le=100, allow_inf_nan=False, description="a share of bookings from 0 to 100"
    )
    actor: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=ACTOR_PATTERN, description=ACTOR
    )


class DisableBody(BaseModel):
    actor: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=ACTOR_PATTERN, description=ACTOR
    )


def _recent_changes(resources: Resources) -> list[FlagChange]:
    try:
        rows = recent_flag_changes(resources.engine, limit=RECENT_CHANGES)
    except SQLAlchemyError as exc:
        log.warning("[API] flag audit trail unreadable (%s)", type(exc).__name__)
        return []
    return [FlagChange.model_validate(row) for row in rows]


def _flags(state: FlagState, *, stored: bool, resources: Resources) -> Flags:
    return Flags(
        ml_enabled=state.ml_enabled,
        ml_traffic_percentage=state.ml_traffic_percentage,
        source="redis" if stored else "settings",
        version=state.version if stored else None,
        recent_changes=_recent_changes(resources),
    )


def current_flags(resources: Resources) -> Flags:
    """The flags in Redis; the settings' values when Redis is unreachable or holds none."""
    try:
        state = resources.flag_store.read()
    except (RedisError, OSError, FlagFormatError) as exc:
        log.warning("[API] flags unreadable in Redis (%s); showing the settings'", exc)
        state = None
    if state is None:
        return _flags(resources.initial_flags, stored=False, resources=resources)
    return _flags(state, stored=True, resources=resources)


def _change(
    resources: Resources, *, ml_enabled: bool, percentage: float | None, actor: str | None
) -> Flags:
    try:
        _, new = flag_change.change_flags(
            resources.flag_store,
            resources.engine,
            initial=resources.initial_flags,
            ml_enabled=ml_enabled,
            percentage=percentage,
            actor=f"api:{actor or 'anonymous'}",
            now=resources.clock(),
        )
    except (RedisError, OSError) as exc:
        raise HTTPException(
            status_code=503, detail=f"Redis is unavailable ({type(exc).__name__}): flags unchanged"
        ) from None
    except FlagFormatError as exc:
        raise HTTPException(status_code=503, detail=f"{exc}: flags unchanged") from None
    except flag_change.AuditNotRecorded as exc:
        raise HTTPException(
            status_code=503,
            detail=f"flags changed in Redis, but PostgreSQL is unavailable "
            f"({type(exc.cause).__name__}): the change is not audited",
        ) from None
    return _flags(new, stored=True, resources=resources)


@router.get("/status", response_model=Flags)
def flags_status(resources: Res) -> Flags:
    """The flags in force, where they come from, and the latest changes."""
    return current_flags(resources)


@router.post("/ml/enable", response_model=Flags, dependencies=[Depends(require_token)])
def enable_ml(body: EnableBody, resources: Res) -> Flags:
    """Route ``percentage`` % of bookings to the ML model (every worker within a second)."""
    return _change(resources, ml_enabled=True, percentage=body.percentage, actor=body.actor)


@router.post("/ml/disable", response_model=Flags, dependencies=[Depends(require_token)])
def disable_ml(resources: Res, body: DisableBody | None = None) -> Flags:
    """The kill switch: every booking to the heuristic (the percentage is kept)."""
    actor = body.actor if body is not None else None
    return _change(resources, ml_enabled=False, percentage=None, actor=actor)
