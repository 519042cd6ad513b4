"""A synthetic world that looks like the Geneva medical-transport business, for demos and tests.

Deterministic given a seed (and, for history, the period). Its parts, one module each:
:mod:`~models.synthetic.places` (communes, hospitals, stations, trips),
:mod:`~models.synthetic.bookings` (volume by hour, vehicle mix, priorities, lead times),
:mod:`~models.synthetic.weather` (hourly weather per station),
:mod:`~models.synthetic.truth` (the ground-truth delay),
:mod:`~models.synthetic.incidents` (optional incidents that hit pickups near them for an hour or
two: the heavy tail of the delays),
:mod:`~models.synthetic.world` (history generation and the live generator) and
:mod:`~models.synthetic.invalid` (malformed payloads).
"""

from models.synthetic.incidents import Incident, IncidentConfig, incidents_between
from models.synthetic.invalid import InvalidPayload, invalid_booking_payloads
from models.synthetic.places import HOSPITALS, STATIONS, nearest_station
from models.synthetic.truth import expected_delay
from models.synthetic.weather import weather_series
from models.synthetic.world import SyntheticHistory, SyntheticWorld, WorldEvent, generate_history

__all__ = [
    "HOSPITALS",
    "STATIONS",
    "Incident",
    "IncidentConfig",
    "InvalidPayload",
    "SyntheticHistory",
    "SyntheticWorld",
    "WorldEvent",
    "expected_delay",
    "generate_history",
    "incidents_between",
    "invalid_booking_payloads",
    "nearest_station",
    "weather_series",
]
