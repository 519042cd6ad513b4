"""A served history for the tests of evaluate and retrain: three days of the synthetic world,
stored in PostgreSQL as live predictions (with their served features) and outcomes, and kept
here as arrays for the offline computations the tests compare with."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import numpy as np

from connectors.postgres import make_engine, write_outcomes, write_predictions
from models.features import feature_dict, feature_matrix
from models.synthetic import generate_history
from schemas import Arm, Outcome
from tests.factories import prediction

END = datetime(2025, 3, 8, tzinfo=UTC)
SINCE = END - timedelta(days=2)
WINDOW = ("--since", SINCE.isoformat(), "--until", END.isoformat())  # the CLI's options
LEFT_OUT = 5  # the latest bookings, stored without one of their features


@functools.cache
def seeded() -> dict:
    """Three days of the synthetic world: two inside the window, one before it."""
    history = generate_history(END - timedelta(days=3), END, seed=11, bookings_per_day=120)
    bookings = [row.booking for row in history.rows]
    x = feature_matrix(bookings, history.row_weather)
    actual = np.array([row.actual_delay_minutes for row in history.rows])
    rng = np.random.default_rng(7)
    served = actual + rng.normal(0, 3, size=len(actual))  # what the live path had said
    return {"bookings": bookings, "x": x, "actual": actual, "served": served}


def store(database_url: str, seeded: dict) -> None:
    predictions, outcomes = [], []
    n = len(seeded["bookings"])
    for i, booking in enumerate(seeded["bookings"]):
        features = feature_dict(seeded["x"][i])
        if i >= n - LEFT_OUT:  # the latest bookings: inside the window
            del features["distance_km"]
        arm = Arm.ML if i % 2 else Arm.HEURISTIC
        pickup, served = booking.scheduled_pickup_at, float(seeded["served"][i])
        actual = float(seeded["actual"][i])
        predictions.append(
            prediction(
                booking.booking_id,
                at=booking.created_at,
                arm=arm,
                features=features,
                predicted_delay_minutes=served,
                scheduled_pickup_at=pickup,
            )
        )
        outcomes.append(
            Outcome(
                booking_id=booking.booking_id,
                arm=arm,
                served_by=arm,
                model_version="seeded",
                bucket=1,
                ml_traffic_percentage=50,
                predicted_delay_minutes=served,
                actual_delay_minutes=actual,
                error=served - actual,
                abs_error=abs(served - actual),
                scheduled_pickup_at=pickup,
                predicted_at=booking.created_at,
                observed_at=pickup,
            )
        )
    engine = make_engine(database_url)
    try:
        write_predictions(engine, predictions=predictions)
        write_outcomes(engine, outcomes=outcomes)
    finally:
        engine.dispose()
