"""``/api/pipeline``: the pipeline itself over the last minutes, from the ``/metrics`` counters.

While the API runs, a sampler thread reads what ``/metrics`` shows (:func:`read_scrape`) every
PIPELINE_SAMPLE_S seconds (5) and keeps the last hour. Between two samples it derives the rates
an operator watches: bookings/s, predictions/s per arm, outcomes/s, dead letters/s per kind and
fallbacks/s per reason, the latency p50 and p99 of the predictions made in between (from the
histogram's buckets), the weather cache's hit ratio, and the consumer lag of each group. A
counter that went down (its Redis hash was cleared) gives no rate for that step.

Two signals say at a glance what the rates imply:

- ``stalled``: a group whose lag grew at every step of the last PIPELINE_STALL_S (30 s)
  while its path made nothing (no prediction, or no outcome);
- ``lag_growing``: a group whose lag grew at every step of the last PIPELINE_STALL_S.

A lag that only moves with the timing of commits (a path with nothing to do, downstream of a
stalled one) does not grow at every step, and raises nothing.

The samples live in the API's memory: a restarted API starts a new history, and each API
process has its own. Prometheus, scraping ``/metrics``, is the long-term store.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request

from streams.operate.api.prometheus import Lag, Scrape, read_scrape
from streams.operate.api.resources import Resources

log = logging.getLogger("delaycast.api")

KEPT_S: Final = 3600.0  # the samples of the last hour are kept
MAX_MINUTES: Final = 60


@dataclass(frozen=True)
class Sample:
    at: datetime
    scrape: Scrape


class PipelineSampler:
    """Reads ``read()`` every ``interval_s`` in a thread of its own and keeps the last ``keep``
    samples. A read that raises is logged and skipped: the history has a gap, not an end."""

    def __init__(
        self,
        read: Callable[[], Scrape],
        clock: Callable[[], datetime],
        *,
        interval_s: float = 5.0,
        keep: int = 720,
    ) -> None:
        self._read = read
        self._clock = clock
        self._interval_s = interval_s
        self._samples: deque[Sample] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_once(self) -> None:
        try:
            scrape = self._read()
        except Exception:  # a store the scrape did not guard; the next sample tries again
            log.exception("[API] pipeline sample failed")
            return
        with self._lock:
            self._samples.append(Sample(self._clock(), scrape))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(self._interval_s)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pipeline-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)


def _rate(after: float | None, before: float | None, seconds: float) -> float | None:
    if after is None or before is None or after < before:
        return None
    return (after - before) / seconds


def _rates(
    after: Mapping[str, int] | None, before: Mapping[str, int] | None, seconds: float
) -> dict[str, float | None] | None:
    if after is None or before is None:
        return None
    return {k: _rate(after.get(k, 0), before.get(k, 0), seconds) for k in sorted(after)}


def histogram_quantile(bounds: Sequence[float], counts: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of observations in buckets (``counts[i]`` in (bounds[i-1], bounds[i]],
    the last bound infinite), interpolated linearly within its bucket; a quantile in the last
    bucket is its lower bound (at least that). None without observations.

    >>> round(histogram_quantile([0.01, 0.1, float("inf")], [0, 10, 0], 0.5), 6)
    0.055
    >>> histogram_quantile([0.01, 0.1, float("inf")], [5, 0, 5], 0.99)
    0.1
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    lower = 0.0
    for bound, n in zip(bounds, counts, strict=True):
        if n > 0 and seen + n >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - seen) / n
        seen += n
        lower = bound
    return lower


def _latency_ms(after: Scrape, before: Scrape) -> tuple[float | None, float | None]:
    if after.worker is None or before.worker is None:
        return None, None
    bounds = [b for b, _ in after.worker.latency_buckets]
    cumulative = [
        a - b
        for (_, a), (_, b) in zip(
            after.worker.latency_buckets, before.worker.latency_buckets, strict=True
        )
    ]
    if any(c < 0 for c in cumulative):
        return None, None
    counts = [c - (cumulative[i - 1] if i else 0) for i, c in enumerate(cumulative)]
    p50, p99 = (histogram_quantile(bounds, counts, q) for q in (0.5, 0.99))
    return (None if p50 is None else 1000 * p50, None if p99 is None else 1000 * p99)


def _dead_letter_rates(a: Scrape, b: Scrape, seconds: float) -> dict[str, float | None] | None:
    """Rates only when the same stores answered both times: a store back after a miss would
    otherwise count its whole total as arriving in one step."""
    answered = (a.worker is not None, a.join_dead_letters is not None)
    if answered != (b.worker is not None, b.join_dead_letters is not None):
        return None
    return _rates(a.dead_letters_by_kind(), b.dead_letters_by_kind(), seconds)


def lag_by_group(lags: Sequence[Lag] | None) -> dict[str, int] | None:
    """Each group's lag, summed over the topics it reads."""
    if lags is None:
        return None
    out: dict[str, int] = {}
    for entry in lags:
        out[entry.group] = out.get(entry.group, 0) + entry.messages
    return out


