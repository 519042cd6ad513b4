"""Location learned from history: target encodings of pickup and dropoff zones.

The service area is cut into square cells of ``cell_km`` (a grid anchored at the area's centre).
Three categories are encoded, each by the mean delay of the training rows that share it, shrunk
towards the overall mean when the cell has few rows:

==================  ===========================================
zone_pickup         the pickup's cell
zone_dropoff        the dropoff's cell
zone_pickup_hour    the pickup's cell × the local hour (0–23)
==================  ===========================================

Each category's encoding of a cell with ``n`` training rows of mean delay ``m_cell`` is

    (n · m_cell + k · m_all) / (n + k)

where ``k``, the prior's strength in rows, is estimated per category from the training rows by
the method of moments: the pooled variance of delays within cells over the variance of the
cells' true means (:func:`prior_strength`). Where cells differ little or delays are noisy (a
heavy tail of incidents), ``k`` is large and a cell needs many rows to move away from the
overall mean; a cell of one late pickup barely moves. (scikit-learn's ``smooth="auto"`` takes
the variance of each cell on its own, which is 0 for a cell of one row: that row's delay would
become its cell's encoding, unshrunk.) Fitting and cross-fitting are scikit-learn's
``TargetEncoder`` with that ``k`` as ``smooth``, on the training rows only. The encodings it
gives those rows are *cross-fitted* (each row's value comes from the folds that do not hold
it), so a model trained on them cannot learn to trust an encoding that contains its own target.
Serving looks the values up in one sorted table of the three categories (one ``searchsorted``
per batch; dicts for a batch of a few bookings, see :meth:`ZoneEncoding.features`), which give
scikit-learn's own ``transform`` exactly; a cell never seen in training gets the overall mean.

The tables are plain numbers (:meth:`ZoneEncoding.to_dict`), stored inside the artifact's
checksummed model file.

>>> from models.area import GENEVA
>>> lat = np.array([46.2044, 46.2044, 46.2044, 46.3000])
>>> lon = np.array([6.1432, 6.1432, 6.1432, 6.1432])
>>> trips = np.stack([lat, lon, lat, lon], axis=1)
>>> cells = zone_cells(GENEVA, 1.0, trips, np.array([8.0, 8.5, 9.0, 8.0]))
>>> cells[:, 0].tolist() == [0, 0, 0, 10 * CELL_KEY_STRIDE]
True
>>> cells[:, 2].tolist()[:3]
[8, 8, 9]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.area import ServiceArea

ZONE_FEATURES: tuple[str, ...] = ("zone_pickup", "zone_dropoff", "zone_pickup_hour")
KM_PER_DEG_LAT = 111.195  # on the mean Earth radius: 2π · 6371.0088 km / 360°
# A cell key is row × stride + column; the stride exceeds any column index on Earth for cells of
# at least 0.1 km (half the equator is ~20,000 km), so keys of distinct cells never collide.
CELL_KEY_STRIDE = 1_000_003
MIN_CELL_KM = 0.1
CROSS_FIT_FOLDS = 5
MIN_PRIOR_ROWS, MAX_PRIOR_ROWS = 1.0, 10_000.0
HOURS = 24
SMALL_BATCH = 8  # at most this many rows: zone features in plain Python (see features())
_CATEGORY = np.arange(3, dtype=np.int64)


def zone_cells(
    area: ServiceArea, cell_km: float, coordinates: np.ndarray, hour_local: np.ndarray
) -> np.ndarray:
    """Integer keys of each row's three categories, shape (rows, 3), in ZONE_FEATURES order.

    ``coordinates`` is (rows, 4): pickup latitude, pickup longitude, dropoff latitude, dropoff
    longitude, in degrees (the booking features' column order); ``hour_local`` the local hour.
    """
    coordinates = np.asarray(coordinates, dtype=np.float64)
    # Pickups and dropoffs in the same few array operations: for the one-booking batches of a
    # quiet hour, numpy's cost per call outweighs the work on the rows.
    lat, lon = coordinates[:, 0::2], coordinates[:, 1::2]
    lat_scale, lon_scale = _scales(area, cell_km)
    row = np.floor((lat - area.center_lat) * lat_scale)
    # Longitudes are wrapped to [-180, 180) around the centre, so cells never split at the
    # antimeridian in an area that straddles it.
    column = np.floor(((lon - area.center_lon + 180.0) % 360.0 - 180.0) * lon_scale)
    # Exact in float64: |row × stride + column| stays far below 2**53.
    keys = (row * CELL_KEY_STRIDE + column).astype(np.int64)
    hour = np.minimum(np.maximum(np.asarray(hour_local, dtype=np.float64), 0.0), HOURS - 1.0)
    out = np.empty((len(coordinates), 3), dtype=np.int64)
    out[:, :2] = keys
    out[:, 2] = keys[:, 0] * HOURS + hour.astype(np.int64)  # truncation of a number >= 0: floor
    return out


def _scales(area: ServiceArea, cell_km: float) -> tuple[float, float]:
    """Cells per degree of latitude and of longitude at the area's centre."""
    km_per_deg_lon = KM_PER_DEG_LAT * max(math.cos(math.radians(area.center_lat)), 1e-6)
    return KM_PER_DEG_LAT / cell_km, km_per_deg_lon / cell_km


def _key(dlat: float, dlon: float, lat_scale: float, lon_scale: float) -> int:
    """One cell's key, as :func:`zone_cells` computes it (Python's float % and numpy's give
    the same remainder: fmod, then the divisor's sign)."""
    row = math.floor(dlat * lat_scale)
    column = math.floor(((dlon + 180.0) % 360.0 - 180.0) * lon_scale)
    return row * CELL_KEY_STRIDE + column


@dataclass(frozen=True, eq=False)
class ZoneTable:
    """One category's encodings: ``keys`` ascending, ``values[i]`` the encoding of ``keys[i]``,
    ``counts[i]`` its training rows; ``default`` for keys never seen in training;
    ``strength`` the prior's strength in rows it was fitted with."""

    keys: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    default: float
    strength: float = 0.0

    def __post_init__(self) -> None:
        if not (self.keys.shape == self.values.shape == self.counts.shape):
            raise ValueError("keys, values and counts must have one entry per cell")
        if self.keys.size and not np.all(np.diff(self.keys) > 0):
            raise ValueError("keys must be strictly ascending")
        if not (np.isfinite(self.values).all() and math.isfinite(self.default)):
            raise ValueError("encodings must be finite numbers")
        for array in (self.keys, self.values, self.counts):
            array.flags.writeable = False  # the encoding caches lookups built from them

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ZoneTable):
            return NotImplemented
        return (
            np.array_equal(self.keys, other.keys)
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.counts, other.counts)
            and self.default == other.default
            and self.strength == other.strength
        )

    __hash__ = None  # type: ignore[assignment]

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The encoding of each key (``default`` for unseen keys)."""
        if self.keys.size == 0:
            return np.full(len(keys), self.default)
        at = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        return np.where(self.keys[at] == keys, self.values[at], self.default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": self.keys.tolist(),
            "values": self.values.tolist(),
            "counts": self.counts.tolist(),
            "default": self.default,
            "strength": self.strength,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ZoneTable:
        return cls(
            keys=np.asarray(data["keys"], dtype=np.int64),
            values=np.asarray(data["values"], dtype=np.float64),
            counts=np.asarray(data["counts"], dtype=np.int64),
            default=float(data["default"]),
            strength=float(data.get("strength", 0.0)),
        )


@dataclass(frozen=True)
class ZoneEncoding:
    """The fitted encodings of the three zone categories over one service area's grid."""

    area: ServiceArea
    cell_km: float
    tables: tuple[ZoneTable, ...]  # in ZONE_FEATURES order
    # The three tables merged into one sorted array of keys ``key × 3 + category`` (one
    # searchsorted per batch instead of three), their values, and each category's default.
    _keys: np.ndarray = field(init=False, repr=False, compare=False)
    _values: np.ndarray = field(init=False, repr=False, compare=False)
    _defaults: np.ndarray = field(init=False, repr=False, compare=False)
    # The same as dicts, for batches of a few bookings (see features()).
    _lookups: tuple[dict[int, float], ...] = field(init=False, repr=False, compare=False)
    __hash__ = None  # type: ignore[assignment]  # equal by value, tables of arrays: unhashable

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cell_km) and self.cell_km >= MIN_CELL_KM):
            raise ValueError(f"cell_km must be at least {MIN_CELL_KM}, not {self.cell_km}")
        if len(self.tables) != len(ZONE_FEATURES):
            raise ValueError(f"expected {len(ZONE_FEATURES)} tables, got {len(self.tables)}")
        keys = np.concatenate([t.keys * 3 + j for j, t in enumerate(self.tables)])
        values = np.concatenate([t.values for t in self.tables])
        order = np.argsort(keys, kind="stable")
        object.__setattr__(self, "_keys", keys[order])
        object.__setattr__(self, "_values", values[order])
        object.__setattr__(self, "_defaults", np.array([t.default for t in self.tables]))
        lookups = tuple(
            dict(zip(t.keys.tolist(), t.values.tolist(), strict=True)) for t in self.tables
        )
        object.__setattr__(self, "_lookups", lookups)

    @classmethod
    def fit(
        cls,
        area: ServiceArea,
        cell_km: float,
        cells: np.ndarray,
        y: np.ndarray,
        seed: int = 0,
    ) -> tuple[ZoneEncoding, np.ndarray]:
        """The encodings fitted on training rows (``cells`` from :func:`zone_cells`, delays
        ``y``), and the cross-fitted encodings of those same rows (rows, 3)."""
        from sklearn.model_selection import KFold
        from sklearn.preprocessing import TargetEncoder

        cells = np.asarray(cells, dtype=np.int64)
        y = np.asarray(y, dtype=np.float64)
        if cells.ndim != 2 or cells.shape != (len(y), len(ZONE_FEATURES)):
            raise ValueError(
                f"expected ({len(y)}, {len(ZONE_FEATURES)}) cell keys, got {cells.shape}"
            )
        crossed = np.empty(cells.shape, dtype=np.float64)
        tables = []
        for j in range(len(ZONE_FEATURES)):
            column = cells[:, j : j + 1]
            strength = prior_strength(column[:, 0], y)
            # The same folds for every category: KFold's split depends on the rows and seed only.
            folds = KFold(n_splits=CROSS_FIT_FOLDS, shuffle=True, random_state=seed)
            encoder = TargetEncoder(target_type="continuous", smooth=strength, cv=folds)
            crossed[:, j] = encoder.fit_transform(column, y)[:, 0]
            keys = np.asarray(encoder.categories_[0], dtype=np.int64)
            found, counts = np.unique(column[:, 0], return_counts=True)
            if not np.array_equal(found, keys):
                raise ValueError("the encoder's categories differ from the cells it was given")
            values = np.asarray(encoder.encodings_[0], dtype=np.float64)
            default = float(encoder.target_mean_)
            tables.append(ZoneTable(keys, values, counts, default, strength))
        return cls(area, float(cell_km), tuple(tables)), crossed

    def encode(self, cells: np.ndarray) -> np.ndarray:
        """The encodings (rows, 3) of cell keys (rows, 3) from :func:`zone_cells` (each table's
        :meth:`ZoneTable.lookup`, in one pass)."""
        merged = cells * 3 + _CATEGORY
        if self._keys.size == 0:
            return np.broadcast_to(self._defaults, cells.shape).copy()
        at = np.minimum(np.searchsorted(self._keys, merged), self._keys.size - 1)
        return np.where(self._keys[at] == merged, self._values[at], self._defaults)

    def features(self, coordinates: np.ndarray, hour_local: np.ndarray) -> np.ndarray:
        """The encodings (rows, 3) of trips: ``coordinates`` and ``hour_local`` as in
        :func:`zone_cells`. Equal to ``encode(zone_cells(...))``; a batch of at most
        SMALL_BATCH rows is computed in plain Python, the same float operations in the same
        order, because numpy's fixed cost per call would be most of a one-booking prediction."""
        if len(coordinates) > SMALL_BATCH:
            return self.encode(zone_cells(self.area, self.cell_km, coordinates, hour_local))
        lat0, lon0 = self.area.center_lat, self.area.center_lon
        lat_scale, lon_scale = _scales(self.area, self.cell_km)
        pickups, dropoffs, hours = self._lookups
        defaults = self._defaults.tolist()
        out = []
        for (plat, plon, dlat, dlon), hour in zip(
            coordinates.tolist(), np.asarray(hour_local).tolist(), strict=True
        ):
            pickup = _key(plat - lat0, plon - lon0, lat_scale, lon_scale)
            dropoff = _key(dlat - lat0, dlon - lon0, lat_scale, lon_scale)
            at_hour = pickup * HOURS + int(min(max(hour, 0.0), HOURS - 1.0))
            out.append(
                (
                    pickups.get(pickup, defaults[0]),
                    dropoffs.get(dropoff, defaults[1]),
                    hours.get(at_hour, defaults[2]),
                )
            )
        return np.array(out, dtype=np.float64).reshape(len(out), 3)

    def summary(self) -> dict[str, Any]:
        """What the artifact's metadata says of the encodings (cells and rows per category)."""
        return {
            "cell_km": self.cell_km,
            "smoothing": "shrunk towards the overall mean with a prior of k rows (method of "
            "moments); cross-fitted on 5 folds of the training rows",
            "overall_mean": self.tables[0].default,
            "cells": {
                name: {
                    "count": int(t.keys.size),
                    "median_rows": _median_count(t),
                    "prior_rows": t.strength,
                }
                for name, t in zip(ZONE_FEATURES, self.tables, strict=True)
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "area": self.area.to_dict(),
            "cell_km": self.cell_km,
            "tables": {
                name: t.to_dict() for name, t in zip(ZONE_FEATURES, self.tables, strict=True)
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ZoneEncoding:
        tables = data["tables"]
        missing = [name for name in ZONE_FEATURES if name not in tables]
        if missing:
            raise ValueError(f"zone encodings lack {missing}")
        return cls(
            area=ServiceArea.from_dict(data["area"]),
            cell_km=float(data["cell_km"]),
            tables=tuple(ZoneTable.from_dict(tables[name]) for name in ZONE_FEATURES),
        )


def prior_strength(keys: np.ndarray, y: np.ndarray) -> float:
    """The prior's strength ``k`` (in rows) for the cells ``keys`` of delays ``y``: the pooled
    within-cell variance over the between-cell variance of true means, by the method of
    moments, bounded to [MIN_PRIOR_ROWS, MAX_PRIOR_ROWS] (the upper bound when the cells do
    not differ beyond their noise).

    >>> rng = np.random.default_rng(0)
    >>> cells = np.repeat(np.arange(50), 100)
    >>> means = rng.normal(0, 2, 50)        # true cell means: variance 4
    >>> y = means[cells] + rng.normal(0, 4, 5000)  # noise within cells: variance 16
    >>> round(prior_strength(cells, y))     # about 16 / 4
    4
    >>> prior_strength(cells, rng.normal(0, 4, 5000)) > 100  # cells alike: a strong prior
    True
    """
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    n, cells = len(y), len(counts)
    means = np.bincount(inverse, weights=y) / counts
    within_ss = float(np.sum((y - means[inverse]) ** 2))
    within = within_ss / (n - cells) if n > cells else float(np.var(y))
    between_ss = float(np.sum(counts * (means - y.mean()) ** 2))
    effective = n - float(np.sum(counts.astype(np.float64) ** 2)) / n
    if effective <= 0:
        return MAX_PRIOR_ROWS
    between = (between_ss - (cells - 1) * within) / effective
    if between <= within / MAX_PRIOR_ROWS:
        return MAX_PRIOR_ROWS
    return float(np.clip(within / between, MIN_PRIOR_ROWS, MAX_PRIOR_ROWS))


def _median_count(table: ZoneTable) -> float:
    return float(np.median(table.counts)) if table.counts.size else 0.0
