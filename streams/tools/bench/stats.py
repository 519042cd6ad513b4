"""The arithmetic of the benchmark: summaries, percentiles, rates and CPU time per event.

Pure functions over numbers the runners collected; no clock, no I/O.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Median, minimum and maximum of repeated measurements.

    >>> Summary.of([3.0, 1.0, 2.0])
    Summary(median=2.0, min=1.0, max=3.0, n=3)
    """

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary | None:
        """The summary of ``values``; None when there are none."""
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values), len(values))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by the nearest-rank method: the smallest value with at
    least ``q`` % of the values at or below it.

    >>> percentile([5.0, 1.0, 4.0, 2.0, 3.0], 50)
    3.0
    >>> percentile(list(range(1, 101)), 99)
    99
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0-100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int]:
    """p50, p99 and max of latencies (ms), with their count."""
    return {
        "n": len(latencies_ms),
        "p50_ms": percentile(latencies_ms, 50),
        "p99_ms": percentile(latencies_ms, 99),
        "max_ms": max(latencies_ms),
    }


def rate_per_s(events: int, first_s: float, last_s: float, at_first: int = 1) -> float:
    """Events per second between the first and the last observation.

    ``at_first`` events were seen at ``first_s`` (a whole batch, or one message); they happened
    before the measured span, so only the ``events - at_first`` after them count.
    """
    span = last_s - first_s
    if span <= 0:
        raise ValueError(f"no time between the first and the last event ({span:.6f} s)")
    if not 0 < at_first <= events:
        raise ValueError(f"{at_first} events at the first instant of {events}")
    return (events - at_first) / span


def rate_from_timestamps(timestamps_ms: Sequence[int]) -> float:
    """Messages per second from their Kafka timestamps (ms): those stamped after the first
    millisecond, over the time from the first to the last.

    >>> rate_from_timestamps([1000, 1000, 1500, 2000])
    2.0
    """
    if len(timestamps_ms) < 2:
        raise ValueError("a rate needs at least two timestamps")
    first, last = min(timestamps_ms), max(timestamps_ms)
    at_first = sum(1 for t in timestamps_ms if t == first)
    return rate_per_s(len(timestamps_ms), first / 1000, last / 1000, at_first)


def cpu_at(samples: Sequence[tuple[float, float]], at: float) -> float:
    """A process's CPU seconds at time ``at``, interpolated linearly between (time, CPU s)
    samples taken in time order; held constant before the first and after the last.

    >>> cpu_at([(0.0, 1.0), (1.0, 2.0)], 0.25)
    1.25
    """
    if not samples:
        raise ValueError("no CPU samples")
    if at <= samples[0][0]:
        return samples[0][1]
    if at >= samples[-1][0]:
        return samples[-1][1]
    i = bisect.bisect_right(samples, at, key=lambda s: s[0])
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    return c0 if t1 == t0 else c0 + (c1 - c0) * (at - t0) / (t1 - t0)


def cpu_us_per_event(cpu_first_s: float, cpu_last_s: float, events: int) -> float:
    """Microseconds of CPU per event between two readings of a process's CPU time."""
    if events <= 0:
        raise ValueError("no events")
    return (cpu_last_s - cpu_first_s) * 1e6 / events


def ratios(values: Sequence[float | None], reference: Sequence[float | None]) -> list[float]:
    """``values[i] / reference[i]`` for each repetition where both were measured.

    >>> ratios([2.0, None, 9.0], [4.0, 5.0, 3.0])
    [0.5, 3.0]
    """
    return [
        v / r
        for v, r in zip(values, reference, strict=False)
        if v is not None and r is not None and r > 0
    ]
