"""The ground truth: how late a pickup is, given its features and the world's hidden state.

The expected delay (:func:`expected_delay`) adds a base per vehicle, traffic that peaks in the
rush hours (milder at weekends), distance and city-centre congestion that grow with traffic,
rain / snow / fog that hurt more in traffic, strong wind, short lead times and priorities.
An observed delay (:func:`observed_delays`) adds what no feature sees: a day-level effect (a bad
day for the fleet), Student-t noise that grows with traffic and rain, and rare incidents
(a breakdown, a previous job overrunning) adding 5–20 minutes. Delays are clipped to
[-15, 180] minutes and rounded to 0.1.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from models.features import FEATURE_INDEX, LOCAL_TZ
from models.synthetic.noise import unit_normal

DAY_EFFECT_STREAM = 8
DAY_EFFECT_STD_MIN = 0.5
PEAK_TRAFFIC_MIN = 7.5


def _bump(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.asarray(np.exp(-0.5 * ((x - centre) / width) ** 2))


def traffic_minutes(hour: np.ndarray, is_weekend: np.ndarray) -> np.ndarray:
    """Traffic delay (minutes) by local hour: weekday peaks at 08:00 and 17:36, a midday bump
    at weekends."""
    weekday = 6.0 * _bump(hour, 8.0, 0.8) + PEAK_TRAFFIC_MIN * _bump(hour, 17.6, 1.1)
    weekend = 1.5 * _bump(hour, 14.0, 2.5)
    return np.where(is_weekend > 0, weekend, weekday)


def expected_delay(X: np.ndarray) -> np.ndarray:
    """The noise-free delay (minutes) of each row of a feature matrix."""
    c = FEATURE_INDEX
    hour, weekend = X[:, c["hour_local"]], X[:, c["is_weekend"]]
    traffic = traffic_minutes(hour, weekend)
    busy = traffic / PEAK_TRAFFIC_MIN  # 0 (empty roads) … 1 (evening peak)
    km, centre_km = X[:, c["distance_km"]], X[:, c["pickup_center_km"]]
    rain, temp = X[:, c["precipitation_mm_h"]], X[:, c["temperature_c"]]
    visibility, wind = X[:, c["visibility_m"]], X[:, c["wind_m_s"]]
    lead = X[:, c["lead_time_min"]]
    snowing = (temp < 1.0) & (rain > 0.1)

    delay = (
        2.5 * X[:, c["vehicle_standard"]]
        + 4.5 * X[:, c["vehicle_wheelchair"]]
        + (7.5 + 2.0 * busy) * X[:, c["vehicle_stretcher"]]  # two-person crews are scarce at peak
        + traffic
        - 0.5 * weekend
        - 1.0 * ((hour < 6) | (hour >= 22))
        + 0.30 * km
        + 0.05 * km * traffic
        + 2.0 * busy * np.exp(-centre_km / 3.0)
        + 2.2 * np.log1p(rain) * (1.0 + 1.2 * busy)
        + 5.0 * np.log1p(rain) * (1.0 + busy) * snowing
        + 1.5 * (temp < -3.0)
        + 4.0 * np.clip((1500.0 - visibility) / 1300.0, 0.0, 1.0) * (1.0 + 0.5 * busy)
        + 0.25 * np.maximum(wind - 10.0, 0.0)
        + 5.0 * np.clip((60.0 - lead) / 50.0, 0.0, 1.0)
        - 1.0 * (lead > 24 * 60)
        - 1.5 * X[:, c["priority_urgent"]]
        - 3.0 * X[:, c["priority_emergency"]]
    )
    return np.asarray(delay)


def observed_delays(X: np.ndarray, day_effect: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Observed delays (minutes): expected delay + day effect + noise + incidents."""
    c = FEATURE_INDEX
    busy = traffic_minutes(X[:, c["hour_local"]], X[:, c["is_weekend"]]) / PEAK_TRAFFIC_MIN
    wet = X[:, c["precipitation_mm_h"]] > 0.1
    scale = 1.3 * (1.0 + 0.5 * busy + 0.3 * wet)
    noise = scale * rng.standard_t(4, size=len(X)) / math.sqrt(2.0)  # t(4) has variance 2
    incident = rng.random(len(X)) < 0.01 * (1.0 + busy + wet)
    extra = np.where(incident, rng.uniform(5.0, 20.0, size=len(X)), 0.0)
    delays = expected_delay(X) + day_effect + noise + extra
    return np.round(np.clip(delays, -15.0, 180.0), 1)


def local_day(at: datetime) -> int:
    """The proleptic ordinal of the Geneva date of ``at``."""
    return at.astimezone(LOCAL_TZ).date().toordinal()


def day_effects(seed: int, local_days: np.ndarray) -> np.ndarray:
    """The hidden day-level effect (minutes) of each local day ordinal."""
    return np.array(
        [
            unit_normal(seed, DAY_EFFECT_STREAM, int(d)) * DAY_EFFECT_STD_MIN
            for d in local_days.tolist()
        ],
        dtype=np.float64,
    )
