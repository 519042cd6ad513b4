"""Worker counters for /metrics: what a batch adds, the hash they become, the Prometheus text."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from streams.operate.api.prometheus import Lag, Scrape, render
from streams.worker.metrics import (
    WorkerMetrics,
    WorkerTotals,
    bucket_field,
    flush,
    parse_totals,
)


@dataclass
class P:
    arm: str
    latency_ms: float | None


@dataclass
class WeatherStats:
    memory_hits: int = 0
    shared_hits: int = 0
    failure_hits: int = 0
    misses: int = 0


def batch(metrics: WorkerMetrics) -> None:
    metrics.record_batch(
        bookings=6,
        predictions=[
            P("ml", 5.0),
            P("ml", 10.0),
            P("heuristic", 30.0),
            P("ml", 4000.0),
            P("heuristic", None),
        ],
        fallbacks={"no_model": 2},
        dead_letters={"validation": 1},
    )


def test_a_batch_adds_bookings_arms_fallbacks_dead_letters_and_latency_buckets():
    metrics = WorkerMetrics()
    batch(metrics)
    deltas = metrics.take()
    assert dict(deltas.ints) == {
        "bookings": 6,
        "dead_letters": 1,
        "dead_letters:validation": 1,
        "fallbacks:no_model": 2,
        "predictions:ml": 3,
        "predictions:heuristic": 2,
        bucket_field(0.01): 2,  # 5 ms, and 10 ms exactly on the bound (le)
        bucket_field(0.05): 1,
        bucket_field("+Inf"): 1,
    }
    assert deltas.floats["latency:sum"] == pytest.approx(4.045)
    assert not metrics.take()  # taken: nothing pending


def test_weather_counts_only_what_happened_since_the_last_call():
    metrics = WorkerMetrics()
    metrics.record_weather(WeatherStats(memory_hits=8, shared_hits=1, failure_hits=1, misses=3))
    metrics.record_weather(WeatherStats(memory_hits=10, shared_hits=1, failure_hits=1, misses=4))
    deltas = metrics.take()
    assert (deltas.ints["weather:hits"], deltas.ints["weather:lookups"]) == (11, 15)


def test_counts_given_back_after_a_failed_flush_are_added_to_the_next_ones():
    metrics = WorkerMetrics()
    batch(metrics)
    failed = metrics.take()
    batch(metrics)
    metrics.give_back(failed)
    deltas = metrics.take()
    assert deltas.ints["bookings"] == 12 and deltas.floats["latency:sum"] == pytest.approx(8.09)


def test_parse_totals_makes_buckets_cumulative_and_ignores_junk():
    raw = {
        b"bookings": b"12",
        b"predictions:ml": b"6",
        b"fallbacks:model_error": b"1",
        b"latency:le:0.01": b"4",
        b"latency:le:0.05": b"2",
        b"latency:le:+Inf": b"2",
        b"latency:sum": b"8.09",
        b"weather:hits": b"3",
        b"weather:lookups": b"4",
        b"junk": b"not a number",
    }
    totals = parse_totals(raw)
    assert totals.bookings == 12 and totals.predictions == {"ml": 6}
    assert totals.fallbacks == {"model_error": 1}
    assert totals.latency_buckets[0] == (0.01, 4)
    assert totals.latency_buckets[2] == (0.05, 6)
    assert totals.latency_buckets[-1] == (float("inf"), 8) and totals.latency_count == 8
    assert totals.weather_hit_ratio == 0.75
    assert parse_totals({}).weather_hit_ratio is None


def families(text: bytes) -> dict[str, dict[tuple, float]]:
    """Every sample as {family: {(sample name, sorted labels): value}}."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out.setdefault(family.name, {})[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_the_prometheus_text_parses_and_carries_every_series():
    totals = parse_totals(
        {
            "bookings": "12",
            "dead_letters": "2",
            "dead_letters:decode": "2",
            "predictions:ml": "6",
            "predictions:heuristic": "4",
            "fallbacks:no_model": "3",
            "latency:le:0.025": "7",
            "latency:le:+Inf": "3",
            "latency:sum": "5.5",
            "weather:hits": "9",
            "weather:lookups": "10",
        }
    )
    lags = (
        Lag("t.delaycast", "t.bookings", 17),
        Lag("t.delaycast-outcomes", "t.predictions", 5),
    )
    scrape = Scrape(
        totals, outcomes=42, lags=lags, join_dead_letters={"processing": 1, "decode": 3}
    )
    text = render(scrape)
    f = families(text)
    assert f["delaycast_bookings"] == {("delaycast_bookings_total", ()): 12.0}
    assert f["delaycast_dead_letters"] == {("delaycast_dead_letters_total", ()): 2.0}
    by_kind = f["delaycast_dead_letters_by_kind"]
    assert by_kind[("delaycast_dead_letters_by_kind_total", (("kind", "decode"),))] == 5.0
    assert by_kind[("delaycast_dead_letters_by_kind_total", (("kind", "processing"),))] == 1.0
    assert by_kind[("delaycast_dead_letters_by_kind_total", (("kind", "too_large"),))] == 0.0
    lag = f["delaycast_consumer_lag"]
    assert lag == {
        ("delaycast_consumer_lag", (("group", "t.delaycast"), ("topic", "t.bookings"))): 17.0,
        (
            "delaycast_consumer_lag",
            (("group", "t.delaycast-outcomes"), ("topic", "t.predictions")),
        ): 5.0,
    }
    assert f["delaycast_predictions"] == {
        ("delaycast_predictions_total", (("arm", "heuristic"),)): 4.0,
        ("delaycast_predictions_total", (("arm", "ml"),)): 6.0,
    }
    fallbacks = f["delaycast_fallbacks"]
    assert fallbacks[("delaycast_fallbacks_total", (("reason", "no_model"),))] == 3.0
    assert fallbacks[("delaycast_fallbacks_total", (("reason", "model_error"),))] == 0.0
    latency = f["delaycast_prediction_latency_seconds"]
    bucket = "delaycast_prediction_latency_seconds_bucket"
    assert latency[(bucket, (("le", "0.01"),))] == 0.0
    assert latency[(bucket, (("le", "0.025"),))] == 7.0
    assert latency[(bucket, (("le", "2.5"),))] == 7.0
    assert latency[(bucket, (("le", "+Inf"),))] == 10.0
    assert latency[("delaycast_prediction_latency_seconds_count", ())] == 10.0
    assert latency[("delaycast_prediction_latency_seconds_sum", ())] == 5.5
    assert len([k for k in latency if k[0] == bucket]) == 9
    assert f["delaycast_weather_cache_hit_ratio"] == {
        ("delaycast_weather_cache_hit_ratio", ()): 0.9
    }
    assert f["delaycast_outcomes"] == {("delaycast_outcomes_total", ()): 42.0}
    assert set(f["delaycast_scrape_source_up"].values()) == {1.0}


