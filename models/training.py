"""The training pipeline: history in, candidates scored on one holdout, a champion if one earns it.

1. Features of every history row with its weather, in the service area's local time
   (:func:`models.features.feature_matrix`).
2. Rows sorted by scheduled pickup time (event time); the most recent ``holdout_fraction`` of
   rows is held out, so the scores say how each candidate does on a future it has not seen.
3. Candidates, all fitted on the earlier rows only and scored on the same holdout:

   - ``constant``: the training median for every booking (the baseline any model must beat);
   - ``heuristic``: the rules of :mod:`models.heuristic`, fitted by least absolute deviations.
     When the fitted rules lose to the constant on the holdout they are replaced by the constant
     written as rules, so the heuristic the workers serve never loses to it;
   - ``forest``: the random forest of :mod:`models.forest` (squared error);
   - ``boosting``: gradient boosting with absolute-error loss (:mod:`models.boosting`), the loss
     of the operators' KPI, which a heavy right tail of delays cannot drag upwards;
   - ``boosting_zones``: the same boosting, also given the zone target encodings of
     :mod:`models.zones` (pickup cell, dropoff cell, pickup cell × hour), fitted on the training
     rows only and cross-fitted on them. Location is worth its own candidate because whether it
     helps depends on the area: where distance and the distance to the centre already say it
     all, the encodings only add noise, and the holdout says so.

   The ML candidate with the lowest holdout MAE is the model of the artifact; it is shipped as
   evaluated (not refitted on all rows), so its metadata describes exactly what is served.
4. Its lead over the heuristic and over the constant (their MAE minus its MAE) gets a 95 %
   interval from a block bootstrap of the holdout: whole local days are resampled (hours when
   the holdout spans fewer than :data:`MIN_DAY_BLOCKS` days), because errors within a day are
   not independent (weather, incidents, one bad shift).
5. The promotion gate: the model may become champion only when both intervals lie above 0,
   resampled from at least :data:`MIN_DAY_BLOCKS` blocks. The model's and the heuristic's P90
   are calibrated on the holdout, and their coverage measured out of sample: calibrated on its
   first half, counted on the second (:mod:`models.interval`).
6. The training distribution of each feature is recorded for drift monitoring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from models import heuristic
from models.area import GENEVA, ServiceArea
from models.boosting import (
    SPREAD_CONFIG,
    BoostingConfig,
    BoostingPredictor,
    fit_boosting,
    fit_spread,
)
from models.distribution import FeatureDistribution, describe_features
from models.features import FEATURE_NAMES, feature_matrix, local_seconds
from models.forest import ForestConfig, ForestPredictor, fit_forest
from models.history import HistoryRow
from models.inputs import ModelInputs, booking_zone_cells
from models.interval import Interval
from models.metrics import bias, mae, r2, rmse
from models.predictor import Predictor
from models.zones import ZoneEncoding
from schemas.weather import Weather

# Progress callback: (stage, detail) — the CLI prints it, tests ignore it.
Progress = Callable[[str, str], None]

ML_CANDIDATES: tuple[str, ...] = ("forest", "boosting", "boosting_zones")
BASELINES: tuple[str, ...] = ("constant", "heuristic")
MIN_DAY_BLOCKS = 10  # fewer blocks than this, and a bootstrap interval means little
MIN_HOLDOUT_ROWS = 20  # the P90 is calibrated on one half and measured on the other


@dataclass(frozen=True)
class TrainingConfig:
    holdout_fraction: float = 0.2
    min_rows: int = 100
    forest: ForestConfig = field(default_factory=ForestConfig)
    boosting: BoostingConfig = field(default_factory=BoostingConfig)
    candidates: tuple[str, ...] = ML_CANDIDATES
    bootstrap_samples: int = 2000
    seed: int = 0
    zone_cell_km: float = 1.0  # side of the zone grid's square cells

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 1:
            raise ValueError("holdout_fraction must be in (0, 1)")
        unknown = [c for c in self.candidates if c not in ML_CANDIDATES]
        if unknown or not self.candidates:
            raise ValueError(f"candidates must be among {list(ML_CANDIDATES)}, got {unknown}")
        if self.bootstrap_samples < 100:
            raise ValueError("bootstrap_samples must be >= 100")
        if not self.zone_cell_km >= 0.1:
            raise ValueError(f"zone_cell_km must be at least 0.1, not {self.zone_cell_km}")


@dataclass(frozen=True)
class Scores:
    """Metrics of one predictor on the holdout, in minutes (R² unitless)."""

    mae: float
    rmse: float
    r2: float
    bias: float

    @classmethod
    def of(cls, y_true: np.ndarray, y_pred: np.ndarray) -> Scores:
        return cls(
            mae=mae(y_true, y_pred),
            rmse=rmse(y_true, y_pred),
            r2=r2(y_true, y_pred),
            bias=bias(y_true, y_pred),
        )

    def to_dict(self) -> dict[str, float]:
        return {"mae": self.mae, "rmse": self.rmse, "r2": self.r2, "bias": self.bias}


@dataclass(frozen=True)
class Lead:
    """How much lower the model's holdout MAE is than a baseline's, with a 95 % interval."""

    over: str
    minutes: float  # baseline MAE - model MAE: positive when the model is better
    low: float
    high: float
    blocks: int  # resampled units (days or hours) of the holdout
    block: str  # "day" or "hour"

    @property
    def certain(self) -> bool:
        """The whole interval is above 0: the model is better, beyond the noise of the holdout."""
        return self.low > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "over": self.over,
            "minutes": self.minutes,
            "ci95": [self.low, self.high],
            "blocks": self.blocks,
            "block": self.block,
        }


@dataclass(frozen=True)
class Gate:
    """Whether the trained model may become champion, and why not when it may not."""

    passed: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class TrainingResult:
    """Everything an artifact needs; the model version is assigned when it is saved."""

    model_kind: str  # the ML candidate that won: one of ML_CANDIDATES
    estimator: Any  # what the artifact stores: {"forest": …} or {"point": …, "spread": …}
    predictor: Predictor
    forest_estimator: Any  # the forest candidate, whether it won or not (drift, bench)
    heuristic: heuristic.HeuristicParams
    heuristic_note: str | None  # set when the fitted rules were replaced by the constant
    candidates: dict[str, Scores]  # every candidate's holdout scores, baselines included
    leads: dict[str, Lead]  # the model's lead over "heuristic" and over "constant"
    gate: Gate
    constant_median: float
    confidence_deciles: tuple[float, float]  # holdout MAE of the most / least confident tenth
    intervals: dict[str, Interval]  # the P90 of "model" and of "heuristic"
    feature_names: tuple[str, ...]  # the booking features the model needs (see ModelInputs)
    rows: int
    train_rows: int
    holdout_rows: int
    window_start: datetime  # earliest scheduled pickup in the history (UTC)
    window_end: datetime  # latest scheduled pickup in the history (UTC)
    holdout_start: datetime  # first scheduled pickup of the holdout (UTC)
    feature_distributions: dict[str, FeatureDistribution]
    area: ServiceArea
    config: TrainingConfig

    @property
    def model_scores(self) -> Scores:
        return self.candidates[self.model_kind]

    @property
    def heuristic_scores(self) -> Scores:
        return self.candidates["heuristic"]

    @property
    def best_candidate(self) -> str:
        """The candidate with the lowest holdout MAE, baselines included."""
        return min(self.candidates, key=lambda name: self.candidates[name].mae)

    def summary(self) -> dict[str, Any]:
        """Counts, window, every candidate's holdout scores, leads and gate as JSON values."""
        return {
            "rows": self.rows,
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "holdout_start": self.holdout_start.isoformat(),
            "service_area": self.area.to_dict(),
            "model_kind": self.model_kind,
            "candidates": {name: s.to_dict() for name, s in self.candidates.items()},
            "best_candidate": self.best_candidate,
            "model": self.model_scores.to_dict(),
            "heuristic": self.heuristic_scores.to_dict(),
            "heuristic_version": self.heuristic.version,
            "heuristic_note": self.heuristic_note,
            "constant_median": self.constant_median,
            "leads": {name: lead.to_dict() for name, lead in self.leads.items()},
            "gate": self.gate.to_dict(),
            "confidence_deciles_mae": {
                "most_confident": self.confidence_deciles[0],
                "least_confident": self.confidence_deciles[1],
            },
            "p90": {name: interval.to_dict() for name, interval in self.intervals.items()},
        }