def step(before: Sample, after: Sample) -> dict[str, Any]:
    """The rates between two samples, stamped with the later one's time."""
    seconds = (after.at - before.at).total_seconds()
    a, b = after.scrape, before.scrape
    p50, p99 = _latency_ms(a, b)
    point: dict[str, Any] = {
        "at": after.at,
        "seconds": seconds,
        "bookings_per_s": None,
        "predictions_per_s": None,
        "outcomes_per_s": _rate(a.outcomes, b.outcomes, seconds),
        "dead_letters_per_s": _dead_letter_rates(a, b, seconds),
        "fallbacks_per_s": None,
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "weather_hit_ratio": None,
        "lag": lag_by_group(a.lags),
    }
    wa, wb = a.worker, b.worker
    if wa is not None and wb is not None:
        hits, lookups = wa.weather_hits - wb.weather_hits, wa.weather_lookups - wb.weather_lookups
        point |= {
            "bookings_per_s": _rate(wa.bookings, wb.bookings, seconds),
            "predictions_per_s": _rates(wa.predictions, wb.predictions, seconds),
            "fallbacks_per_s": _rates(wa.fallbacks, wb.fallbacks, seconds),
            "weather_hit_ratio": hits / lookups if lookups > 0 and hits >= 0 else None,
        }
    return point


def pipeline_points(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """One point per pair of consecutive samples, oldest first."""
    return [step(b, a) for b, a in itertools.pairwise(samples) if a.at > b.at]


def _made(point: Mapping[str, Any], group: str, groups: Mapping[str, str]) -> float | None:
    """What the path of ``group`` made per second at ``point`` (None: unknown)."""
    if group == groups["predict"]:
        per_arm = point["predictions_per_s"]
        if per_arm is None or any(v is None for v in per_arm.values()):
            return None
        return float(sum(per_arm.values()))
    if group == groups["outcomes"]:
        made: float | None = point["outcomes_per_s"]
        return made
    return None


def signals(
    points: Sequence[Mapping[str, Any]], groups: Mapping[str, str], *, stall_s: float = 30.0
) -> list[dict[str, Any]]:
    """``stalled`` and ``lag_growing`` per group over the newest ``stall_s`` of ``points``."""
    if not points:
        return []
    newest = points[-1]["at"]
    recent = [p for p in points if p["at"] > newest - timedelta(seconds=stall_s)]
    out: list[dict[str, Any]] = []
    if len(recent) < 2 or (recent[-1]["at"] - points[0]["at"]).total_seconds() < stall_s:
        return out  # too short a history to say
    lags = [p["lag"] for p in recent]
    if any(lag is None for lag in lags):
        return out
    for group in sorted(lags[-1]):
        series = [lag.get(group) for lag in lags]
        if any(v is None for v in series):
            continue
        # At every step, not only from first to last: a lag that moves with the commits'
        # timing (a path with nothing to do) is noise, not a stall.
        grew = all(later > earlier for earlier, later in itertools.pairwise(series))
        made = [_made(p, group, groups) for p in recent]
        if grew and all(m == 0 for m in made):
            out.append(
                {
                    "kind": "stalled",
                    "group": group,
                    "text": f"{group}: lag grew from {series[0]:,} to {series[-1]:,} in "
                    f"{stall_s:g} s while its path made nothing",
                }
            )
        elif grew:
            out.append(
                {
                    "kind": "lag_growing",
                    "group": group,
                    "text": f"{group}: lag grew at every step of {stall_s:g} s, "
                    f"from {series[0]:,} to {series[-1]:,}",
                }
            )
    return out


router = APIRouter(prefix="/api", tags=["pipeline"])

Minutes = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_MINUTES,
        description=f"a whole number of minutes from 1 to {MAX_MINUTES}",
    ),
]


@router.get("/pipeline")
def pipeline(request: Request, minutes: Minutes = 15) -> dict[str, Any]:
    """Rates of the pipeline over the last ``minutes`` (wall clock, sampled every
    PIPELINE_SAMPLE_S), with the stalled or lagging consumer groups."""
    sampler: PipelineSampler = request.app.state.pipeline_sampler
    resources: Resources = request.app.state.resources
    s = resources.settings
    samples = sampler.samples()
    if samples:
        since = samples[-1].at - timedelta(minutes=minutes)
        # One sample before the window too: the first point's rate needs it.
        first = next((i for i, x in enumerate(samples) if x.at >= since), len(samples))
        samples = samples[max(first - 1, 0) :]
    points = pipeline_points(samples)
    groups = {
        "predict": s.topic(s.consumer_group),
        "outcomes": s.topic(f"{s.consumer_group}-outcomes"),
        "history": s.topic(f"{s.consumer_group}-history"),
    }
    return {
        "sample_s": s.pipeline_sample_s,
        "stall_s": s.pipeline_stall_s,
        "minutes": minutes,
        "groups": groups,
        "points": points,
        "signals": signals(points, groups, stall_s=s.pipeline_stall_s),
    }


def sampler_for(resources: Resources) -> PipelineSampler:
    interval = resources.settings.pipeline_sample_s
    return PipelineSampler(
        lambda: read_scrape(resources),
        resources.clock,
        interval_s=interval,
        keep=int(KEPT_S / interval) + 1,
    )
