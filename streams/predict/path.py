"""The prediction path wired from settings: flags, champion model, weather and the batch predictor.

The worker (:mod:`streams.worker.runtime`) and ``delaycast replay`` build it here, so a replayed
booking goes through exactly the code, flags, model and weather a live one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from connectors.flags import FlagState, FlagStore, FlagWatcher
from connectors.p90_tracking import TrackingWatcher
from connectors.weather import WeatherService
from streams.clock import utc_now
from streams.predict.batch import BatchPredictor, RiskThresholds
from streams.predict.model_holder import ModelHolder
from streams.predict.weather import build_weather_service
from streams.settings import Settings

log = logging.getLogger("delaycast.worker")


TRACKING_POLL_S = 2.0  # how often the tracked P90 sums are read again


def initial_flags(settings: Settings) -> FlagState:
    return FlagState(
        ml_enabled=settings.ml_enabled,
        ml_traffic_percentage=settings.ml_traffic_percentage,
        salt=settings.ml_hash_salt,
    )


def write_initial_flags(settings: Settings) -> None:
    """Write the settings' initial flags when Redis has none yet (blocking)."""
    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(), socket_timeout=1, socket_connect_timeout=1
    )
    try:
        FlagStore(client, settings.flags_redis_key).initialize(initial_flags(settings))
    except (redis.RedisError, OSError) as exc:
        log.warning("[FeatureFlag] cannot initialize flags in Redis: %s", exc)
    finally:
        client.close()


@dataclass
class PredictionPath:
    """What predicting needs while it runs; :meth:`aclose` releases it."""

    executor: ThreadPoolExecutor
    model_executor: ThreadPoolExecutor
    redis: aioredis.Redis
    flags: FlagWatcher
    tracking: TrackingWatcher
    models: ModelHolder
    weather: WeatherService
    predictor: BatchPredictor

    async def aclose(self) -> None:
        await self.weather.aclose()
        with contextlib.suppress(Exception):  # a Redis that went away cannot stop a shutdown
            await self.redis.aclose()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.model_executor.shutdown(wait=False, cancel_futures=True)
        self.predictor.close()


async def build_prediction_path(
    settings: Settings,
    *,
    initialize_flags: bool = True,
    replay: bool = False,
    agent: str = "predict",
    load_model: bool = True,
) -> PredictionPath:
    """Connect to Redis, read the flags, load the champion and build the predictor.

    ``initialize_flags`` writes the settings' initial flags when Redis has none (the worker does;
    a replay only reads). ``replay`` marks every prediction as a replay, which the join skips.
    """
    s = settings
    executor = ThreadPoolExecutor(s.worker_threads, thread_name_prefix="delaycast-io")
    # The model gets its own thread: blocked I/O (a hanging weather API) must never delay it.
    model_executor = ThreadPoolExecutor(1, thread_name_prefix="delaycast-model")
    loop = asyncio.get_running_loop()
    client = aioredis.Redis.from_url(
        s.redis_url.get_secret_value(), socket_timeout=0.5, socket_connect_timeout=0.5
    )
    if initialize_flags:
        await loop.run_in_executor(executor, write_initial_flags, s)
    flags = FlagWatcher(
        client, s.flags_redis_key, initial_flags(s), interval_s=s.flags_poll_interval_s
    )
    await flags.refresh()
    tracking = TrackingWatcher(client, s.p90_tracking_redis_key, interval_s=TRACKING_POLL_S)
    await tracking.refresh()
    models = ModelHolder(s.model_dir, s.service_area, shadow=s.shadow_enabled)
    if load_model:  # a worker that never predicts need not hold the forest in memory
        await loop.run_in_executor(executor, models.reload_if_changed)
    weather = build_weather_service(s, executor=executor)
    predictor = BatchPredictor(
        weather=weather,
        flags=flags,
        models=models,
        risk=RiskThresholds(s.risk_medium_minutes, s.risk_high_minutes, s.risk_probability),
        clock=utc_now,
        model_executor=model_executor,
        weather_wait_s=s.weather_wait_ms / 1000.0,
        agent=agent,
        replay=replay,
        contract=s.contract,
        tracking=tracking if s.p90_tracking_rate > 0 else None,
        tracking_rate=s.p90_tracking_rate,
        shadow_wait_s=s.shadow_wait_ms / 1000.0,
    )
    return PredictionPath(
        executor, model_executor, client, flags, tracking, models, weather, predictor
    )