def _ignore(stage: str, detail: str) -> None:
    return None


def train(
    history: Sequence[HistoryRow],
    weathers: Sequence[Weather],
    config: TrainingConfig | None = None,
    progress: Progress = _ignore,
    area: ServiceArea = GENEVA,
) -> TrainingResult:
    """Fit, score and compare the candidates; ``weathers[i]`` is the weather of row i."""
    config = config or TrainingConfig()
    if len(history) != len(weathers):
        raise ValueError(f"{len(history)} history rows but {len(weathers)} weathers")
    if len(history) < config.min_rows:
        raise ValueError(f"need at least {config.min_rows} history rows, got {len(history)}")
    progress("features", f"{len(history)} rows, local time in {area.timezone}")
    data = split_by_time(history, weathers, config.holdout_fraction, area)
    return train_split(data, config, progress, area)


def train_split(
    data: Split,
    config: TrainingConfig | None = None,
    progress: Progress = _ignore,
    area: ServiceArea = GENEVA,
) -> TrainingResult:
    """:func:`train` on features already computed (the served features of a retraining), in
    order of scheduled pickup, the last rows the holdout."""
    config = config or TrainingConfig()
    if len(data.y) < config.min_rows:
        raise ValueError(f"need at least {config.min_rows} history rows, got {len(data.y)}")
    X_train, y_train, X_hold, y_hold = data.X_train, data.y_train, data.X_hold, data.y_hold
    if len(y_hold) < MIN_HOLDOUT_ROWS:
        raise ValueError(
            f"the holdout has {len(y_hold)} rows, fewer than {MIN_HOLDOUT_ROWS}: give more "
            "history or a larger holdout fraction"
        )
    pickup_s, split, y = data.pickup_s, data.split, data.y
    predictions: dict[str, np.ndarray] = {}
    confidences: dict[str, np.ndarray] = {}

    median = float(np.median(y_train))
    predictions["constant"] = np.full(len(y_hold), median)

    progress("heuristic", "fitting the rules by least absolute deviations")
    params = heuristic.fit_heuristic(X_train, y_train)
    predictions["heuristic"], confidences["heuristic"] = heuristic.predict(params, X_hold)
    note = None
    if mae(y_hold, predictions["heuristic"]) > mae(y_hold, predictions["constant"]):
        note = (
            f"the fitted rules lost to the constant median on the holdout "
            f"({mae(y_hold, predictions['heuristic']):.2f} > "
            f"{mae(y_hold, predictions['constant']):.2f} min): the heuristic is the constant"
        )
        params = heuristic.constant_params(median, params.residual_std_min)
        predictions["heuristic"], confidences["heuristic"] = heuristic.predict(params, X_hold)

    fitted: dict[str, tuple[dict[str, Any], Predictor]] = {}
    plain = ModelInputs()
    if "forest" in config.candidates:
        progress("forest", f"fitting {config.forest.n_estimators} trees on {split} rows")
        forest = fit_forest(plain.transform(X_train), y_train, config.forest)
        fitted["forest"] = ({"forest": forest}, ForestPredictor(forest, "candidate", plain))
    if "boosting" in config.candidates:
        progress("boosting", f"fitting absolute-error boosting on {split} rows")
        fitted["boosting"] = _fit_boosting(plain.transform(X_train), y_train, plain, config)
    if "boosting_zones" in config.candidates:
        progress("boosting_zones", f"zone encodings ({config.zone_cell_km:g} km cells)")
        zoned, crossed = _fit_zones(X_train, y_train, area, config)
        progress("boosting_zones", f"fitting absolute-error boosting on {split} rows")
        inputs = np.hstack([plain.transform(X_train), crossed])
        fitted["boosting_zones"] = _fit_boosting(inputs, y_train, zoned, config)
    progress("evaluate", f"{len(y_hold)} holdout rows")
    for name, (_, predictor) in fitted.items():
        predictions[name], confidences[name] = predictor.predict(X_hold)

    candidates = {name: Scores.of(y_hold, p) for name, p in predictions.items()}
    kind = min(fitted, key=lambda name: candidates[name].mae)
    blocks, block = _blocks(pickup_s[split:], area)
    rng = np.random.default_rng(config.seed)
    model_error = np.abs(y_hold - predictions[kind])
    leads = {
        base: bootstrap_lead(
            base,
            np.abs(y_hold - predictions[base]),
            model_error,
            blocks,
            block,
            config.bootstrap_samples,
            rng,
        )
        for base in BASELINES
    }
    estimator, predictor = fitted[kind]
    return TrainingResult(
        model_kind=kind,
        estimator=estimator,
        predictor=predictor,
        forest_estimator=fitted["forest"][0]["forest"] if "forest" in fitted else None,
        heuristic=params,
        heuristic_note=note,
        candidates=candidates,
        leads=leads,
        gate=promotion_gate(kind, candidates, leads),
        constant_median=median,
        confidence_deciles=confidence_deciles(model_error, confidences[kind]),
        intervals={
            "model": Interval.fitted(y_hold, predictions[kind], confidences[kind]),
            "heuristic": Interval.fitted(
                y_hold, predictions["heuristic"], confidences["heuristic"]
            ),
        },
        feature_names=predictor.inputs.required,
        rows=len(y),
        train_rows=split,
        holdout_rows=len(y_hold),
        window_start=datetime.fromtimestamp(pickup_s[0], UTC),
        window_end=datetime.fromtimestamp(pickup_s[-1], UTC),
        holdout_start=datetime.fromtimestamp(pickup_s[split], UTC),
        feature_distributions=describe_features(X_train, FEATURE_NAMES),
        area=area,
        config=config,
    )


