"""Query parameters shared by the endpoints. Each ``description`` says what is expected: it is
both the OpenAPI description and the 400 message for a bad value (see
:mod:`streams.operate.api.errors`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from schemas import AlertKind

MAX_HOURS = 2160
MAX_DAYS = 366
MAX_LIMIT = 1000
MAX_THRESHOLD_MAE = 240.0

Hours = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_HOURS,
        description=f"a whole number of hours from 1 to {MAX_HOURS}",
    ),
]
Days = Annotated[
    int,
    Query(ge=1, le=MAX_DAYS, description=f"a whole number of days from 1 to {MAX_DAYS}"),
]
Limit = Annotated[
    int,
    Query(ge=1, le=MAX_LIMIT, description=f"a whole number of rows from 1 to {MAX_LIMIT}"),
]
ThresholdMae = Annotated[
    float,
    Query(
        gt=0,
        le=MAX_THRESHOLD_MAE,
        allow_inf_nan=False,
        description=f"minutes above 0, at most {MAX_THRESHOLD_MAE:g}",
    ),
]
Kind = Annotated[
    AlertKind | None,
    Query(description="one of " + ", ".join(k.value for k in AlertKind)),
]
WindowName = Annotated[
    Literal["15m", "1h", "24h", "7d", "all"] | None,
    Query(
        description="one of 15m, 1h, 24h, 7d (the last span of event time) or all (since "
        "start); 24h when neither window nor hours is given",
    ),
]
OptionalHours = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_HOURS,
        description=f"a whole number of hours from 1 to {MAX_HOURS}",
    ),
]