def test_a_store_that_did_not_answer_leaves_its_series_out_of_the_scrape():
    f = families(render(Scrape(worker=WorkerTotals(), outcomes=None, lags=None)))
    assert "delaycast_consumer_lag" not in f and "delaycast_outcomes" not in f
    assert "delaycast_weather_cache_hit_ratio" not in f  # no lookups yet: no ratio
    assert f["delaycast_bookings"] == {("delaycast_bookings_total", ()): 0.0}
    up = {dict(k[1])["source"]: v for k, v in f["delaycast_scrape_source_up"].items()}
    assert up == {"redis": 1.0, "postgres": 0.0, "kafka": 0.0}
    assert "delaycast_bookings" not in families(render(Scrape(None, None, None)))


def test_a_flush_to_an_unreachable_redis_keeps_the_counts_and_does_not_raise():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    client = Redis.from_url(f"redis://127.0.0.1:{closed}/0", socket_connect_timeout=0.2)
    metrics = WorkerMetrics()
    batch(metrics)

    async def attempt() -> bool:
        try:
            return await flush(client, "k", metrics)
        finally:
            await client.aclose()

    assert asyncio.run(attempt()) is False
    assert metrics.take().ints["bookings"] == 6


def test_the_p90_tracking_factors_are_a_gauge_per_served_version():
    scrape = Scrape(None, None, None, p90_factors={"gb-1": 1.25, "heuristic-2": 0.8})
    f = families(render(scrape))
    assert f["delaycast_p90_tracking_factor"] == {
        ("delaycast_p90_tracking_factor", (("version", "gb-1"),)): 1.25,
        ("delaycast_p90_tracking_factor", (("version", "heuristic-2"),)): 0.8,
    }
    assert "delaycast_p90_tracking_factor" not in families(render(Scrape(None, None, None)))
