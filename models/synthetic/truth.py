"""The ground truth: how late a pickup is, given its features and the world's hidden state.

The expected delay (:func:`expected_delay`) adds a base per vehicle, traffic that peaks in the
rush hours (milder at weekends), distance and city-centre congestion that grow with traffic,
rain / snow / fog that hurt more in traffic, strong wind, short lead times and priorities.
An observed delay (:func:`observed_delays`) adds what no feature sees: a day-level effect (a bad
day for the fleet), Student-t noise that grows with traffic and rain, and rare mishaps of
one vehicle (a breakdown, a previous job overrunning) adding 5–20 minutes. When the world has
incidents (:mod:`~models.synthetic.incidents`), the bookings they hit get 20–120 minutes more.
Delays are clipped to [-15, 180] minutes and rounded to 0.1.

A :class:`TruthShift` changes the world for drift tests (the weather hurting more, rush hours
getting worse); without one, delays are exactly those of the unshifted world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from models.features import FEATURE_INDEX, LOCAL_TZ
from models.synthetic.incidents import IncidentExposure
from models.synthetic.noise import unit_normal

DAY_EFFECT_STREAM = 8
DAY_EFFECT_STD_MIN = 0.5
PEAK_TRAFFIC_MIN = 7.5
# Every observed delay lies in this range (minutes): a pickup is observed at most 15 minutes
# before and 3 hours after its scheduled time.
EARLIEST_DELAY_MIN, LATEST_DELAY_MIN = -15.0, 180.0


def _bump(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.asarray(np.exp(-0.5 * ((x - centre) / width) ** 2))


def traffic_minutes(hour: np.ndarray, is_weekend: np.ndarray) -> np.ndarray:
    """Traffic delay (minutes) by local hour: weekday peaks at 08:00 and 17:36, a midday bump
    at weekends."""
    weekday = 6.0 * _bump(hour, 8.0, 0.8) + PEAK_TRAFFIC_MIN * _bump(hour, 17.6, 1.1)
    weekend = 1.5 * _bump(hour, 14.0, 2.5)
    return np.where(is_weekend > 0, weekend, weekday)


@dataclass(frozen=True)
class TruthShift:
    """A change of the ground truth, injected to test drift monitors; the default changes nothing.

    ``weather_factor`` multiplies the whole weather effect (rain, snow, frost, fog and wind; 2.0
    doubles it); ``rush_hour_extra_min`` is added to every pickup in a weekday rush hour (the
    ``is_rush_hour`` feature).
    """

    weather_factor: float = 1.0
    rush_hour_extra_min: float = 0.0


def _weather_terms(X: np.ndarray, busy: np.ndarray) -> tuple[np.ndarray, ...]:
    """Minutes added by rain, snow, frost, fog and strong wind, in that order."""
    c = FEATURE_INDEX
    rain, temp = X[:, c["precipitation_mm_h"]], X[:, c["temperature_c"]]
    visibility, wind = X[:, c["visibility_m"]], X[:, c["wind_m_s"]]
    snowing = (temp < 1.0) & (rain > 0.1)
    return (
        2.2 * np.log1p(rain) * (1.0 + 1.2 * busy),
        5.0 * np.log1p(rain) * (1.0 + busy) * snowing,
        1.5 * (temp < -3.0),
        4.0 * np.clip((1500.0 - visibility) / 1300.0, 0.0, 1.0) * (1.0 + 0.5 * busy),
        0.25 * np.maximum(wind - 10.0, 0.0),
    )


def expected_delay(X: np.ndarray, shift: TruthShift | None = None) -> np.ndarray:
    """The noise-free delay (minutes) of each row of a feature matrix, in a shifted world if
    ``shift`` is given."""
    c = FEATURE_INDEX
    hour, weekend = X[:, c["hour_local"]], X[:, c["is_weekend"]]
    traffic = traffic_minutes(hour, weekend)
    busy = traffic / PEAK_TRAFFIC_MIN  # 0 (empty roads) … 1 (evening peak)
    km, centre_km = X[:, c["distance_km"]], X[:, c["pickup_center_km"]]
    lead = X[:, c["lead_time_min"]]
    rain_min, snow_min, frost_min, fog_min, wind_min = _weather_terms(X, busy)

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
        + rain_min
        + snow_min
        + frost_min
        + fog_min
        + wind_min
        + 5.0 * np.clip((60.0 - lead) / 50.0, 0.0, 1.0)
        - 1.0 * (lead > 24 * 60)
        - 1.5 * X[:, c["priority_urgent"]]
        - 3.0 * X[:, c["priority_emergency"]]
    )
    # Added after the sum, so that the unshifted world keeps its exact floating-point values.
    if shift is not None:
        weather = rain_min + snow_min + frost_min + fog_min + wind_min
        delay = delay + (shift.weather_factor - 1.0) * weather
        delay = delay + shift.rush_hour_extra_min * X[:, c["is_rush_hour"]]
    return np.asarray(delay)


def noise_scale(X: np.ndarray) -> np.ndarray:
    """The standard deviation (minutes) of each row's noise: it grows with traffic and rain,
    from 1.3 on empty dry roads to 1.8 times that in a wet evening peak. ``make quality`` ranks
    the champion's errors by it, as a reference for what its confidence achieves."""
    c = FEATURE_INDEX
    busy = traffic_minutes(X[:, c["hour_local"]], X[:, c["is_weekend"]]) / PEAK_TRAFFIC_MIN
    wet = X[:, c["precipitation_mm_h"]] > 0.1
    return np.asarray(1.3 * (1.0 + 0.5 * busy + 0.3 * wet))


def observed_delays(
    X: np.ndarray,
    day_effect: np.ndarray,
    rng: np.random.Generator,
    shift: TruthShift | None = None,
    incidents: IncidentExposure | None = None,
) -> np.ndarray:
    """Observed delays (minutes): expected delay (shifted if ``shift`` is given) + day effect +
    noise + mishaps, + the extra delay of the bookings ``incidents`` hit. The shift does not
    change the random draws; the incidents' draws come after all others."""
    c = FEATURE_INDEX
    busy = traffic_minutes(X[:, c["hour_local"]], X[:, c["is_weekend"]]) / PEAK_TRAFFIC_MIN
    wet = X[:, c["precipitation_mm_h"]] > 0.1
    noise = noise_scale(X) * rng.standard_t(4, size=len(X)) / math.sqrt(2.0)  # t(4): variance 2
    mishap = rng.random(len(X)) < 0.01 * (1.0 + busy + wet)
    extra = np.where(mishap, rng.uniform(5.0, 20.0, size=len(X)), 0.0)
    delays = expected_delay(X, shift) + day_effect + noise + extra
    # Added last, so that a world without incidents, and a booking none hits, keeps its exact
    # floating-point delay.
    if incidents is not None:
        delays = delays + incidents.extra_minutes(rng)
    return np.round(np.clip(delays, EARLIEST_DELAY_MIN, LATEST_DELAY_MIN), 1)


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
