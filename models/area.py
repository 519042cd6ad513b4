"""The service area: where and in which local time the bookings happen.

Local time (hour of day, weekday, month) is computed in the area's timezone, and
``pickup_center_km`` is the distance to the area's centre. The area is configuration (settings
``SERVICE_AREA_*``); training stores it in the artifact's metadata, and a model trained for one
area is not served under another area's settings: its features would mean something else.

>>> GENEVA.tz.key, GENEVA.mismatch(GENEVA)
('Europe/Zurich', [])
>>> ServiceArea.from_dict(GENEVA.to_dict()) == GENEVA
True
>>> ny = ServiceArea(timezone="America/New_York", center_lat=40.7, center_lon=-73.9)
>>> GENEVA.mismatch(ny)
['timezone', 'centre 6210 km away']
>>> ny.describe()
'America/New_York, centre 40.7000,-73.9000, radius 30 km'
>>> ServiceArea(timezone="Mars/Olympus")
Traceback (most recent call last):
...
ValueError: unknown timezone 'Mars/Olympus' (expected an IANA name such as 'Europe/Zurich')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Two centres closer than this are the same area (floats written to JSON and read back).
_SAME_CENTER_KM = 0.01


@dataclass(frozen=True)
class ServiceArea:
    """A timezone (IANA name), a centre (degrees) and a radius (km) around it."""

    timezone: str = "Europe/Zurich"
    center_lat: float = 46.2044
    center_lon: float = 6.1432
    radius_km: float = 30.0

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {self.timezone!r} (expected an IANA name such as "
                "'Europe/Zurich')"
            ) from None
        if not (math.isfinite(self.center_lat) and -90 <= self.center_lat <= 90):
            raise ValueError(f"center_lat must be in [-90, 90], got {self.center_lat}")
        if not (math.isfinite(self.center_lon) and -180 <= self.center_lon <= 180):
            raise ValueError(f"center_lon must be in [-180, 180], got {self.center_lon}")
        if not (math.isfinite(self.radius_km) and self.radius_km > 0):
            raise ValueError(f"radius_km must be > 0, got {self.radius_km}")

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ServiceArea:
        """An area from :meth:`to_dict`; anything else raises ValueError saying what is wrong."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"a service area is an object with exactly the keys {sorted(names)}")
        if not isinstance(data["timezone"], str):
            raise ValueError("a service area's timezone is a string")
        numbers = {k: data[k] for k in names - {"timezone"}}
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in numbers.values()
        ):
            raise ValueError("a service area's centre and radius are numbers")
        return cls(timezone=data["timezone"], **{k: float(v) for k, v in numbers.items()})

    def describe(self) -> str:
        return (
            f"{self.timezone}, centre {self.center_lat:.4f},{self.center_lon:.4f}, "
            f"radius {self.radius_km:g} km"
        )

    def mismatch(self, other: ServiceArea) -> list[str]:
        """What differs between this area and ``other`` (empty when they are the same)."""
        from models.features import haversine_km

        out = []
        if self.timezone != other.timezone:
            out.append("timezone")
        apart = float(
            haversine_km(self.center_lat, self.center_lon, other.center_lat, other.center_lon)
        )
        if apart > _SAME_CENTER_KM:
            out.append(f"centre {apart:.0f} km away")
        if not math.isclose(self.radius_km, other.radius_km, rel_tol=1e-6):
            out.append("radius")
        return out


GENEVA = ServiceArea()