def _fit_boosting(
    X: np.ndarray, y: np.ndarray, inputs: ModelInputs, config: TrainingConfig
) -> tuple[dict[str, Any], Predictor]:
    """Point and spread models fitted on the model inputs ``X`` (``inputs.names`` columns)."""
    point = fit_boosting(X, y, config.boosting)
    spread_config = replace(SPREAD_CONFIG, random_state=config.boosting.random_state)
    spread = fit_spread(X, y, point.predict(X), spread_config)
    predictor = BoostingPredictor(point, "candidate", inputs, spread_estimator=spread)
    return {"point": point, "spread": spread}, predictor


def _fit_zones(
    X_train: np.ndarray, y_train: np.ndarray, area: ServiceArea, config: TrainingConfig
) -> tuple[ModelInputs, np.ndarray]:
    """Inputs with zone encodings fitted on the training rows, and those rows' cross-fitted
    encodings (rows, 3)."""
    cells = booking_zone_cells(X_train, area, config.zone_cell_km)
    encoding, crossed = ZoneEncoding.fit(area, config.zone_cell_km, cells, y_train, config.seed)
    return ModelInputs(zones=encoding), crossed


@dataclass(frozen=True)
class Split:
    """Features and delays sorted by scheduled pickup, cut into training rows and holdout."""

    X: np.ndarray
    y: np.ndarray
    pickup_s: np.ndarray  # Unix seconds of each row's scheduled pickup, ascending
    split: int  # rows [0, split) train, [split, rows) are the holdout

    @property
    def X_train(self) -> np.ndarray:
        return self.X[: self.split]

    @property
    def y_train(self) -> np.ndarray:
        return self.y[: self.split]

    @property
    def X_hold(self) -> np.ndarray:
        return self.X[self.split :]

    @property
    def y_hold(self) -> np.ndarray:
        return self.y[self.split :]


