"""The model figures: one booking's ML prediction, a batch's cost per booking, and agreement
with scikit-learn, timed as :mod:`streams.tools.bench.forest_timing` times them, on the champion the
workers serve, forest or boosting."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from streams.tools.bench.forest_timing import Timing, load_champion_with_rows, time_cases

SEED = 42
SINGLE_CALLS = 100


def model_figures(model_dir: Path, batch_rows: int, repeats: int = 100) -> dict[str, Any]:
    predictor, X = load_champion_with_rows(model_dir, SEED)
    estimator, origin = predictor.estimator, f"champion {predictor.version}"
    inputs = predictor.inputs

    def sklearn_predict(X: np.ndarray) -> np.ndarray:  # from booking features, as served
        return np.asarray(estimator.predict(inputs.transform(X)))

    cases: dict[str, Callable[[np.ndarray], object]] = {
        "sklearn": sklearn_predict,
        "compiled": predictor.predict,
    }
    timings = time_cases(cases, X, repeats)
    # The worker's batch size (BATCH_MAX), timed the way forest_timing times its sizes.
    rows = min(batch_rows, len(X))
    batch = np.ascontiguousarray(X[:rows])
    predictor.predict(batch)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.predict(batch)
        seconds.append(time.perf_counter() - started)
    timings.append(Timing(f"compiled, {rows} rows", rows, seconds))

    def per_row_us(case: str, rows: int) -> dict[str, float]:
        found = next(t for t in timings if t.case == case and t.rows == rows)
        return {
            "median": found.per_row_us(statistics.median),
            "min": found.per_row_us(min),
            "max": found.per_row_us(max),
        }

    sample = X[:1000]
    delays, _ = predictor.predict(sample)
    one_by_one = np.concatenate(
        [predictor.predict(sample[i : i + 1])[0] for i in range(SINGLE_CALLS)]
    )
    expected = sklearn_predict(sample)
    return {
        "model": origin,
        "repeats": repeats,
        "one_booking_us": per_row_us("compiled", 1),
        "one_booking_cold_caches_us": per_row_us("compiled, cold caches", 1),
        "batch_rows": rows,
        "batched_per_booking_us": per_row_us(f"compiled, {rows} rows", rows),
        "per_booking_at_100_rows_us": per_row_us("compiled", 100),
        "per_booking_at_1000_rows_us": per_row_us("compiled", 1000),
        "sklearn_one_booking_us": per_row_us("sklearn", 1),
        "sklearn_per_booking_at_1000_rows_us": per_row_us("sklearn", 1000),
        "max_abs_diff_vs_sklearn_batch": float(np.max(np.abs(delays - expected))),
        "max_abs_diff_vs_sklearn_single_rows": float(
            np.max(np.abs(one_by_one - expected[:SINGLE_CALLS]))
        ),
    }
