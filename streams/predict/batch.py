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
from concurrent.futures import Executor, Future, ThreadPoolExecutor
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
        shadow_wait_s: float = 0.05,
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
        self._shadow_wait_s = shadow_wait_s
        self._shadow_executor: ThreadPoolExecutor | None = None
        self._shadow_inflight: Future[Any] | None = None
        self.shadow_skipped = 0  # batches the challenger was busy or late for

    def close(self) -> None:
        """Release the challenger's thread (a scoring under way is not waited for)."""
        if self._shadow_executor is not None:
            self._shadow_executor.shutdown(wait=False, cancel_futures=True)

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
        # The kill switch stops the challenger too: ML off means no model runs at all.
        shadow = await self._predict_ml(
            served, features, on_ml, delays, confidences, served_ml, reasons, details,
            score_shadow=served.shadow is not None and flags.ml_enabled,
        )  # fmt: skip

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
        *,
        score_shadow: bool,
    ) -> np.ndarray:
        """Overwrite the heuristic's answer with the model's wherever the model can serve, and
        score the challenger in shadow on the same batch, beside it (:meth:`_shadow`). Returns
        the challenger's delays (NaN where it has none)."""
        shadow_delays = np.full(len(features), np.nan)
        model = served.model
        complete = np.isfinite(features).all(axis=1)
        if model is None:
            reason = served.unavailable or FallbackReason.NO_MODEL
            for i in np.flatnonzero(on_ml):
                reasons[i], details[i] = reason, served.detail
            rows = np.empty(0, np.intp)
        else:
            for i in np.flatnonzero(on_ml & ~complete):
                reasons[i], details[i] = (
                    FallbackReason.MISSING_FEATURE,
                    "a feature is not a number",
                )
            rows = np.flatnonzero(on_ml & complete)
        shadow_rows = np.flatnonzero(complete) if score_shadow else rows[:0]
        shadow = self._start_shadow(served, features[shadow_rows]) if shadow_rows.size else None
        if rows.size:
            loop = asyncio.get_running_loop()
            scored = await loop.run_in_executor(self._model_executor, _score, model, features[rows])
        if shadow is not None:
            await self._finish_shadow(served, shadow, shadow_rows, shadow_delays)
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

    def _start_shadow(self, served: Served, x: np.ndarray) -> asyncio.Future[Any] | None:
        """The challenger's scoring of ``x`` on a thread of its own, beside the champion's; None
        when it still scores an earlier batch (that batch then waits for nothing: a slow
        challenger skips batches, it never holds predictions back)."""
        if self._shadow_inflight is not None and not self._shadow_inflight.done():
            self.shadow_skipped += 1
            return None
        if self._shadow_executor is None:
            self._shadow_executor = ThreadPoolExecutor(1, thread_name_prefix="shadow")
        future = self._shadow_executor.submit(_score, served.shadow, x)
        self._shadow_inflight = future
        return asyncio.wrap_future(future)

    async def _finish_shadow(
        self, served: Served, task: asyncio.Future[Any], rows: np.ndarray, out: np.ndarray
    ) -> None:
        """The challenger's delays into ``out`` at ``rows`` if it answers within
        SHADOW_WAIT_S of the champion; a late, failed or misshapen answer leaves them NaN, with
        one warning until it scores again: the shadow never touches what is served."""
        done, _ = await asyncio.wait({task}, timeout=self._shadow_wait_s)
        try:
            if not done:
                self.shadow_skipped += 1
                raise TimeoutError(f"no answer within {self._shadow_wait_s:g} s")
            scored = task.result()
            if isinstance(scored, BaseException):
                raise scored
            values = np.asarray(scored[0], dtype=np.float64)
            if values.shape != (rows.size,):
                raise ValueError(f"challenger returned shape {values.shape} for {rows.size} rows")
        except Exception as exc:
            if not self._shadow_failing:
                log.warning(
                    "[ML] challenger %s not scored in shadow: %s",
                    getattr(served.shadow, "version", "unknown"),
                    f"{type(exc).__name__}: {exc}"[:300],
                )
            self._shadow_failing = True
            return
        self._shadow_failing = False
        bounded = np.isfinite(values) & (np.abs(values) <= DELAY_MINUTES_BOUND)
        out[rows[bounded]] = values[bounded]

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


def _score(predictor: Any, rows: np.ndarray) -> Any:
    """``predictor.predict(rows)``, or the exception it raised (returned, not raised: the
    caller decides what a failure means for its rows)."""
    try:
        return predictor.predict(rows)
    except Exception as exc:
        return exc