def split_by_time(
    history: Sequence[HistoryRow],
    weathers: Sequence[Weather],
    holdout_fraction: float,
    area: ServiceArea = GENEVA,
) -> Split:
    """The rows :func:`train` fits on and the holdout it scores on, for offline comparisons."""
    pickup_s = np.array([row.booking.scheduled_pickup_at.timestamp() for row in history])
    order = np.argsort(pickup_s, kind="stable")
    X = feature_matrix([history[i].booking for i in order], [weathers[i] for i in order], area)
    y = np.array([history[i].actual_delay_minutes for i in order], dtype=np.float64)
    return Split(X=X, y=y, pickup_s=pickup_s[order], split=holdout_start(len(y), holdout_fraction))


def holdout_start(rows: int, holdout_fraction: float) -> int:
    """The first holdout row of ``rows`` in time order: the latest ``holdout_fraction``.

    >>> holdout_start(1000, 0.2), holdout_start(3, 0.01)
    (800, 2)
    """
    return rows - max(1, round(rows * holdout_fraction))


def promotion_gate(kind: str, candidates: dict[str, Scores], leads: dict[str, Lead]) -> Gate:
    """Champion only when the model beats every baseline, each lead's interval above 0."""
    reasons = []
    model = candidates[kind]
    for base in BASELINES:
        lead = leads[base]
        if lead.blocks < MIN_DAY_BLOCKS:
            reasons.append(
                f"the holdout has {lead.blocks} {lead.block}s to resample, fewer than "
                f"{MIN_DAY_BLOCKS}: too little to judge the lead over the {base}"
            )
        elif not lead.certain:
            reasons.append(
                f"{kind} does not beat the {base} beyond doubt: holdout MAE {model.mae:.2f} "
                f"against {candidates[base].mae:.2f} min, lead {lead.minutes:+.2f} min with "
                f"95 % interval [{lead.low:+.2f}, {lead.high:+.2f}]"
            )
    return Gate(passed=not reasons, reasons=tuple(reasons))


