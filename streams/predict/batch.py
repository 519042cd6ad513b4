"""One batch of booking records in, predictions and dead letters out.

This is the whole prediction path except Kafka itself: decode and validate, enrich with weather,
route by the flags, predict the ML share of the batch in one call, fall back to the heuristic for
anything the ML path cannot serve, and assemble the Prediction events. The agent calls
:meth:`BatchPredictor.run` on each batch; tests call it directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from connectors.flags import FlagState
from models.features import feature_dict, feature_matrix
from models.heuristic import predict as heuristic_predict
from models.interval import exceedance, spread_of, tracking_factor
from models.risk import risk_levels, risk_levels_by_chance
from models.routing import bucket, routes_to_ml
from schemas import (
    Arm,
    BookingRequested,
    DeadLetter,
    FallbackReason,
    FlagSource,
    Prediction,
    RiskLevel,
    Weather,
)
from schemas._types import DELAY_MINUTES_BOUND
from streams.decode import DEFAULT_CONTRACT, Contract, Decoded, Inbound, decode_batch
from streams.predict.model_holder import ModelHolder, Served

log = logging.getLogger("delaycast.predict")

MAX_LATENCY_MS = 86_400_000.0  # the contract's bound (schemas/_types.py DurationMs)


class FlagView(Protocol):
    state: FlagState
    source: str


class TrackedSums(Protocol):
    """The tracked P90 sum of each served version (:mod:`connectors.p90_tracking`)."""

    sums: dict[str, float]


class WeatherLookupLike(Protocol):
    @property
    def weather(self) -> Weather: ...

    @property
    def note(self) -> str | None: ...


class WeatherSource(Protocol):
    async def get_many(
        self, points: Sequence[tuple[float, float, datetime]], wait_s: float
    ) -> Sequence[WeatherLookupLike]: ...


@dataclass(frozen=True)
class RiskThresholds:
    medium_minutes: float
    high_minutes: float
    probability: float = 0.3  # the chance of exceeding a threshold that makes its level


@dataclass
class BatchResult:
    predictions: list[Prediction]
    dead_letters: list[DeadLetter]
    sources: list[Inbound] = field(default_factory=list)  # the record of each prediction
    fallbacks: Counter[str] = field(default_factory=Counter)
    weather_notes: Counter[str] = field(default_factory=Counter)

    @property
    def ml_served(self) -> int:
        return sum(p.served_by is Arm.ML for p in self.predictions)


class BatchPredictor:
    def __init__(
        self,
        *,
        weather: WeatherSource,
        flags: FlagView,
        models: ModelHolder,
        risk: RiskThresholds,
        clock: Callable[[], datetime],
        model_executor: Executor,
        weather_wait_s: float,
        agent: str = "predict",
        replay: bool = False,
        contract: Contract = DEFAULT_CONTRACT,
        tracking: TrackedSums | None = None,
        tracking_rate: float = 0.0,
    ) -> None:
        self._weather = weather
        self._flags = flags
        self._models = models
        self._risk = risk
        self._clock = clock
        self._model_executor = model_executor
        self._weather_wait_s = weather_wait_s
        self._agent = agent
        self._replay = replay
        self._contract = contract
        self._tracking = tracking
        self._tracking_rate = tracking_rate
        self._shadow_failing = False

    async def run(self, records: list[Inbound]) -> BatchResult:
        started = time.perf_counter()
        received_at = self._clock()
        decoded, dead = decode_batch(
            records, BookingRequested, agent=self._agent, now=received_at, contract=self._contract
        )
        if not decoded:
            return BatchResult([], dead)
        bookings = [d.event for d in decoded]
        lookups = await self._weather.get_many(
            [(b.pickup_lat, b.pickup_lon, b.scheduled_pickup_at) for b in bookings],
            self._weather_wait_s,
        )
        weathers = [lookup.weather for lookup in lookups]
        features = feature_matrix(bookings, weathers, self._models.area)
        # One snapshot for the whole batch: a reload meanwhile cannot mix two champions.
        served = self._models.current

        flags, flag_source = self._flags.state, FlagSource(self._flags.source)
        booking_buckets = [bucket(flags.salt, b.booking_id) for b in bookings]
        on_ml = np.array(
            [
                routes_to_ml(b, enabled=flags.ml_enabled, percentage=flags.ml_traffic_percentage)
                for b in booking_buckets
            ],
            dtype=bool,
        )

        heuristic = served.heuristic
        delays, confidences = heuristic_predict(heuristic, features)
        delays = np.asarray(delays, dtype=np.float64).copy()
        confidences = np.asarray(confidences, dtype=np.float64).copy()
        served_ml = np.zeros(len(bookings), dtype=bool)
        reasons: list[FallbackReason | None] = [None] * len(bookings)
        details: list[str | None] = [None] * len(bookings)
        model_version = served.model.version if served.model is not None else None
        shadow = await self._predict_ml(
            served, features, on_ml, delays, confidences, served_ml, reasons, details
        )

        levels = self._risk_levels(served, delays, confidences, served_ml)
        uppers = self._p90(served, delays, confidences, served_ml)
        predicted_at = self._clock()
        processing_ms = (time.perf_counter() - started) * 1000.0
        result = BatchResult([], dead)
        for i, item in enumerate(decoded):
            reason = reasons[i]
            if reason is not None:
                result.fallbacks[reason.value] += 1
            note = lookups[i].note
            if note is not None:
                result.weather_notes[note] += 1
            result.sources.append(item.record)
            result.predictions.append(
                self._prediction(
                    item,
                    weather=weathers[i],
                    features=feature_dict(features[i]),
                    delay=float(delays[i]),
                    p90=None if np.isnan(uppers[i]) else float(uppers[i]),
                    confidence=float(confidences[i]),
                    risk=levels[i],
                    arm=Arm.ML if on_ml[i] else Arm.HEURISTIC,
                    served_ml=bool(served_ml[i]),
                    bucket_value=booking_buckets[i],
                    version=model_version if served_ml[i] else heuristic.version,
                    reason=reason,
                    detail=details[i],
                    flags=flags,
                    flag_source=flag_source,
                    predicted_at=predicted_at,
                    processing_ms=processing_ms,
                    shadow=None if np.isnan(shadow[i]) else float(shadow[i]),
                    shadow_version=served.shadow.version if served.shadow is not None else None,
                )
            )
        return result

    async def _predict_ml(
        self,
        served: Served,
        features: np.ndarray,
        on_ml: np.ndarray,
        delays: np.ndarray,
        confidences: np.ndarray,
        served_ml: np.ndarray,
        reasons: list[FallbackReason | None],
        details: list[str | None],
    ) -> np.ndarray:
        """Overwrite the heuristic's answer with the model's wherever the model can serve, and
        score the challenger in shadow on every booking, both in one call to the executor.
        Returns the challenger's delays (NaN where it has none); its failure only logs."""
        shadow_delays = np.full(len(features), np.nan)
        model = served.model
        if model is None and on_ml.any():
            reason = served.unavailable or FallbackReason.NO_MODEL
            for i in np.flatnonzero(on_ml):
                reasons[i], details[i] = reason, served.detail
        complete = np.isfinite(features).all(axis=1)
        for i in np.flatnonzero(on_ml & ~complete):
            reasons[i], details[i] = FallbackReason.MISSING_FEATURE, "a feature is not a number"
        rows = np.flatnonzero(on_ml & complete) if model is not None else np.empty(0, np.intp)
        shadow_rows = np.flatnonzero(complete) if served.shadow is not None else rows[:0]
        if rows.size == 0 and shadow_rows.size == 0:
            return shadow_delays
        loop = asyncio.get_running_loop()
        scored, shadow_scored = await loop.run_in_executor(
            self._model_executor,
            _score_both,
            model,
            features[rows],
            served.shadow,
            features[shadow_rows],
        )
        if shadow_rows.size:
            self._take_shadow(served, shadow_scored, shadow_rows, shadow_delays)
        if rows.size == 0:
            return shadow_delays
        try:
            if isinstance(scored, BaseException):
                raise scored
            ml_delays, ml_confidences = scored
            ml_delays = np.asarray(ml_delays, dtype=np.float64)
            ml_confidences = np.asarray(ml_confidences, dtype=np.float64)
            if ml_delays.shape != (rows.size,) or ml_confidences.shape != (rows.size,):
                raise ValueError(f"model returned shape {ml_delays.shape} for {rows.size} rows")
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"[:500]
            version = getattr(model, "version", "unknown")
            log.error("[ML] model %s failed on %d bookings: %s", version, rows.size, detail)
            for i in rows:
                reasons[i], details[i] = FallbackReason.MODEL_ERROR, detail
            return shadow_delays
        ok = np.isfinite(ml_delays) & np.isfinite(ml_confidences)
        good = rows[ok]
        delays[good] = ml_delays[ok]
        confidences[good] = np.clip(ml_confidences[ok], 0.0, 1.0)
        served_ml[good] = True
        for i in rows[~ok]:
            reasons[i], details[i] = FallbackReason.MODEL_ERROR, "model returned a non-finite value"
        return shadow_delays

    def _take_shadow(
        self, served: Served, scored: Any, rows: np.ndarray, shadow_delays: np.ndarray
    ) -> None:
        """The challenger's delays into ``shadow_delays`` at ``rows``; a failure is logged (once
        until it scores again) and leaves them NaN: the shadow never touches what is served."""
        try:
            if isinstance(scored, BaseException):
                raise scored
            values = np.asarray(scored[0], dtype=np.float64)
            if values.shape != (rows.size,):
                raise ValueError(f"challenger returned shape {values.shape} for {rows.size} rows")
        except Exception as exc:
            if not self._shadow_failing:
                log.warning(
                    "[ML] challenger %s failed in shadow: %s",
                    getattr(served.shadow, "version", "unknown"),
                    f"{type(exc).__name__}: {exc}"[:300],
                )
            self._shadow_failing = True
            return
        self._shadow_failing = False
        bounded = np.isfinite(values) & (np.abs(values) <= DELAY_MINUTES_BOUND)
        shadow_delays[rows[bounded]] = values[bounded]

    def _risk_levels(
        self, served: Served, delays: np.ndarray, confidences: np.ndarray, served_ml: np.ndarray
    ) -> list[RiskLevel]:
        """By the chance of exceeding each threshold where the serving predictor's interval is
        calibrated, else by the predicted delay (:mod:`models.risk`)."""
        risk = self._risk
        levels = risk_levels(delays, risk.medium_minutes, risk.high_minutes)
        for mask, quantiles in (
            (served_ml, served.model_quantiles),
            (~served_ml, served.heuristic_quantiles),
        ):
            rows = np.flatnonzero(mask)
            if quantiles is None or rows.size == 0:
                continue
            d, c = delays[rows], confidences[rows]
            by_chance = risk_levels_by_chance(
                exceedance(d, c, risk.medium_minutes, quantiles),
                exceedance(d, c, risk.high_minutes, quantiles),
                risk.probability,
            )
            for i, level in zip(rows.tolist(), by_chance, strict=True):
                levels[i] = level
        return levels

    def _p90(
        self, served: Served, delays: np.ndarray, confidences: np.ndarray, served_ml: np.ndarray
    ) -> np.ndarray:
        """Each prediction's P90 with its predictor's calibrated scale, times the online
        tracking's factor for its version (:func:`models.interval.tracking_factor`); NaN where
        the predictor has none (an artifact trained before intervals, the default heuristic)."""
        model_scale, rule_scale = served.model_p90_scale, served.heuristic_p90_scale
        if self._tracking is not None:
            sums, rate = self._tracking.sums, self._tracking_rate
            if model_scale is not None and served.model is not None:
                model_scale *= tracking_factor(sums.get(served.model.version), rate)
            if rule_scale is not None:
                rule_scale *= tracking_factor(sums.get(served.heuristic.version), rate)
        scales = np.where(
            served_ml,
            np.nan if model_scale is None else model_scale,
            np.nan if rule_scale is None else rule_scale,
        )
        uppers = delays + scales * spread_of(confidences)
        return np.clip(uppers, -DELAY_MINUTES_BOUND, DELAY_MINUTES_BOUND)

    def _prediction(
        self,
        item: Decoded[BookingRequested],
        *,
        weather: Weather,
        features: dict[str, float],
        delay: float,
        p90: float | None,
        confidence: float,
        risk: Any,
        arm: Arm,
        served_ml: bool,
        bucket_value: float,
        version: str | None,
        reason: FallbackReason | None,
        detail: str | None,
        flags: FlagState,
        flag_source: FlagSource,
        predicted_at: datetime,
        processing_ms: float,
        shadow: float | None = None,
        shadow_version: str | None = None,
    ) -> Prediction:
        booking = item.event
        latency_ms = None
        if item.record.timestamp_ms is not None and item.record.timestamp_ms > 0:
            produced = datetime.fromtimestamp(
                item.record.timestamp_ms / 1000.0, predicted_at.tzinfo
            )
            # A producer's clock far behind ours must not make the prediction itself invalid.
            latency_ms = min(
                max((predicted_at - produced) / timedelta(milliseconds=1), 0.0), MAX_LATENCY_MS
            )
        return Prediction(
            booking_id=booking.booking_id,
            predicted_delay_minutes=round(delay, 3),
            delay_p90_minutes=None if p90 is None else round(p90, 3),
            confidence=round(confidence, 4),
            risk_level=risk,
            arm=arm,
            served_by=Arm.ML if served_ml else Arm.HEURISTIC,
            bucket=bucket_value,
            model_version=version or "unknown",
            fallback_reason=reason,
            fallback_detail=detail,
            shadow_model_version=shadow_version if shadow is not None else None,
            shadow_delay_minutes=None if shadow is None else round(shadow, 3),
            ml_enabled=flags.ml_enabled,
            ml_traffic_percentage=flags.ml_traffic_percentage,
            flag_source=flag_source,
            features=features,
            weather=weather,
            scheduled_pickup_at=booking.scheduled_pickup_at,
            booking_created_at=booking.created_at,
            predicted_at=predicted_at,
            processing_ms=round(processing_ms, 3),
            latency_ms=None if latency_ms is None else round(latency_ms, 3),
            replay=self._replay,
        )


def _score_both(model: Any, x: np.ndarray, shadow: Any, shadow_x: np.ndarray) -> tuple[Any, Any]:
    """The model's and the challenger's predictions in one executor call; each either
    (delays, confidences) or the exception it raised, so one failing never hides the other."""

    def score(predictor: Any, rows: np.ndarray) -> Any:
        if predictor is None or rows.shape[0] == 0:
            return None
        try:
            return predictor.predict(rows)
        except Exception as exc:
            return exc

    return score(model, x), score(shadow, shadow_x)
