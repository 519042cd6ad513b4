"""Synthetic streams for calibrating the drift monitors, generated vectorized from the world.

Two streams, as the live system sees them:

- :func:`outcome_stream`: bookings picked up at ``rate`` per second (created earlier by their lead
  time), their actual delays from the world's ground truth (optionally shifted from a moment on)
  and the prediction of the arm each booking is routed to, ordered by ``observed_at``. This is
  what the error monitors see.
- :func:`booking_stream`: bookings created at ``rate`` per second, with pickups a realistic lead
  time later (urgent, same or next day, or planned days ahead at the usual hours), their features
  (weather at the pickup) and predictions, ordered by creation. This is what the feature and
  prediction monitors see. From a moment on, the vehicle mix can change or every booking can
  carry the same lead time (covariate shifts).

Bookings, features, weather, truth and routing are those of the live path
(:mod:`models.synthetic`, :func:`models.features.feature_matrix`, :mod:`models.routing`); only the
loops are batched. The ML arm is a forest and the heuristic the fitted rules, both trained by
:func:`models.training.train` on synthetic history before the streams start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from models import heuristic
from models.distribution import FeatureDistribution
from models.features import FEATURE_INDEX, LOCAL_TZ, feature_matrix, local_seconds
from models.forest import ForestConfig, ForestPredictor
from models.routing import bucket
from models.synthetic import generate_history
from models.synthetic.bookings import VEHICLE_MIX, lead_minutes, local_pickups, make_bookings
from models.synthetic.places import STATIONS, nearest_station, weighted_choice
from models.synthetic.truth import TruthShift, day_effects, observed_delays
from models.synthetic.weather import weather_series
from models.training import TrainingConfig, train
from schemas.booking import BookingRequested
from schemas.weather import Weather

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
ROUTING_SALT = "calibration"
OBSERVATION_LAG = timedelta(minutes=60)  # longer delays are vanishingly rare in the world
EARLY_PICKUP = timedelta(minutes=15)  # delays are at least -15 minutes


@dataclass(frozen=True)
class TrainedModels:
    forest: ForestPredictor
    heuristic: heuristic.HeuristicParams
    distributions: dict[str, FeatureDistribution]
    training_rows: int


@dataclass(frozen=True)
class OutcomeStream:
    """Outcomes ordered by ``observed_s`` (Unix seconds of observed_at)."""

    observed_s: np.ndarray
    pickup_s: np.ndarray
    arm_ml: np.ndarray  # True where the booking was routed to the ML arm
    predicted: np.ndarray
    actual: np.ndarray
    shifted: np.ndarray  # True where the truth was shifted (pickup at or after the shift time)

    @property
    def abs_error(self) -> np.ndarray:
        return np.asarray(np.abs(self.predicted - self.actual))

    def __len__(self) -> int:
        return len(self.observed_s)


@dataclass(frozen=True)
class BookingStream:
    """Bookings ordered by ``created_s`` (Unix seconds of their creation)."""

    created_s: np.ndarray
    X: np.ndarray
    arm_ml: np.ndarray
    predicted: np.ndarray

    def __len__(self) -> int:
        return len(self.created_s)


def train_models(
    seed: int, until: datetime, days: int, bookings_per_day: float, forest: ForestConfig
) -> TrainedModels:
    """A forest and a fitted heuristic trained on ``days`` of history before ``until``."""
    history = generate_history(until - timedelta(days=days), until, seed, bookings_per_day)
    config = TrainingConfig(forest=forest, candidates=("forest",))
    result = train(history.rows, history.row_weather, config)
    return TrainedModels(
        forest=ForestPredictor(result.forest_estimator, version="calibration"),
        heuristic=result.heuristic,
        distributions=result.feature_distributions,
        training_rows=result.train_rows,
    )


def _datetimes(epoch_s: np.ndarray) -> list[datetime]:
    return [datetime.fromtimestamp(s, UTC) for s in epoch_s.tolist()]


def _arrivals(
    rng: np.random.Generator, start: datetime, duration: timedelta, rate: float
) -> np.ndarray:
    """Sorted Unix seconds of a Poisson process at ``rate`` per second over the period."""
    seconds = duration.total_seconds()
    count = int(rng.poisson(rate * seconds))
    return start.timestamp() + np.sort(rng.uniform(0.0, seconds, count))


def _weathers(seed: int, bookings: list[BookingRequested], pickup_s: np.ndarray) -> list[Weather]:
    """Each booking's weather: its nearest station's during the UTC hour of its pickup."""
    hours = np.floor_divide(pickup_s, 3600).astype(np.int64)
    first, last = int(hours.min()), int(hours.max())
    series = weather_series(
        seed,
        datetime.fromtimestamp(first * 3600, UTC),
        datetime.fromtimestamp((last + 1) * 3600, UTC),
    )
    index = {(s.lat, s.lon, s.epoch_hour): s.weather for s in series}
    stations = nearest_station(
        np.array([b.pickup_lat for b in bookings]), np.array([b.pickup_lon for b in bookings])
    )
    return [
        index[STATIONS[s].lat, STATIONS[s].lon, h]
        for s, h in zip(stations.tolist(), hours.tolist(), strict=True)
    ]


def _predict(
    models: TrainedModels, X: np.ndarray, ids: list[str], ml_share: float
) -> tuple[np.ndarray, np.ndarray]:
    arm_ml = np.array([bucket(ROUTING_SALT, i) < 100.0 * ml_share for i in ids], dtype=bool)
    predicted = heuristic.predict(models.heuristic, X)[0]
    if arm_ml.any():
        predicted[arm_ml] = models.forest.predict(X[arm_ml])[0]
    return arm_ml, predicted


def outcome_stream(
    seed: int,
    models: TrainedModels,
    start: datetime,
    duration: timedelta,
    rate: float,
    stream_seed: int,
    shift: TruthShift | None = None,
    shift_at: datetime | None = None,
    ml_share: float = 0.5,
) -> OutcomeStream:
    """The outcomes observed in [start, start + duration) of pickups at ``rate`` per second.

    The world's truth is shifted by ``shift`` for pickups at or after ``shift_at``. The same
    ``stream_seed`` gives the same bookings and the same noise with or without a shift, so a
    shifted stream and its unshifted twin differ by the shift alone.
    """
    rng = np.random.default_rng([stream_seed, 1])
    # Pickups from before the start and a little after the end, so that every outcome observed
    # in the period is there (late pickups of earlier bookings, early pickups of later ones) and
    # the period's two ends are not biased towards short or long delays.
    first = start - OBSERVATION_LAG
    pickup_s = _arrivals(rng, first, duration + OBSERVATION_LAG + EARLY_PICKUP, rate)
    created_s = pickup_s - np.round(lead_minutes(rng, len(pickup_s)) * 60.0)
    ids = [f"O{stream_seed}-{i:07d}" for i in range(len(pickup_s))]
    bookings = make_bookings(ids, _datetimes(pickup_s), _datetimes(created_s), rng)
    X = feature_matrix(bookings, _weathers(seed, bookings, pickup_s))

    local_days = np.floor_divide(local_seconds(pickup_s), 86_400).astype(np.int64) + _EPOCH_ORDINAL
    distinct, index = np.unique(local_days, return_inverse=True)
    day_effect = day_effects(seed, distinct)[index]
    shifted = np.zeros(len(pickup_s), dtype=bool)
    if shift is not None and shift_at is not None:
        shifted = pickup_s >= shift_at.timestamp()
    actual = np.empty(len(pickup_s))
    # Separate generators for the rows before and after the shift time keep the noise of a
    # shifted stream identical to its twin's.
    for part, part_shift, sub in ((~shifted, None, 2), (shifted, shift, 3)):
        if part.any():
            actual[part] = observed_delays(
                X[part], day_effect[part], np.random.default_rng([stream_seed, sub]), part_shift
            )

    arm_ml, predicted = _predict(models, X, ids, ml_share)
    observed_s = pickup_s + actual * 60.0
    inside = (observed_s >= start.timestamp()) & (observed_s < (start + duration).timestamp())
    order = np.flatnonzero(inside)[np.argsort(observed_s[inside], kind="stable")]
    return OutcomeStream(
        observed_s=observed_s[order],
        pickup_s=pickup_s[order],
        arm_ml=arm_ml[order],
        predicted=predicted[order],
        actual=actual[order],
        shifted=shifted[order],
    )


def _pickups(rng: np.random.Generator, created_s: np.ndarray) -> np.ndarray:
    """Pickup times (Unix seconds) of bookings created at ``created_s``, as the live generator
    schedules them: soon after creation, or at a usual hour of a later day; on a 5-minute grid
    and at least ten minutes ahead."""
    lead = lead_minutes(rng, len(created_s))
    pickup_s = created_s + lead * 60.0
    planned = np.flatnonzero(lead >= 36 * 60)
    days = [datetime.fromtimestamp(s, LOCAL_TZ).date() for s in pickup_s[planned].tolist()]
    by_day: dict[date, list[int]] = {}
    for row, day in zip(planned.tolist(), days, strict=True):
        by_day.setdefault(day, []).append(row)
    for day, rows in sorted(by_day.items()):
        times = local_pickups(rng, day, len(rows))
        pickup_s[rows] = [t.timestamp() for t in times]
    earliest = created_s + 600.0
    return np.ceil(np.maximum(pickup_s, earliest) / 300.0) * 300.0


def booking_stream(
    seed: int,
    models: TrainedModels,
    start: datetime,
    duration: timedelta,
    rate: float,
    stream_seed: int,
    stretcher_share: float | None = None,
    shift_at: datetime | None = None,
    ml_share: float = 0.5,
    lead_time_minutes: float | None = None,
) -> BookingStream:
    """Bookings created at ``rate`` per second over [start, start + duration), with features
    and predictions. From ``shift_at`` on, a ``stretcher_share`` of them need a stretcher (the
    other vehicle types keep their relative shares), and/or every booking has a lead time of
    ``lead_time_minutes`` (e.g. a producer that lost the creation time)."""
    rng = np.random.default_rng([stream_seed, 4])
    created_s = _arrivals(rng, start, duration, rate)
    pickup_s = _pickups(rng, created_s)
    ids = [f"B{stream_seed}-{i:07d}" for i in range(len(created_s))]
    bookings = make_bookings(ids, _datetimes(pickup_s), _datetimes(created_s), rng)
    X = feature_matrix(bookings, _weathers(seed, bookings, pickup_s))
    if stretcher_share is not None and shift_at is not None:
        rows = np.flatnonzero(created_s >= shift_at.timestamp())
        base = np.array([share for _, share in VEHICLE_MIX])
        stretcher = [v.value for v, _ in VEHICLE_MIX].index("stretcher")
        mix = base * (1.0 - stretcher_share) / (1.0 - base[stretcher])
        mix[stretcher] = stretcher_share
        drawn = weighted_choice(rng, mix.tolist(), len(rows))
        first = FEATURE_INDEX["vehicle_standard"]
        X[rows, first : first + len(VEHICLE_MIX)] = 0.0
        X[rows, first + drawn] = 1.0
    if lead_time_minutes is not None and shift_at is not None:
        X[created_s >= shift_at.timestamp(), FEATURE_INDEX["lead_time_min"]] = lead_time_minutes
    arm_ml, predicted = _predict(models, X, ids, ml_share)
    return BookingStream(created_s=created_s, X=X, arm_ml=arm_ml, predicted=predicted)


def local_time(day: date, hour: float) -> datetime:
    """``hour`` (e.g. 7.5 for 07:30) of a Geneva day, as an aware datetime."""
    minutes = round(hour * 60)
    midnight = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
    return (midnight.astimezone(UTC) + timedelta(minutes=minutes)).astimezone(LOCAL_TZ)


def epoch_to_datetimes(epoch_s: np.ndarray) -> list[datetime]:
    """Aware UTC datetimes of Unix seconds (for the monitors' event times)."""
    return _datetimes(epoch_s)
