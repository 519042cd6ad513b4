"""The pipeline's rates and signals, derived from consecutive /metrics samples (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.operate.api.pipeline import PipelineSampler, Sample, pipeline_points, signals
from streams.operate.api.prometheus import Lag, Scrape
from streams.worker.metrics import parse_totals

T0 = datetime(2026, 12, 7, 9, tzinfo=UTC)
GROUPS = {"predict": "g", "outcomes": "g-outcomes", "history": "g-history"}


def sample(
    second: float,
    *,
    bookings: int,
    ml: int,
    heuristic: int,
    outcomes: int,
    lag: int = 0,
    buckets: dict[str, int] | None = None,
    dead: dict[str, int] | None = None,
    hits: int = 0,
    lookups: int = 0,
) -> Sample:
    raw = {
        "bookings": bookings,
        "predictions:ml": ml,
        "predictions:heuristic": heuristic,
        "fallbacks:no_model": heuristic // 2,
        "weather:hits": hits,
        "weather:lookups": lookups,
        **{f"latency:le:{b}": n for b, n in (buckets or {}).items()},
        **{f"dead_letters:{k}": n for k, n in (dead or {}).items()},
    }
    lags = (Lag("g", "bookings", lag), Lag("g-outcomes", "predictions", 1))
    scrape = Scrape(
        parse_totals({k: str(v) for k, v in raw.items()}),
        outcomes,
        lags,
        {},
        {"validation": 1},
    )
    return Sample(T0 + timedelta(seconds=second), scrape)


def test_rates_are_the_counters_differences_over_the_seconds_between_samples():
    before = sample(0, bookings=100, ml=40, heuristic=50, outcomes=30, hits=10, lookups=20)
    after = sample(
        5,
        bookings=150,
        ml=60,
        heuristic=75,
        outcomes=45,
        lag=7,
        dead={"decode": 5},
        hits=28,
        lookups=40,
    )
    [point] = pipeline_points([before, after])
    assert point["at"] == after.at and point["seconds"] == 5
    assert point["bookings_per_s"] == 10.0
    assert point["predictions_per_s"] == {"heuristic": 5.0, "ml": 4.0}
    assert point["outcomes_per_s"] == 3.0
    assert point["fallbacks_per_s"] == {"no_model": pytest.approx(2.4)}
    assert point["dead_letters_per_s"] == {"decode": 1.0, "validation": 0.0}
    assert point["weather_hit_ratio"] == pytest.approx(18 / 20)
    assert point["lag"] == {"g": 7, "g-outcomes": 1}


def test_latency_quantiles_come_from_the_predictions_made_between_two_samples():
    before = sample(0, bookings=0, ml=0, heuristic=0, outcomes=0, buckets={"0.01": 1000})
    # 100 more: 50 in (0.01, 0.025], 49 in (0.025, 0.05], 1 in (0.05, 0.1].
    after = sample(
        5,
        bookings=0,
        ml=0,
        heuristic=0,
        outcomes=0,
        buckets={"0.01": 1000, "0.025": 50, "0.05": 49, "0.1": 1},
    )
    [point] = pipeline_points([before, after])
    assert point["latency_p50_ms"] == pytest.approx(25.0)  # the 50th of 100: top of its bucket
    assert point["latency_p99_ms"] == pytest.approx(50.0)
    idle = pipeline_points([after, sample(10, bookings=0, ml=0, heuristic=0, outcomes=0)])
    assert idle[0]["latency_p50_ms"] is None  # the counters went down: no figure for the step


def test_a_counter_that_went_down_gives_no_rate_and_an_unread_store_none():
    before = sample(0, bookings=500, ml=10, heuristic=10, outcomes=9)
    after = sample(5, bookings=20, ml=12, heuristic=10, outcomes=9)
    [point] = pipeline_points([before, after])
    assert point["bookings_per_s"] is None and point["predictions_per_s"]["ml"] == 0.4
    blind = Sample(T0 + timedelta(seconds=10), Scrape(None, None, None))
    [gap] = pipeline_points([after, blind])
    assert gap["bookings_per_s"] is None and gap["outcomes_per_s"] is None and gap["lag"] is None


def run(lags: list[int], made: list[int]) -> list[dict]:
    samples = [
        sample(5 * i, bookings=0, ml=m, heuristic=0, outcomes=0, lag=lag)
        for i, (lag, m) in enumerate(zip(lags, made, strict=True))
    ]
    return signals(pipeline_points(samples), GROUPS)


def test_a_group_whose_lag_grows_while_its_path_makes_nothing_is_stalled():
    flagged = run([0, 10, 20, 30, 40, 50, 60, 70, 80], [5] * 9)
    assert [(s["kind"], s["group"]) for s in flagged] == [("stalled", "g")]
    assert "from 30 to 80" in flagged[0]["text"]  # the lags of the newest 30 s


def test_a_lag_that_grows_at_every_step_while_predictions_flow_is_growing_not_stalled():
    flagged = run([0, 10, 20, 30, 40, 50, 60, 70, 80], [5 * i for i in range(9)])
    assert [(s["kind"], s["group"]) for s in flagged] == [("lag_growing", "g")]


def test_a_lag_that_moves_with_commits_while_nothing_is_made_is_not_stalled():
    # Higher at the end than at the start, but not at every step: commit timing, not a stall.
    assert run([0, 3, 1, 4, 2, 5, 3, 6, 4], [0] * 9) == []


def test_a_steady_lag_or_a_short_history_raises_nothing():
    assert run([5, 6, 5, 6, 5, 6, 5, 6, 5], [5 * i for i in range(9)]) == []
    assert run([0, 10, 20], [0, 0, 0]) == []  # 10 s of history: too short to call it stalled


def test_the_sampler_keeps_the_newest_samples_and_survives_a_failing_read():
    reads = iter([Scrape(None, 1, None), RuntimeError("boom"), Scrape(None, 2, None)])
    clock = iter(T0 + timedelta(seconds=i) for i in range(10))

    def read() -> Scrape:
        item = next(reads)
        if isinstance(item, Exception):
            raise item
        return item

    sampler = PipelineSampler(read, lambda: next(clock), keep=1)
    for _ in range(3):
        sampler.sample_once()
    assert [s.scrape.outcomes for s in sampler.samples()] == [2]
