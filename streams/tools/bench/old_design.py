"""Scenario (f), the old design, for comparison: one event at a time.

Per booking: decode it (pydantic), one Redis GET for its weather (a key the runner fills,
BENCH_WEATHER_KEY), the features of one row, scikit-learn's own ``predict`` on that row, a
Prediction-like JSON, and ``await topic.send(...)`` through Faust's own producer.

``python -m streams.tools.bench.old_design`` with TOPIC_PREFIX, MODEL_DIR, BENCH_COUNT and
BENCH_WEATHER_KEY set: prints its :mod:`~streams.tools.bench.meter` line after BENCH_COUNT
predictions, then keeps running until the runner stops it.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterable

import numpy as np
import redis.asyncio as aioredis

from connectors.model_store import load_champion
from connectors.weather import MILD_WEATHER
from models.features import feature_dict, feature_matrix
from models.risk import risk_levels
from schemas import BookingRequested, Weather
from streams.clock import utc_now
from streams.settings import load_settings
from streams.tools.bench.faust_app import bench_app, bookings_topic, run_worker
from streams.tools.bench.meter import Meter

settings = load_settings()
app = bench_app(settings, "bench-old-design")
meter = Meter(int(os.environ.get("BENCH_COUNT", "50000")))
predictions = app.topic(settings.topic("predictions"), key_serializer="raw", value_serializer="raw")
model = load_champion(settings.model_dir)
estimator = model.predictor.estimator  # the raw scikit-learn forest, not the compiled one
weather_key = os.environ.get("BENCH_WEATHER_KEY", settings.topic("bench-weather"))
redis_client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())


@app.agent(bookings_topic(app, settings), name="old-design")
async def old_design(stream: AsyncIterable[bytes]) -> None:
    async for value in stream:
        booking = BookingRequested.model_validate_json(value)
        raw = await redis_client.get(weather_key)
        weather = Weather.model_validate_json(raw) if raw else MILD_WEATHER
        features = feature_matrix([booking], [weather])
        delay = float(estimator.predict(model.predictor.inputs.transform(features))[0])
        risk = risk_levels(
            np.array([delay]), settings.risk_medium_minutes, settings.risk_high_minutes
        )[0]
        body = {
            "booking_id": booking.booking_id,
            "predicted_delay_minutes": round(delay, 3),
            "risk_level": risk.value,
            "arm": "ml",
            "model_version": model.version,
            "features": feature_dict(features[0]),
            "weather": weather.model_dump(mode="json"),
            "predicted_at": utc_now().isoformat(),
        }
        await predictions.send(key=booking.booking_id.encode(), value=json.dumps(body).encode())
        if meter.add(1):
            meter.report()


if __name__ == "__main__":
    run_worker(app)
