"""What a model reads: named columns of the booking features, then its zone encodings, if any.

Every predictor takes the full :data:`~models.features.FEATURE_NAMES` matrix, the one the
prediction path computes, and picks its own columns from it *by name*. A model trained before a
feature was added to the matrix therefore keeps reading exactly the columns it was trained on,
and an artifact names the columns it needs (its metadata's ``features``): one that needs a
column this code does not compute is refused before it is loaded.

>>> from models.features import FEATURE_NAMES
>>> inputs = ModelInputs()
>>> inputs.names == MODEL_FEATURES and inputs.names == FEATURE_NAMES[: len(MODEL_FEATURES)]
True
>>> X = np.arange(2.0 * len(FEATURE_NAMES)).reshape(2, -1)
>>> inputs.transform(X).shape
(2, 20)
>>> ModelInputs(columns=("weekday", "distance_km")).transform(X)[:, 0].tolist()
[3.0, 27.0]
>>> ModelInputs(columns=("no_such",))
Traceback (most recent call last):
...
ValueError: features this code does not compute: ['no_such']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.area import ServiceArea
from models.features import COORDINATE_FEATURES, FEATURE_INDEX, FEATURE_NAMES
from models.predictor import checked_features
from models.zones import ZONE_FEATURES, ZoneEncoding, zone_cells

# The columns a model reads by default: every booking feature but the raw coordinates (location
# reaches a model through distances and, when it has them, zone encodings).
MODEL_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n not in COORDINATE_FEATURES)
_ZONE_SOURCES = (*COORDINATE_FEATURES, "hour_local")


@dataclass(frozen=True)
class ModelInputs:
    """Named booking-feature columns, in the model's order, and optional zone encodings."""

    columns: tuple[str, ...] = MODEL_FEATURES
    zones: ZoneEncoding | None = None
    _index: np.ndarray | None = field(init=False, repr=False, compare=False, default=None)
    __hash__ = None  # type: ignore[assignment]  # its encodings are not hashable

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        unknown = [c for c in self.columns if c not in FEATURE_INDEX]
        if unknown:
            raise ValueError(f"features this code does not compute: {unknown}")
        if len(set(self.columns)) != len(self.columns) or not self.columns:
            raise ValueError("columns must be distinct and at least one")
        index = [FEATURE_INDEX[c] for c in self.columns]
        # A leading run of the matrix is a view, not a copy (the default inputs).
        prefix = index == list(range(len(index)))
        object.__setattr__(self, "_index", None if prefix else np.array(index))

    @property
    def names(self) -> tuple[str, ...]:
        """The model's own input names: the columns, then the zone encodings."""
        return self.columns + (ZONE_FEATURES if self.zones is not None else ())

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The model's input matrix from the booking features ``X`` (rows, FEATURE_NAMES);
        ValueError when ``X`` has another width or a non-finite value."""
        X = checked_features(X, len(FEATURE_NAMES))
        index = self._index
        picked = X[:, : len(self.columns)] if index is None else X[:, index]
        if self.zones is None:
            return picked
        out = np.empty((len(X), len(self.columns) + len(ZONE_FEATURES)), dtype=np.float64)
        out[:, : len(self.columns)] = picked
        first = FEATURE_INDEX[COORDINATE_FEATURES[0]]
        coordinates = X[:, first : first + len(COORDINATE_FEATURES)]
        out[:, len(self.columns) :] = self.zones.features(
            coordinates, X[:, FEATURE_INDEX["hour_local"]]
        )
        return out

    def zone_cells(self, X: np.ndarray) -> np.ndarray:
        """The zone keys (rows, 3) of the booking features ``X``."""
        if self.zones is None:
            raise ValueError("these inputs have no zone encodings")
        return booking_zone_cells(X, self.zones.area, self.zones.cell_km)

    @property
    def required(self) -> tuple[str, ...]:
        """Every booking feature these inputs read: the columns, and what zones are made of."""
        extra = _ZONE_SOURCES if self.zones is not None else ()
        return self.columns + tuple(c for c in extra if c not in self.columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "zones": None if self.zones is None else self.zones.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInputs:
        zones = data.get("zones")
        return cls(
            columns=tuple(data["columns"]),
            zones=None if zones is None else ZoneEncoding.from_dict(zones),
        )

    @classmethod
    def of(cls, columns: Sequence[str]) -> ModelInputs:
        """Inputs without zone encodings (an artifact older than them, or a model without)."""
        return cls(columns=tuple(columns))


def booking_zone_cells(X: np.ndarray, area: ServiceArea, cell_km: float) -> np.ndarray:
    """The zone keys (rows, 3; see :func:`models.zones.zone_cells`) of booking features ``X``."""
    first = FEATURE_INDEX[COORDINATE_FEATURES[0]]
    coordinates = X[:, first : first + len(COORDINATE_FEATURES)]
    return zone_cells(area, cell_km, coordinates, X[:, FEATURE_INDEX["hour_local"]])