def bootstrap_lead(
    over: str,
    base_error: np.ndarray,
    model_error: np.ndarray,
    blocks: np.ndarray,
    block: str,
    samples: int,
    rng: np.random.Generator,
) -> Lead:
    """The mean of ``base_error - model_error`` (absolute errors per holdout row), with the
    2.5 and 97.5 percentiles of its block bootstrap: ``blocks[i]`` is row i's block id.

    >>> rng = np.random.default_rng(0)
    >>> base, model = np.full(100, 3.0), np.full(100, 2.0)
    >>> lead = bootstrap_lead("constant", base, model, np.arange(100) // 10, "day", 200, rng)
    >>> lead.minutes, lead.low, lead.high, lead.blocks, lead.certain
    (1.0, 1.0, 1.0, 10, True)
    """
    difference = np.asarray(base_error, dtype=np.float64) - np.asarray(model_error, np.float64)
    ids, inverse = np.unique(blocks, return_inverse=True)
    sums = np.bincount(inverse, weights=difference, minlength=len(ids))
    counts = np.bincount(inverse, minlength=len(ids)).astype(np.float64)
    # Each bootstrap sample draws len(ids) blocks with replacement; drawn counts per block:
    draws = rng.multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)), size=samples)
    means = (draws @ sums) / np.maximum(draws @ counts, 1.0)
    low, high = np.percentile(means, [2.5, 97.5])
    return Lead(
        over=over,
        minutes=float(difference.mean()),
        low=float(low),
        high=float(high),
        blocks=len(ids),
        block=block,
    )


def confidence_deciles(abs_error: np.ndarray, confidence: np.ndarray) -> tuple[float, float]:
    """Holdout MAE of the tenth of rows with the highest confidence, and of the lowest tenth.

    A confidence worth showing a dispatcher makes the first clearly smaller than the second.
    """
    order = np.argsort(-np.asarray(confidence), kind="stable")
    tenth = max(1, len(order) // 10)
    errors = np.asarray(abs_error)[order]
    return float(errors[:tenth].mean()), float(errors[-tenth:].mean())


def _blocks(pickup_s: np.ndarray, area: ServiceArea) -> tuple[np.ndarray, str]:
    days = np.floor_divide(local_seconds(pickup_s, area.tz), 86_400).astype(np.int64)
    if len(np.unique(days)) >= MIN_DAY_BLOCKS:
        return days, "day"
    return np.floor_divide(pickup_s, 3_600).astype(np.int64), "hour"
