"""The routing flags as stored in Redis: one hash, parsed and rendered in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class FlagState:
    ml_enabled: bool
    ml_traffic_percentage: float
    salt: str
    version: int = 0
    updated_at: datetime | None = None
    updated_by: str | None = None

    def describe(self) -> str:
        state = "enabled" if self.ml_enabled else "disabled"
        return f"ML {state} at {self.ml_traffic_percentage:g} %"

    def changed(self, *, ml_enabled: bool, ml_traffic_percentage: float) -> FlagState:
        return replace(self, ml_enabled=ml_enabled, ml_traffic_percentage=ml_traffic_percentage)


class FlagFormatError(ValueError):
    """The Redis hash exists but does not hold valid flags."""


def parse_flags(raw: Mapping[Any, Any]) -> FlagState | None:
    """Parse a Redis HGETALL reply; None when the hash does not exist yet."""
    if not raw:
        return None
    data = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
    try:
        percentage = float(data["ml_traffic_percentage"])
        if not 0 <= percentage <= 100:
            raise ValueError(f"percentage {percentage} outside 0-100")
        enabled = data["ml_enabled"]
        if enabled not in ("0", "1"):
            raise ValueError(f"ml_enabled {enabled!r} is not 0 or 1")
        updated_at = data.get("updated_at")
        return FlagState(
            ml_enabled=enabled == "1",
            ml_traffic_percentage=percentage,
            salt=data["salt"],
            version=int(data.get("version", "0")),
            updated_at=datetime.fromisoformat(updated_at) if updated_at else None,
            updated_by=data.get("updated_by") or None,
        )
    except (KeyError, ValueError) as exc:
        raise FlagFormatError(f"invalid flags in Redis: {exc}") from exc


def render_flags(state: FlagState) -> dict[str, str]:
    return {
        "ml_enabled": "1" if state.ml_enabled else "0",
        "ml_traffic_percentage": repr(float(state.ml_traffic_percentage)),
        "salt": state.salt,
        "version": str(state.version),
        "updated_at": state.updated_at.isoformat() if state.updated_at else "",
        "updated_by": state.updated_by or "",
    }
