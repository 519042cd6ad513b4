"""One incident timeline: flag changes, model promotions and rollbacks, ramp moves, drift alarms,
alerts and A/B verdict shifts, in time order, each with a link to its evidence.

Read from where each is recorded: ``flag_changes``, the model directory's audit log,
``ramp_moves`` and ``alerts`` (drift alarms, thresholds, label coverage and A/B verdict changes
are alerts). Times are those of the things themselves: a flag change's, a move's, an alert's
event time, an audit line's. Each entry keeps its own numbers in ``evidence`` and names the API
path that shows the rest in ``link``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors.model_store import read_audit
from connectors.postgres.flag_audit import flag_changes_between
from connectors.postgres.monitoring import alerts_between
from connectors.postgres.ramp import moves_between

log = logging.getLogger("delaycast.timeline")

_MODEL_ACTIONS = {
    "promote": "promotion",
    "rollback": "model rollback",
    "challenger": "challenger registered",
    "train": "training",
}


def _flag_entry(row: dict[str, Any]) -> dict[str, Any]:
    def state(enabled: bool, pct: float) -> str:
        return f"ML {'enabled' if enabled else 'disabled'} at {pct:g} %"

    old = state(row["old_ml_enabled"], row["old_ml_traffic_percentage"])
    new = state(row["new_ml_enabled"], row["new_ml_traffic_percentage"])
    return {
        "at": row["changed_at"],
        "source": "flags",
        "kind": "flag_change",
        "title": f"{old} -> {new}",
        "detail": f"by {row['actor']} (version {row['version']})",
        "actor": row["actor"],
        "link": "/api/feature-flags/status",
        "evidence": {
            "version": row["version"],
            "from": row["old_ml_traffic_percentage"],
            "to": row["new_ml_traffic_percentage"],
        },
    }


def _move_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": row["at"],
        "source": "ramp",
        "kind": f"ramp_{row['kind']}",
        "title": f"ramp {row['kind']}: {row['from_percentage']:g} % -> {row['to_percentage']:g} %",
        "detail": row["reason"],
        "actor": row["actor"],
        "link": "/api/ramp/status",
        "evidence": {"ramp_id": row["ramp_id"], "seq": row["seq"], **_flat(row["evidence"])},
    }


def _alert_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": row["event_time"],
        "source": "alerts",
        "kind": row["kind"],
        "title": f"{row['severity']} {row['kind']}: {row['subject']}",
        "detail": row["message"],
        "actor": None,
        "link": f"/api/alerts?kind={row['kind']}",
        "evidence": {"alert_id": row["alert_id"], **row["evidence"]},
    }


def _audit_entries(model_dir: Path, since: datetime, until: datetime) -> list[dict[str, Any]]:
    try:
        lines = read_audit(model_dir)
    except (OSError, ValueError) as exc:
        log.warning("[Timeline] the model audit log cannot be read: %s", exc)
        return []
    entries = []
    for line in lines:
        try:
            at = datetime.fromisoformat(str(line["at"]))
        except (KeyError, ValueError):
            continue
        if not since <= at < until:
            continue
        action = str(line.get("action", "?"))
        version = line.get("version") or line.get("to") or ""
        entries.append(
            {
                "at": at,
                "source": "models",
                "kind": f"model_{action}",
                "title": f"{_MODEL_ACTIONS.get(action, action)} {version}".strip(),
                "detail": str(line.get("reason") or line.get("note") or ""),
                "actor": line.get("actor") or line.get("user"),
                "link": "/api/health",
                "evidence": _flat({k: v for k, v in line.items() if k not in ("at", "host")}),
            }
        )
    return entries


def _flat(data: Any) -> dict[str, Any]:
    """The scalar fields of ``data`` (nested ones left out: the link shows them)."""
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str | int | float | bool) or v is None}


def timeline(
    engine: sa.Engine,
    *,
    model_dir: Path,
    since: datetime,
    until: datetime,
    limit: int,
    sources: Callable[[str], bool] = lambda _: True,
) -> list[dict[str, Any]]:
    """The entries with ``since <= at < until``, oldest first, the newest ``limit`` of them."""
    entries: list[dict[str, Any]] = []
    if sources("flags"):
        rows = flag_changes_between(engine, since=since, until=until, limit=limit)
        entries += [_flag_entry(r) for r in rows]
    if sources("ramp"):
        rows = moves_between(engine, since=since, until=until)[-limit:]
        entries += [_move_entry(r) for r in rows]
    if sources("alerts"):
        rows = alerts_between(engine, since=since, until=until, limit=limit)
        entries += [_alert_entry(r) for r in rows]
    if sources("models"):
        entries += _audit_entries(model_dir, since, until)
    entries.sort(key=lambda e: (e["at"], e["source"]))
    return entries[-limit:]
