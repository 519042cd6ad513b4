"""Where trips start and end: the canton of Geneva's communes, hospitals and weather stations.

Homes are drawn around the communes (a Gaussian of ``spread_km`` around each, weighted by
population); hospitals and clinics are frequent dropoffs (home → hospital) and pickups
(hospital → home); a few trips are transfers between hospitals or home → home.
Coordinates are approximate; the places are realistic, not authoritative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.features import haversine_km

KM_PER_DEG_LAT = 111.2
KM_PER_DEG_LON = 111.2 * math.cos(math.radians(46.2))
CANTON_BOUNDS = ((46.13, 46.37), (5.96, 6.31))  # (lat min, max), (lon min, max)


@dataclass(frozen=True)
class Place:
    name: str
    lat: float
    lon: float
    weight: float
    spread_km: float = 0.0


HOSPITALS: tuple[Place, ...] = (
    Place("HUG Cluse-Roseraie", 46.1930, 6.1490, 0.42),
    Place("HUG Belle-Idée", 46.2185, 6.1880, 0.07),
    Place("HUG Trois-Chêne", 46.1975, 6.2070, 0.08),
    Place("HUG Loëx", 46.1870, 6.0880, 0.05),
    Place("Hôpital de La Tour", 46.2315, 6.0770, 0.12),
    Place("Clinique des Grangettes", 46.1965, 6.1775, 0.09),
    Place("Clinique La Colline", 46.1925, 6.1465, 0.08),
    Place("Clinique Générale-Beaulieu", 46.2135, 6.1555, 0.09),
)
COMMUNES: tuple[Place, ...] = (
    Place("Genève", 46.2050, 6.1450, 0.36, 1.6),
    Place("Vernier", 46.2170, 6.0850, 0.07, 1.2),
    Place("Lancy", 46.1860, 6.1150, 0.07, 1.0),
    Place("Meyrin", 46.2340, 6.0750, 0.05, 1.0),
    Place("Carouge", 46.1810, 6.1400, 0.05, 0.8),
    Place("Onex", 46.1840, 6.1000, 0.04, 0.8),
    Place("Thônex", 46.1920, 6.2030, 0.03, 0.9),
    Place("Chêne-Bougeries", 46.1980, 6.1850, 0.03, 0.8),
    Place("Versoix", 46.2840, 6.1620, 0.03, 1.0),
    Place("Plan-les-Ouates", 46.1670, 6.1170, 0.03, 1.0),
    Place("Bernex", 46.1760, 6.0750, 0.03, 1.2),
    Place("Le Grand-Saconnex", 46.2310, 6.1210, 0.03, 0.8),
    Place("Veyrier", 46.1670, 6.1830, 0.03, 1.0),
    Place("Collonge-Bellerive", 46.2540, 6.2030, 0.03, 1.5),
    Place("Satigny", 46.2140, 6.0350, 0.02, 1.5),
    Place("Jussy", 46.2360, 6.2670, 0.02, 2.0),
)
STATIONS: tuple[Place, ...] = (
    Place("Genève-Cointrin", 46.2475, 6.1278, 1.0),
    Place("Genève-Centre", 46.2010, 6.1480, 1.0),
    Place("Jussy", 46.2360, 6.2670, 1.0),
)
# Trip kinds: home→hospital, hospital→home, hospital→hospital, home→home.
TRIP_MIX: tuple[float, ...] = (0.52, 0.36, 0.05, 0.07)


def weighted_choice(rng: np.random.Generator, weights: Sequence[float], size: int) -> np.ndarray:
    """``size`` indices drawn with probabilities proportional to ``weights``."""
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum())


def nearest_station(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Index in :data:`STATIONS` of the station nearest to each point."""
    distances = np.stack([haversine_km(lat, lon, s.lat, s.lon) for s in STATIONS])
    return np.asarray(np.argmin(distances, axis=0))


def trip_coordinates(
    rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pickup lat, pickup lon, dropoff lat, dropoff lon (degrees) of ``size`` trips."""
    home = weighted_choice(rng, [p.weight for p in COMMUNES], size)
    spread = np.array([COMMUNES[i].spread_km for i in home.tolist()])
    home_lat = np.array([COMMUNES[i].lat for i in home.tolist()])
    home_lon = np.array([COMMUNES[i].lon for i in home.tolist()])
    home_lat = home_lat + rng.normal(0, 1, size) * spread / KM_PER_DEG_LAT
    home_lon = home_lon + rng.normal(0, 1, size) * spread / KM_PER_DEG_LON
    (lat_lo, lat_hi), (lon_lo, lon_hi) = CANTON_BOUNDS
    home_lat, home_lon = np.clip(home_lat, lat_lo, lat_hi), np.clip(home_lon, lon_lo, lon_hi)
    other = weighted_choice(rng, [p.weight for p in COMMUNES], size)
    other_lat = np.array([COMMUNES[i].lat for i in other.tolist()])
    other_lon = np.array([COMMUNES[i].lon for i in other.tolist()])
    hospitals = [weighted_choice(rng, [p.weight for p in HOSPITALS], size) for _ in range(2)]
    hosp_lat = [np.array([HOSPITALS[i].lat for i in h.tolist()]) for h in hospitals]
    hosp_lon = [np.array([HOSPITALS[i].lon for i in h.tolist()]) for h in hospitals]
    kind = weighted_choice(rng, TRIP_MIX, size)
    from_home = (kind == 0) | (kind == 3)
    pickup_lat = np.where(from_home, home_lat, hosp_lat[0])
    pickup_lon = np.where(from_home, home_lon, hosp_lon[0])
    dropoff_lat = np.select([kind == 1, kind == 3], [home_lat, other_lat], hosp_lat[1])
    dropoff_lon = np.select([kind == 1, kind == 3], [home_lon, other_lon], hosp_lon[1])
    return (
        np.round(pickup_lat, 5),
        np.round(pickup_lon, 5),
        np.round(dropoff_lat, 5),
        np.round(dropoff_lon, 5),
    )
