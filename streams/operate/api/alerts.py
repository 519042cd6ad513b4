"""``/api/alerts``: the alerts raised (drift, thresholds, fallback storms, A/B verdicts).

The window is event time like the metrics' (a named ``window`` or the last ``hours``): alerts
whose ``event_time`` is at its start or later, any newer than ``as_of`` included (an alert
about predictions can be newer than the newest outcome); newest raised first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from connectors.postgres import monitoring as queries
from streams.operate.api.params import Kind, Limit, OptionalHours, WindowName
from streams.operate.api.resources import Resources, get_resources
from streams.operate.api.responses import Alerts
from streams.operate.api.window_query import requested_window

router = APIRouter(prefix="/api", tags=["alerts"])
Res = Annotated[Resources, Depends(get_resources)]


@router.get("/alerts", response_model=Alerts)
def alerts(
    resources: Res,
    window: WindowName = None,
    hours: OptionalHours = None,
    limit: Limit = 100,
    kind: Kind = None,
) -> Alerts:
    """Alerts of the window, of one ``kind`` when given, newest first."""
    with resources.engine.connect() as connection:
        chosen = requested_window(connection, window=window, hours=hours, now=resources.clock())
        items = queries.recent_alerts(
            connection,
            since=chosen.start,
            limit=limit,
            kind=None if kind is None else kind.value,
        )
    return Alerts.model_validate({"items": items})
