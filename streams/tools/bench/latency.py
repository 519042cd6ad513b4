"""Scenario (g): end-to-end latency at fixed offered rates.

A real ``delaycast worker --role predict`` (ML at 100 %) on topics of its own; a paced producer
sends bookings at a share of the framework's ceiling (b) for a short warm-up, then for the
measured period; a consumer reads the predictions as they come. A booking's latency is the time
from just before its ``produce()`` call to the moment the consumer received its prediction, both
read from this process's monotonic clock.

Two figures per rate say what the worker cannot do better than: a plain confluent-kafka consumer
of the bookings themselves (the broker's own latency on this machine, at this load), and the
whole machine's busy CPU (the worker shares its cores with the broker and this load generator),
with the CPU the hypervisor gave to other guests (steal) apart.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.kafka import BlockingProducer
from streams.tools.bench import kafka_io
from streams.tools.bench.children import Child
from streams.tools.bench.dataset import Dataset
from streams.tools.bench.probes import CpuSampler, machine_cpu_seconds
from streams.tools.bench.runs import (
    Bench,
    child_env,
    clean_up_noting,
    loadavg,
    run_names,
    set_flags,
)
from streams.tools.bench.stats import cpu_at, latency_summary

SHARES = (0.2, 0.5, 0.7)
PRIMING = 200  # bookings sent first, until their predictions arrive: the worker is serving
READY_LIMIT_S = 120.0
DRAIN_LIMIT_S = 20.0


@dataclass(frozen=True)
class Timing:
    warmup_s: float = 3.0
    measure_s: float = 15.0


class Receiver:
    """Notes when each message (by key) first reaches a consumer of ``partitions`` partitions of
    ``topic``, in a thread of its own; :attr:`times` holds the arrivals in order."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 1) -> None:
        self.received: dict[bytes, float] = {}
        self.times: list[float] = []
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "delaycast-bench-latency",
                "enable.auto.commit": False,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-receiver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # poll() returns as soon as a message is there; consume(n) would wait to fill a batch.
        while not self._stop.is_set():
            message = self._consumer.poll(0.1)
            if message is None or message.error() is not None:
                continue
            now = time.perf_counter()
            if self.received.setdefault(message.key() or b"", now) == now:
                self.times.append(now)

    def count(self) -> int:
        return len(self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


def bookings(data: Dataset, tag: str) -> Iterator[tuple[bytes, bytes]]:
    """The run's bookings, endlessly, with new booking ids on every pass."""
    for cycle in itertools.count():
        yield from data.tagged(data.bookings, f"{tag}c{cycle}")


def send_paced(
    producer: BlockingProducer,
    topic: str,
    source: Iterator[tuple[bytes, bytes]],
    rate: float,
    seconds: float,
    sent: dict[bytes, float] | None,
) -> float:
    """Send ``rate`` bookings per second for ``seconds``; returns the rate achieved."""
    total = max(1, round(rate * seconds))
    started = time.perf_counter()
    n = 0
    while n < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        while n < due:
            key, value = next(source)
            if sent is not None:
                sent[key] = time.perf_counter()
            producer.send(topic, key, value)
            n += 1
        time.sleep(0.0005)
    return n / (time.perf_counter() - started)


def wait_received(receiver: Receiver, keys: list[bytes], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and not all(k in receiver.received for k in keys):
        time.sleep(0.1)


def run_latency(bench: Bench, reference_per_s: float, timing: Timing) -> dict[str, Any]:
    prefix, tag = run_names(bench, "g", 0)
    out: dict[str, Any] = {"reference_b_per_s": reference_per_s, "loadavg": loadavg(), "rates": []}
    child = receiver = plain = None
    try:
        kafka_io.create_run_topics(bench.bootstrap, prefix)
        env = child_env(bench, prefix, **set_flags(bench, prefix, 100.0))
        child = Child.worker("predict", env, bench.logs / f"{prefix}log")
        sampler = CpuSampler(child.pid).start()
        child.wait_for_log("Worker ready", READY_LIMIT_S)  # Faust's: partitions assigned
        receiver = Receiver(bench.bootstrap, f"{prefix}predictions")
        plain = Receiver(bench.bootstrap, f"{prefix}bookings")  # the broker alone
        producer = BlockingProducer(bench.bootstrap)
        source = bookings(bench.data, tag)
        topic = f"{prefix}bookings"
        primed: dict[bytes, float] = {}
        send_paced(producer, topic, source, 1000.0, PRIMING / 1000.0, primed)
        wait_received(receiver, list(primed), READY_LIMIT_S)
        for share in SHARES:
            rate = share * reference_per_s
            send_paced(producer, topic, source, rate, timing.warmup_s, None)
            sent: dict[bytes, float] = {}
            started, (busy_before, stolen_before) = time.time(), machine_cpu_seconds()
            achieved = send_paced(producer, topic, source, rate, timing.measure_s, sent)
            ended, (busy_after, stolen_after) = time.time(), machine_cpu_seconds()
            wait_received(receiver, list(sent), DRAIN_LIMIT_S)
            latencies = [
                (receiver.received[k] - t) * 1000 for k, t in sent.items() if k in receiver.received
            ]
            cpu = cpu_at(sampler.samples, ended) - cpu_at(sampler.samples, started)
            entry: dict[str, Any] = {
                "share_of_b": share,
                "offered_per_s": rate,
                "achieved_per_s": achieved,
                "sent": len(sent),
                "received": len(latencies),
                "worker_cpu_cores": cpu / (ended - started),
                "machine_cpu_cores": (busy_after - busy_before) / (ended - started),
                "stolen_cpu_cores": (stolen_after - stolen_before) / (ended - started),
            }
            if latencies:
                entry.update(latency_summary(latencies))
            seen = [(plain.received[k] - t) * 1000 for k, t in sent.items() if k in plain.received]
            if seen:
                entry["plain_consumer"] = latency_summary(seen)
            out["rates"].append(entry)
            bench_progress(entry)
        producer.flush()
        out["peak_rss_mb"] = child.peak_rss_mb()
        sampler.stop()
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        for each in (receiver, plain):
            if each is not None:
                each.close()
        if child is not None:
            child.stop()
        clean_up_noting(bench, prefix, out)
    return out


def bench_progress(entry: dict[str, Any]) -> None:
    p = entry
    print(
        f"    {p['share_of_b'] * 100:.0f} % of (b): {p['achieved_per_s']:,.0f}/s offered, "
        f"{p['received']}/{p['sent']} received, p50 {p.get('p50_ms', float('nan')):.1f} ms, "
        f"p99 {p.get('p99_ms', float('nan')):.1f} ms, max {p.get('max_ms', float('nan')):.1f} ms, "
        f"worker {p['worker_cpu_cores']:.2f} cores, machine {p['machine_cpu_cores']:.2f} cores "
        f"({p['stolen_cpu_cores']:.2f} more stolen by the hypervisor); "
        f"a plain consumer of the bookings: p99 "
        f"{p.get('plain_consumer', {}).get('p99_ms', float('nan')):.1f} ms",
        flush=True,
    )
